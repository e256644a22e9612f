package plan

import "path/filepath"

// Options are the host paths plan.Build writes into the plan. They are plain
// strings: Build never looks at them on the host.
type Options struct {
	// StateRoot holds one folder per container (the OCI bundle: config.json,
	// rootfs/, logs, state.json) and the layer cache. Default /var/lib/hutch.
	StateRoot string
	// NetnsDir is where named network namespaces are bind-mounted, the
	// folder iproute2 uses. Default /var/run/netns.
	NetnsDir string
	// CgroupParent is the cgroup every container's cgroup is made under.
	// Default "hutch".
	CgroupParent string
	// SeccompProfiles holds the bytes of the seccomp profile files that
	// manifests name (Docker's JSON format), keyed by the path as written in
	// the manifest. Build is pure and never reads them itself: the caller
	// reads every path of SeccompPaths first.
	SeccompProfiles map[string][]byte
	// Images holds what the caller read of each image the manifests'
	// rootfs.image names (drivers/image), keyed by the reference as
	// ImageRefs lists it. Build never opens an image itself.
	Images map[string]*Image
	// Leases are the addresses containers hold on networks from earlier
	// applies (the caller reads them from the state store): IPAM keeps them.
	Leases []Lease
	// ResolvConf is the host's resolver configuration (its nameserver
	// lines), for the /etc/resolv.conf of containers on a network with
	// NAT; the caller reads it.
	ResolvConf string
}

// DefaultOptions are the paths hutch uses when nothing overrides them.
func DefaultOptions() Options {
	return Options{StateRoot: "/var/lib/hutch", NetnsDir: "/var/run/netns", CgroupParent: "hutch"}
}

// BundleDir is the folder of a container's OCI bundle under the state root.
func (o Options) BundleDir(container string) string {
	return filepath.Join(o.StateRoot, "containers", container)
}

// NetnsPath is the bind mount of the named network namespace.
func (o Options) NetnsPath(name string) string {
	return filepath.Join(o.NetnsDir, name)
}

// CgroupPath is a container's cgroup, relative to each hierarchy's root.
func (o Options) CgroupPath(container string) string {
	return filepath.Join(o.CgroupParent, container)
}
