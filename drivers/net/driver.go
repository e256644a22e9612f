//go:build linux

package net

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// DefaultNetnsDir is where iproute2 (`ip netns`) keeps named network
// namespaces, and so where hutch bind-mounts them.
const DefaultNetnsDir = "/var/run/netns"

// ErrNotOwned says that an object with the name hutch wants exists but does
// not carry hutch's ownership mark: hutch did not create it, so it neither
// adopts, changes nor removes it. Callers test for it with errors.Is.
var ErrNotOwned = errors.New("not owned by hutch")

// markPrefix starts the interface alias (IFLA_IFALIAS, `ip link set DEV
// alias ...`) that marks every interface hutch creates: "hutch:<container>".
// A named network namespace is marked through its loopback device, which
// hutch marks before the namespace gets its name.
const markPrefix = "hutch:"

// mark is the alias hutch gives the interfaces it creates for container.
func mark(container string) string { return markPrefix + container }

// owner returns the container named in l's mark, and whether l has one.
func owner(l netlink.Link) (string, bool) {
	return strings.CutPrefix(l.Attrs().Alias, markPrefix)
}

// Driver manages named network namespaces, veth pairs, addresses and routes
// through netlink. Its four kind drivers (Netns, Veth, Address, Route) are
// the reconcile drivers of plan.KindNetns, KindVeth, KindAddress and
// KindRoute.
type Driver struct {
	netnsDir string

	// Tests only. vethStep, when set, is called after each netlink message
	// that creates or marks a veth pair, with the message's name; an error
	// stops the creation there, as a kill would. noPeerNetns makes the
	// creation act as if the kernel refused to make a peer in another
	// namespace, to exercise the fallback.
	vethStep    func(step string) error
	noPeerNetns bool
}

// New returns a driver keeping named network namespaces in netnsDir
// ("" = DefaultNetnsDir).
func New(netnsDir string) *Driver {
	if netnsDir == "" {
		netnsDir = DefaultNetnsDir
	}
	return &Driver{netnsDir: filepath.Clean(netnsDir)}
}

// NetnsDir is the folder named network namespaces are bind-mounted in.
func (d *Driver) NetnsDir() string { return d.netnsDir }

// Netns is the reconcile driver of plan.KindNetns.
func (d *Driver) Netns() *NetnsDriver { return &NetnsDriver{d} }

// Veth is the reconcile driver of plan.KindVeth.
func (d *Driver) Veth() *VethDriver { return &VethDriver{d} }

// Address is the reconcile driver of plan.KindAddress.
func (d *Driver) Address() *AddressDriver { return &AddressDriver{d} }

// Route is the reconcile driver of plan.KindRoute.
func (d *Driver) Route() *RouteDriver { return &RouteDriver{d} }

// handle opens a rtnetlink socket in the named network namespace
// (plan.HostNetns: the host's). It returns an error wrapping errNoNetns when
// the namespace is not mounted. The caller closes it.
func (d *Driver) handle(netns string) (*handle, error) {
	if netns == plan.HostNetns {
		h, err := handleIn(nil)
		if err != nil {
			return nil, fmt.Errorf("netlink socket: %w", err)
		}
		return &handle{Handle: h}, nil
	}
	f, err := openNetns(d.netnsPath(netns))
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", netns, err)
	}
	defer f.Close()
	h, err := handleIn(f)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", netns, err)
	}
	return &handle{Handle: h, netns: netns}, nil
}

// in says where an interface is, for error messages: "" on the host,
// " in netns NAME" elsewhere.
func in(netns string) string {
	if netns == plan.HostNetns {
		return ""
	}
	return " in netns " + netns
}

// notOwned is the error for an interface that lacks hutch's mark.
func notOwned(l netlink.Link, netns string) error {
	return fmt.Errorf("link %s%s: %w (its alias is %q, hutch marks its links %q)",
		l.Attrs().Name, in(netns), ErrNotOwned, l.Attrs().Alias, markPrefix+"<container>")
}

// ownedLink returns the interface name in the handle's namespace when hutch
// owns it, nil when there is none, and an ErrNotOwned error when it exists
// without hutch's mark.
func ownedLink(h *handle, name string) (netlink.Link, error) {
	l, err := h.link(name)
	if err != nil || l == nil {
		return nil, err
	}
	if _, ok := owner(l); !ok {
		return nil, notOwned(l, h.netns)
	}
	return l, nil
}

