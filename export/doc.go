// Package export writes a container of a manifest in the forms other tools
// run: an OCI image (an image layout folder and a docker-archive tar, which
// `podman load`, `docker load` and `skopeo copy` read) and Kubernetes YAML
// (a Pod per container, a Service per published port, a NetworkPolicy per
// hutch network) that `kubectl apply` and `podman kube play` take.
//
// The mapping to Kubernetes is pure: it reads the manifest and the plan and
// nothing on the host. The image writer reads the rootfs folder it is given
// (one drivers/fs exported) and writes only under the output folder; it
// touches no namespace, link, cgroup or mount.
package export
