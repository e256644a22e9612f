// Package plan turns a validated manifest into desired state: an OCI
// runtime-spec configuration per container and the host resources OCI has no
// words for (rootfs recipe, netns, veth, addresses, routes, cgroup, process).
// It also holds the Plan and Change values, their ordering and rendering.
// Pure code: it never touches the host.
package plan