// provenEnd checks that l, an interface in h's namespace, is an end of a
// veth pair that hutch made for container and that was stopped before its
// marks were set (the kernel takes no alias in the RTM_NEWLINK that makes a
// pair): l carries no mark, or container's; it is a veth; its other end is
// in another namespace, one end on the host and the other in a named
// namespace whose lo carries container's mark (hutch marks it before the
// namespace gets its name, so nobody else made it); the two ends point at
// each other (IFLA_LINK both ways, IFLA_LINK_NETNSID matched by RTM_GETNSID
// against the namespace's bind mount); the other end carries no mark, or
// container's. hint is the named namespace to try first.
//
// The fallback create makes the whole pair inside the named namespace and
// moves the host end out last; stopped before that, both ends are inside.
// Such a pair is hutch's too when l is in the namespace and its other end,
// there as well, is called like the host end of a pair wanted for container
// (hostNames: the host ends of the veth resources the caller's resource
// needs).
//
// It returns the named namespace and the other end when all hold, else a
// description of what does not (why), for the ErrNotOwned error.
func (d *Driver) provenEnd(h *handle, l netlink.Link, container, hint string, hostNames []string) (netns string, other netlink.Link, why string, err error) {
	if a := l.Attrs().Alias; a != "" && a != mark(container) {
		return "", nil, fmt.Sprintf("it is marked %q", a), nil
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return "", nil, "it is a " + l.Type() + " link", nil
	}
	switch {
	case l.Attrs().NetNsID < 0 && h.netns != plan.HostNetns:
		// Both ends inside (the fallback, stopped).
		netns = h.netns
		if other, err = h.linkByIndex(l.Attrs().ParentIndex); err != nil {
			return "", nil, "", fmt.Errorf("read peer%s: %w", in(netns), err)
		}
		if other != nil && (other.Attrs().NetNsID >= 0 || !slices.Contains(hostNames, other.Attrs().Name)) {
			other = nil
		}
	case l.Attrs().NetNsID < 0:
		return "", nil, "its peer is not in a netns of hutch's", nil
	case h.netns == plan.HostNetns:
		ph, name, err := d.peerHandle(h, l, hint)
		if err != nil {
			return "", nil, "", err
		}
		if ph == nil {
			return "", nil, "its peer is not in a netns of hutch's", nil
		}
		defer ph.Close()
		netns = name
		other, err = ph.linkByIndex(l.Attrs().ParentIndex)
		if err != nil {
			return "", nil, "", fmt.Errorf("read peer%s: %w", in(name), err)
		}
	default:
		// l is inside a named namespace: its other end must be on the host
		// and point back at l, across the id the host gives that namespace.
		netns = h.netns
		f, err := openNetns(d.netnsPath(netns))
		if err != nil {
			return "", nil, "", fmt.Errorf("netns %s: %w", netns, err)
		}
		defer f.Close()
		host, err := d.handle(plan.HostNetns)
		if err != nil {
			return "", nil, "", err
		}
		defer host.Close()
		// RTM_GETLINK first: answering it, the kernel gives the namespace
		// an id if it had none, which RTM_GETNSID then reads.
		if other, err = host.linkByIndex(l.Attrs().ParentIndex); err != nil {
			return "", nil, "", fmt.Errorf("read peer: %w", err)
		}
		nsid, err := host.GetNetNsIdByFd(int(f.Fd()))
		if err != nil {
			return "", nil, "", fmt.Errorf("netns %s: id: %w", netns, err)
		}
		if other != nil && other.Attrs().NetNsID != nsid {
			other = nil
		}
	}
	if other == nil {
		return "", nil, "its peer is not on the host and in a netns of hutch's", nil
	}
	if _, ok := other.(*netlink.Veth); !ok || other.Attrs().ParentIndex != l.Attrs().Index {
		return "", nil, "its peer is not on the host and in a netns of hutch's", nil
	}
	if a := other.Attrs().Alias; a != "" && a != mark(container) {
		return "", nil, fmt.Sprintf("its peer %s is marked %q", other.Attrs().Name, a), nil
	}
	c, err := (&NetnsDriver{d}).owner(netns)
	if errors.Is(err, errNoNetns) || errors.Is(err, ErrNotOwned) {
		return "", nil, fmt.Sprintf("netns %s is not hutch's", netns), nil
	}
	if err != nil {
		return "", nil, "", err
	}
	if c != container {
		return "", nil, fmt.Sprintf("netns %s is container %s's", netns, c), nil
	}
	return netns, other, "", nil
}

