package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	cgroupdrv "hutch/drivers/cgroup"
	fsdrv "hutch/drivers/fs"
	netdrv "hutch/drivers/net"
	processdrv "hutch/drivers/process"
	"hutch/inspect"
	"hutch/plan"
	"hutch/reconcile"
)

// host is the machine the verbs work on: the options (the state root, the
// netns folder, the cgroup parent) and hutch's driver of each kind of host
// object, each made once, from those options, when a verb first asks for
// it; a verb makes only the drivers it uses. The command tree is built
// before its flags are parsed and --root sets opts.StateRoot, so nothing is
// made before a verb runs.
type host struct {
	opts plan.Options

	// changes compares the desired state with this host for hutch plan:
	// the reconciler's observe and diff through the plan-only drivers
	// (observeChanges), or what a test puts in their place.
	changes func(context.Context, *plan.Desired) ([]*plan.Change, error)

	cgroupDrv  *cgroupdrv.Driver
	rootfsDrv  *fsdrv.Driver
	rootfsRO   *fsdrv.Driver
	netDrv     *netdrv.Driver
	processDrv *processdrv.Driver
	storeVal   *reconcile.Store
}

// newHost returns the host of the options o; no driver is made yet.
func newHost(o plan.Options) *host {
	h := &host{opts: o}
	h.changes = h.observeChanges
	return h
}

// defaultOptions are the host paths hutch uses unless told otherwise: the
// state root of HUTCH_ROOT, else /var/lib/hutch (--root's default).
func defaultOptions() plan.Options {
	o := plan.DefaultOptions()
	if r := os.Getenv("HUTCH_ROOT"); r != "" {
		o.StateRoot = r
	}
	return o
}

// store is the state store of the state root.
func (h *host) store() *reconcile.Store {
	if h.storeVal == nil {
		h.storeVal = reconcile.NewStore(h.opts)
	}
	return h.storeVal
}

// cgroup is the cgroup driver, of the cgroup layout this host mounts
// (read from /proc/self/mountinfo).
func (h *host) cgroup() (*cgroupdrv.Driver, error) {
	if h.cgroupDrv == nil {
		cg, err := cgroupdrv.New("", h.opts.CgroupParent)
		if err != nil {
			return nil, err
		}
		h.cgroupDrv = cg
	}
	return h.cgroupDrv, nil
}

// rootfs is the rootfs driver, which keeps its layers and resolutions
// under the state root.
func (h *host) rootfs() *fsdrv.Driver {
	if h.rootfsDrv == nil {
		h.rootfsDrv = fsdrv.New(h.opts.StateRoot)
	}
	return h.rootfsDrv
}

// readOnlyRootfs is the rootfs driver of hutch plan, which must write
// nothing: it resolves as apply's does but keeps no resolution on disk.
func (h *host) readOnlyRootfs() *fsdrv.Driver {
	if h.rootfsRO == nil {
		h.rootfsRO = fsdrv.NewReadOnly(h.opts.StateRoot)
	}
	return h.rootfsRO
}

// network is the network driver, whose named namespaces live in the
// options' netns folder.
func (h *host) network() *netdrv.Driver {
	if h.netDrv == nil {
		h.netDrv = netdrv.New(h.opts.NetnsDir)
	}
	return h.netDrv
}

// sysctl keeps namespaces' parameters under the state root and the host's
// in /run/hutch/sysctl, shared by every state root, its holders marked
// with a digest of this root's path.
func (h *host) sysctl() *netdrv.SysctlDriver {
	root, err := filepath.Abs(h.opts.StateRoot)
	if err != nil {
		root = h.opts.StateRoot
	}
	sum := sha256.Sum256([]byte(root))
	return h.network().Sysctl(filepath.Join(h.opts.StateRoot, "sysctl"), netdrv.DefaultHostSysctlDir, hex.EncodeToString(sum[:])[:12])
}

// process is the process driver; it places processes in their cgroups
// through the cgroup driver.
func (h *host) process() (*processdrv.Driver, error) {
	if h.processDrv == nil {
		cg, err := h.cgroup()
		if err != nil {
			return nil, err
		}
		h.processDrv = processdrv.New(h.opts.StateRoot, cg)
	}
	return h.processDrv, nil
}

// reader reads what hutch made back from the kernel through this host's
// drivers (hutch inspect, hutch stats).
func (h *host) reader() (*inspect.Reader, error) {
	cg, err := h.cgroup()
	if err != nil {
		return nil, err
	}
	proc, err := h.process()
	if err != nil {
		return nil, err
	}
	return &inspect.Reader{Store: h.store(), Cgroup: cg, Net: h.network(), Sysctl: h.sysctl(), Process: proc}, nil
}

// drivers registers the driver of each kind of resource explicitly, one
// line each, for the reconciler.
func (h *host) drivers() (map[plan.Kind]reconcile.Driver, error) {
	ds := map[plan.Kind]reconcile.Driver{}
	register := func(d reconcile.Driver) { ds[d.Kind()] = d }

	cg, err := h.cgroup()
	if err != nil {
		return nil, err
	}
	proc, err := h.process()
	if err != nil {
		return nil, err
	}
	register(cg)
	register(h.rootfs())
	net := h.network()
	register(net.Netns())
	register(net.Veth())
	register(net.Address())
	register(net.Route())
	register(net.Bridge())
	register(net.Link())
	register(net.Nft())
	register(h.sysctl())
	register(fsdrv.NewFileDriver(h.opts.StateRoot))
	register(proc)
	return ds, nil
}

// planDrivers are the drivers for hutch plan, which must write nothing:
// the rootfs driver is the read-only one. The others only read when they
// observe.
func (h *host) planDrivers() (map[plan.Kind]reconcile.Driver, error) {
	ds, err := h.drivers()
	if err != nil {
		return nil, err
	}
	ds[plan.KindRootfs] = h.readOnlyRootfs()
	return ds, nil
}

// newCgroupJoiner is the cgroup driver a container's supervisor uses to
// place its process, for cgroups made under parent (processdrv.Reexec).
func newCgroupJoiner(parent string) (processdrv.CgroupJoiner, error) {
	return cgroupdrv.New("", parent)
}
