package export

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"hutch/plan"
	"hutch/spec"
)

// DefaultRepository is the repository images are named under unless the
// caller gives another: localhost/hutch/NAME. "localhost/" is the registry
// podman gives an image that names none, so the name `podman load` shows
// is the one written, and no pull of it can reach a registry on the
// network.
const DefaultRepository = "localhost/hutch"

// DefaultTag is the tag images get unless the caller gives another.
const DefaultTag = "latest"

// Ref is the reference of a container's image: REPOSITORY/NAME:TAG.
func Ref(repository, container, tag string) string {
	return strings.TrimSuffix(repository, "/") + "/" + container + ":" + tag
}

// ImageConfig is the run configuration of a container's image, from its
// plan (the OCI config hutch runs) and its manifest document: the process's
// arguments as the entrypoint (with no cmd, so `podman run IMAGE` runs what
// hutch runs), its environment (PATH included), working folder, user and
// group as numbers, the container ports the manifest publishes, its labels,
// and its stop signal when it is not SIGTERM, the one every runtime sends
// by default.
func ImageConfig(c *plan.Container, sc *spec.Container) v1.Config {
	p := c.Spec.Process
	cfg := v1.Config{
		Entrypoint: append([]string(nil), p.Args...),
		Env:        append([]string(nil), p.Env...),
		WorkingDir: p.Cwd,
		User:       fmt.Sprintf("%d:%d", p.User.UID, p.User.GID),
	}
	if labels := plan.Labels(c.Spec.Annotations); len(labels) > 0 {
		cfg.Labels = labels
	}
	if sc != nil && sc.Spec.Network != nil {
		for _, port := range sc.Spec.Network.Ports {
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			cfg.ExposedPorts[fmt.Sprintf("%d/%s", port.ContainerPort, protocol(port.Protocol))] = struct{}{}
		}
	}
	if pr := processOf(c); pr != nil && pr.StopSignal != "" && pr.StopSignal != "SIGTERM" {
		cfg.StopSignal = pr.StopSignal
	}
	return cfg
}

// protocol is a port's protocol, tcp unless the manifest says udp.
func protocol(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}

// processOf is the container's process resource, or nil.
func processOf(c *plan.Container) *plan.Process {
	for _, r := range c.Resources {
		if p, ok := r.(*plan.Process); ok {
			return p
		}
	}
	return nil
}

// cgroupOf is the container's cgroup resource, or nil.
func cgroupOf(c *plan.Container) *plan.Cgroup {
	for _, r := range c.Resources {
		if cg, ok := r.(*plan.Cgroup); ok {
			return cg
		}
	}
	return nil
}