// ownedOrProven returns the interface name in the handle's namespace when
// hutch owns it: marked, or an unmarked end of a pair that provenEnd proves
// hutch made for container. It returns nil when there is none, and an
// ErrNotOwned error for any other interface. needs are the IDs the
// caller's resource depends on; the veth IDs among them name the host ends
// provenEnd accepts for a pair still wholly inside a namespace.
func (d *Driver) ownedOrProven(h *handle, name, container string, needs []string) (netlink.Link, error) {
	l, err := h.link(name)
	if err != nil || l == nil {
		return nil, err
	}
	if _, ok := owner(l); ok {
		return l, nil
	}
	if _, br := l.(*netlink.Bridge); br && groupOnly(l) {
		// A network's bridge made but not yet marked (a kill between the
		// two): its group proves it hutch's, as the bridge driver reads it.
		return l, nil
	}
	if _, veth := l.(*netlink.Veth); veth && l.Attrs().Alias == "" && d.halfMadeLink(h, l) {
		return l, nil
	}
	var hostNames []string
	for _, id := range needs {
		if n, ok := strings.CutPrefix(id, plan.VethID("")); ok {
			hostNames = append(hostNames, n)
		}
	}
	_, _, why, err := d.provenEnd(h, l, container, "", hostNames)
	if err != nil {
		return nil, fmt.Errorf("link %s%s: %w", name, in(h.netns), err)
	}
	if why != "" {
		return nil, fmt.Errorf("%w; %s", notOwned(l, h.netns), why)
	}
	return l, nil
}

// LinkStats are an interface's traffic counters, as the kernel keeps them
// (IFLA_STATS64 of RTM_GETLINK, the numbers of `ip -s link`).
type LinkStats struct {
	RxBytes   uint64 `json:"rxBytes"`
	TxBytes   uint64 `json:"txBytes"`
	RxPackets uint64 `json:"rxPackets"`
	TxPackets uint64 `json:"txPackets"`
	RxErrors  uint64 `json:"rxErrors"`
	TxErrors  uint64 `json:"txErrors"`
	RxDropped uint64 `json:"rxDropped"`
	TxDropped uint64 `json:"txDropped"`
}

// LinkStats reads the counters of the interface link in the named network
// namespace (plan.HostNetns: the host's).
func (d *Driver) LinkStats(netns, link string) (*LinkStats, error) {
	h, err := d.handle(netns)
	if err != nil {
		return nil, fmt.Errorf("link %s: stats: %w", link, err)
	}
	defer h.Close()
	l, err := h.link(link)
	if err != nil {
		return nil, fmt.Errorf("link %s%s: stats: %w", link, in(netns), err)
	}
	if l == nil {
		return nil, fmt.Errorf("link %s%s: stats: %w", link, in(netns), unix.ENODEV)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return nil, fmt.Errorf("link %s%s: stats: the kernel sent no counters", link, in(netns))
	}
	return &LinkStats{
		RxBytes: s.RxBytes, TxBytes: s.TxBytes,
		RxPackets: s.RxPackets, TxPackets: s.TxPackets,
		RxErrors: s.RxErrors, TxErrors: s.TxErrors,
		RxDropped: s.RxDropped, TxDropped: s.TxDropped,
	}, nil
}

// NetnsInode returns the inode number of the named network namespace: the
// number in /proc/PID/ns/net ("net:[4026532305]") of every process inside
// it, which is how a process can be checked to be in the container's
// network.
func (d *Driver) NetnsInode(name string) (uint64, error) {
	f, err := openNetns(d.netnsPath(name))
	if err != nil {
		return 0, fmt.Errorf("netns %s: %w", name, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("netns %s: stat: %w", name, err)
	}
	return st.Ino, nil
}

// NetnsPath is the bind mount of the named network namespace, the path a
// process joins with setns(2) (OCI's linux.namespaces[].path).
func (d *Driver) NetnsPath(name string) string { return d.netnsPath(name) }

// exists says whether path names something (a mount or a leftover file).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// halfMadeLink says whether l, an unmarked veth end, belongs to a link
// between containers made but not yet marked (a kill between the two): the
// end made first carries hutch's group, and proves its peer, as the link
// driver reads them.
func (d *Driver) halfMadeLink(h *handle, l netlink.Link) bool {
	if groupOnly(l) {
		return true
	}
	ph, _, err := d.peerHandle(h, l, "")
	if err != nil || ph == nil {
		return false
	}
	if ph != h {
		defer ph.Close()
	}
	peer, err := ph.linkByIndex(l.Attrs().ParentIndex)
	if err != nil || peer == nil {
		return false
	}
	a := peer.Attrs().Alias
	return peer.Attrs().Group == bridgeGroup && (a == "" || strings.HasPrefix(a, markPrefix+"link:"))
}
