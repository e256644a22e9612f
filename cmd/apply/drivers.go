package main

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	cgroupdrv "hutch/drivers/cgroup"
	fsdrv "hutch/drivers/fs"
	netdrv "hutch/drivers/net"
	processdrv "hutch/drivers/process"
	"hutch/plan"
	"hutch/reconcile"
)

// newDrivers registers the driver of each kind of resource explicitly, one
// line each, pointed at the roots of the options.
func newDrivers(o plan.Options) (map[plan.Kind]reconcile.Driver, error) {
	ds := map[plan.Kind]reconcile.Driver{}
	register := func(d reconcile.Driver) { ds[d.Kind()] = d }

	cg, err := cgroupdrv.New("", o.CgroupParent)
	if err != nil {
		return nil, err
	}
	register(cg)
	register(fsdrv.New(o.StateRoot))
	net := netdrv.New(o.NetnsDir)
	register(net.Netns())
	register(net.Veth())
	register(net.Address())
	register(net.Route())
	register(net.Bridge())
	register(net.Link())
	register(net.Nft())
	register(sysctlDriver(net, o))
	register(fsdrv.NewFileDriver(o.StateRoot))
	register(processdrv.New(o.StateRoot, cg))
	return ds, nil
}

// planOnly makes ds fit for `hutch plan`, which must write nothing: the
// rootfs driver becomes a read-only one (it resolves as apply would but
// keeps no resolution on disk). The other drivers only read when they
// observe.
func planOnly(ds map[plan.Kind]reconcile.Driver, o plan.Options) {
	ds[plan.KindRootfs] = fsdrv.NewReadOnly(o.StateRoot)
}

// newCgroupJoiner is the cgroup driver a container's supervisor uses to
// place its process, for cgroups made under parent (processdrv.Reexec).
func newCgroupJoiner(parent string) (processdrv.CgroupJoiner, error) {
	return cgroupdrv.New("", parent)
}

// sysctlDriver keeps namespaces' parameters under the state root and the
// host's in /run/hutch/sysctl, shared by every state root, its holders
// marked with a digest of this root's path.
func sysctlDriver(net *netdrv.Driver, o plan.Options) *netdrv.SysctlDriver {
	root, err := filepath.Abs(o.StateRoot)
	if err != nil {
		root = o.StateRoot
	}
	sum := sha256.Sum256([]byte(root))
	return net.Sysctl(filepath.Join(o.StateRoot, "sysctl"), netdrv.DefaultHostSysctlDir, hex.EncodeToString(sum[:])[:12])
}
