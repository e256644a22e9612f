//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/internal/scan"
	"hutch/plan"
)

// AddressDriver manages IP addresses (plan.KindAddress) on interfaces hutch
// owns, in any network namespace.
type AddressDriver struct{ d *Driver }

// Kind is plan.KindAddress.
func (a *AddressDriver) Kind() plan.Kind { return plan.KindAddress }

func asAddress(r plan.Resource) (*plan.Address, netip.Prefix, error) {
	ad, ok := r.(*plan.Address)
	if !ok || ad == nil {
		return nil, netip.Prefix{}, fmt.Errorf("address driver: resource %T is not a *plan.Address", r)
	}
	p, err := netip.ParsePrefix(ad.CIDR)
	if err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("address %q on %s%s: %w", ad.CIDR, ad.Link, in(ad.Netns), err)
	}
	return ad, p, nil
}

// family is the netlink address family of an IP.
func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// Observe dumps the link's addresses (RTM_GETADDR) and looks for the
// desired IP. It returns the address as the kernel has it (with the
// kernel's prefix length: one changed by hand shows as drift), nil when the
// IP, the link or the namespace is missing, and an ErrNotOwned error when
// the link is not hutch's, or when the IP is missing from the link but
// already on another link of the namespace that hutch does not own. That is
// the preflight of Apply, which would add it: the kernel takes the same IP
// on a second link, and the two would then fight over its traffic. An
// address already on hutch's link is reported as it is whoever else holds
// the IP, so that its removal is never blocked.
func (a *AddressDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, p, err := asAddress(want)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, l, err := a.d.linkIn(w.Netns, w.Link, w.Container, []string{w.Veth})
	if err != nil {
		if errors.Is(err, errNoNetns) {
			return nil, nil
		}
		return nil, fmt.Errorf("address %s: %w", w.CIDR, err)
	}
	if h == nil {
		return nil, nil
	}
	defer h.Close()
	var found *netlink.Addr
	if l != nil {
		if found, err = observedAddr(ctx, h, l, p.Addr()); err != nil {
			return nil, fmt.Errorf("address %s on %s%s: %w", w.CIDR, w.Link, in(w.Netns), err)
		}
	}
	if found == nil {
		// Apply would add it: it must not be another link's already, and
		// on the host its subnet must not be routed elsewhere.
		if err := heldElsewhere(ctx, h, w, p.Addr(), l); err != nil {
			return nil, err
		}
		if w.Netns == plan.HostNetns {
			return nil, routedElsewhere(ctx, h, w, p, l)
		}
		return nil, nil
	}
	got := *w
	ones, _ := found.Mask.Size()
	if ones != p.Bits() {
		got.CIDR = netip.PrefixFrom(p.Addr(), ones).String()
	}
	return &got, nil
}

// linkIn opens a handle in the namespace and finds the link hutch owns
// there for container (ownedOrProven, with the IDs the resource needs: an
// end of a pair whose create was stopped before its marks counts). The
// handle is nil when the namespace is missing; the link is nil when it is
// missing.
func (d *Driver) linkIn(netns, name, container string, needs []string) (*handle, netlink.Link, error) {
	h, err := d.handle(netns)
	if errors.Is(err, errNoNetns) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	l, err := d.ownedOrProven(h, name, container, needs)
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return h, l, nil
}

// heldElsewhere dumps every address of ip's family in the handle's
// namespace (RTM_GETADDR without a link) and returns an ErrNotOwned error
// when ip is on a link other than l (nil: the link does not exist yet) that
// hutch does not own. An IP on another link of hutch's is left to the
// reconciler: it is another resource of hutch's, and a renamed interface
// gives its address up before the new one takes it.
func heldElsewhere(ctx context.Context, h *handle, w *plan.Address, ip netip.Addr, l netlink.Link) error {
	skip := 0
	if l != nil {
		skip = l.Attrs().Index
	}
	addrs, err := h.addrsOnce(ctx)
	if err != nil {
		return fmt.Errorf("address %s on %s%s: list addresses: %w", w.CIDR, w.Link, in(w.Netns), err)
	}
	for _, ka := range addrs {
		got, ok := netip.AddrFromSlice(ka.IP)
		if !ok || got.Unmap() != ip || ka.LinkIndex == skip {
			continue
		}
		other, err := h.linkByIndex(ka.LinkIndex)
		if err != nil {
			return fmt.Errorf("address %s on %s%s: link %d: %w", w.CIDR, w.Link, in(w.Netns), ka.LinkIndex, err)
		}
		if other == nil {
			continue // removed meanwhile
		}
		if _, ours := owner(other); ours {
			continue
		}
		where := "the host's network namespace"
		if w.Netns != plan.HostNetns {
			where = "netns " + w.Netns
		}
		ones, _ := ka.Mask.Size()
		return fmt.Errorf("address %s on %s: %s/%d is already on link %s in %s: %w (its alias is %q)",
			w.CIDR, w.Link, ip, ones, other.Attrs().Name, where, ErrNotOwned, other.Attrs().Alias)
	}
	return nil
}

// routedElsewhere returns an ErrNotOwned error when the host's main table
// already routes part of the address's subnet (not a default route) through
// a link hutch does not own: adding the address would make a second
// connected route, and the host would reach only one side (`ip route`
// shows the one already there).
func routedElsewhere(ctx context.Context, h *handle, w *plan.Address, p netip.Prefix, l netlink.Link) error {
	fam := family(p.Addr())
	routes, err := scan.Memo(ctx, fmt.Sprintf("routes:%s:%d", h.netns, fam), func() ([]netlink.Route, error) {
		return h.routes(fam, unix.RT_TABLE_MAIN)
	})
	if err != nil {
		return fmt.Errorf("address %s on %s: list routes: %w", w.CIDR, w.Link, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == 0 || (l != nil && r.LinkIndex == l.Attrs().Index) {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		dst, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 {
			continue
		}
		rp := netip.PrefixFrom(dst.Unmap(), ones)
		if !rp.Overlaps(p.Masked()) {
			continue
		}
		other, err := h.linkByIndex(r.LinkIndex)
		if err != nil {
			return fmt.Errorf("address %s on %s: link %d: %w", w.CIDR, w.Link, r.LinkIndex, err)
		}
		if other == nil {
			continue
		}
		if _, ours := owner(other); ours {
			continue
		}
		return fmt.Errorf("address %s on %s: the host already routes %s through link %s: %w (choose a subnet that overlaps no route of `ip route`)",
			w.CIDR, w.Link, rp, other.Attrs().Name, ErrNotOwned)
	}
	return nil
}

// findAddr returns the address ip on l, or nil.
func findAddr(h *handle, l netlink.Link, ip netip.Addr) (*netlink.Addr, error) {
	addrs, err := h.addrs(l, family(ip))
	if err != nil {
		return nil, err
	}
	return addrOn(addrs, l, ip), nil
}

// addrOn returns (a copy of) the address ip of link l among addrs, or nil.
func addrOn(addrs []netlink.Addr, l netlink.Link, ip netip.Addr) *netlink.Addr {
	for _, a := range addrs {
		if a.LinkIndex != l.Attrs().Index {
			continue
		}
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return &a
		}
	}
	return nil
}

// addrsOnce dumps every address of the handle's namespace (both
// families), once per scan.With context and namespace.
func (h *handle) addrsOnce(ctx context.Context) ([]netlink.Addr, error) {
	return scan.Memo(ctx, "addrs:"+h.netns, func() ([]netlink.Addr, error) { return h.addrs(nil, netlink.FAMILY_ALL) })
}

// isLocal says whether a link of the handle's namespace holds ip: the
// kernel routes it as local (RTM_GETROUTE of the one address).
func (h *handle) isLocal(ip netip.Addr) (bool, error) {
	rs, err := h.RouteGet(ip.AsSlice())
	if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("route get %s: %w", ip, err)
	}
	for _, r := range rs {
		if r.Type == unix.RTN_LOCAL {
			return true, nil
		}
	}
	return false, nil
}

// observedAddr is findAddr, from one dump of the host's addresses per
// scan.With context when h is the host's: the kernel answers RTM_GETADDR
// for one link with every address of the namespace, and an apply that
// observes the host end of each of N containers read N addresses N times.
// A container's own namespace holds only its own few.
func observedAddr(ctx context.Context, h *handle, l netlink.Link, ip netip.Addr) (*netlink.Addr, error) {
	if h.netns != plan.HostNetns || !scan.Active(ctx) {
		return findAddr(h, l, ip)
	}
	all, err := h.addrsOnce(ctx)
	if err != nil {
		return nil, err
	}
	return addrOn(all, l, ip), nil
}

// Diff: an address is its IP and prefix length; the kernel changes neither
// in place, so any difference replaces it (delete the observed one, add the
// desired one). The link and namespace are part of its ID as well.
func (a *AddressDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	w, wp, werr := asAddress(want)
	if werr != nil {
		return []string{"cidr"}, []string{"cidr"}
	}
	g, gp, gerr := asAddress(got)
	if gerr != nil {
		return plan.FieldDiff(nil, w), nil
	}
	force := func(name string, differ bool) {
		if differ {
			fields = append(fields, name)
			forceReplace = append(forceReplace, name)
		}
	}
	force("netns", g.Netns != w.Netns)
	force("link", g.Link != w.Link)
	force("cidr", gp != wp)
	return fields, forceReplace
}

// Apply adds the address (RTM_NEWADDR, `ip addr add CIDR dev LINK`); an
// address already there is fine. IPv6 addresses are added with
// IFA_F_NODAD: the other end of a veth is hutch's own, so duplicate
// address detection could only delay the address by a second or more.
func (a *AddressDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, p, err := asAddress(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, l, err := a.d.linkIn(w.Netns, w.Link, w.Container, []string{w.Veth})
	if err == nil && h == nil {
		err = fmt.Errorf("netns %s: %w", w.Netns, errNoNetns)
	}
	if err != nil {
		return fmt.Errorf("address %s on %s: %w", w.CIDR, w.Link, err)
	}
	defer h.Close()
	if l == nil {
		return fmt.Errorf("address %s on %s%s: %w", w.CIDR, w.Link, in(w.Netns), unix.ENODEV)
	}
	// Checked again here, as another link may have taken the IP since
	// Observe. The kernel's answer to "where does IP go" (RTM_GETROUTE,
	// one route, not a dump) says whether any link holds it: only then are
	// the addresses dumped to find which. Dumping them for every address
	// made an apply of N containers read N host addresses N times, and
	// at 1000 the dumps, racing the other steps' changes, kept coming back
	// interrupted. An IP already on the link needs nothing (EEXIST below).
	if local, err := h.isLocal(p.Addr()); err != nil {
		return fmt.Errorf("address %s on %s%s: %w", w.CIDR, w.Link, in(w.Netns), err)
	} else if local {
		if err := heldElsewhere(ctx, h, w, p.Addr(), l); err != nil {
			return err
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("address %s on %s%s: add: %w", w.CIDR, w.Link, in(w.Netns), err)
	}
	return a.setNeighbours(h, l, w)
}

// setNeighbours sets, for a host end's address, the neighbour entries of
// the peer's IPs on l from the peer's MAC address (RTM_NEWNEIGH, replace,
// NUD_STALE: `ip neigh replace IP lladdr MAC dev L nud stale`). A stale
// entry is used at once and confirmed by the kernel's own probe on first
// use, as one learnt from an ARP answer would be. Without it the first
// packet waited for ARP, and a client that tried before the container's
// end could answer (a poll bound to the interface sends as soon as the
// link is up) left an INCOMPLETE entry that the kernel asked again only
// after retrans_time: its first answer came a second late. A peer that is
// gone (its namespace removed meanwhile) leaves nothing to set, and a full
// neighbour table leaves the entry to ARP.
func (a *AddressDriver) setNeighbours(h *handle, l netlink.Link, w *plan.Address) error {
	if w.Peer == nil || len(w.Peer.IPs) == 0 {
		return nil
	}
	ph, err := a.d.handle(w.Peer.Netns)
	if errors.Is(err, errNoNetns) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("address %s on %s: peer %s%s: %w", w.CIDR, w.Link, w.Peer.Link, in(w.Peer.Netns), err)
	}
	defer ph.Close()
	peer, err := ph.link(w.Peer.Link)
	if err != nil {
		return fmt.Errorf("address %s on %s: peer %s%s: %w", w.CIDR, w.Link, w.Peer.Link, in(w.Peer.Netns), err)
	}
	if peer == nil || len(peer.Attrs().HardwareAddr) == 0 {
		return nil
	}
	for _, s := range w.Peer.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("address %s on %s: peer IP %q: %w", w.CIDR, w.Link, s, err)
		}
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family(ip), State: netlink.NUD_STALE,
			IP: ip.AsSlice(), HardwareAddr: peer.Attrs().HardwareAddr}
		if err := h.NeighSet(n); errors.Is(err, unix.ENOBUFS) {
			// The host's neighbour table is full (more entries than
			// net.ipv4.neigh.default.gc_thresh3 over every namespace, as
			// with a thousand containers at the default 1024): the first
			// packet asks by ARP, as without this entry.
			return nil
		} else if err != nil {
			return fmt.Errorf("address %s on %s: neighbour %s lladdr %s: %w", w.CIDR, w.Link, ip, peer.Attrs().HardwareAddr, err)
		}
	}
	return nil
}

// Delete removes the address (RTM_DELADDR), as the kernel has it: the IP
// with whatever prefix length it carries now. It succeeds when the address,
// its link or its namespace is gone, and refuses a link hutch does not own.
func (a *AddressDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, p, err := asAddress(r)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, l, err := a.d.linkIn(w.Netns, w.Link, w.Container, []string{w.Veth})
	if err != nil {
		return fmt.Errorf("address %s: delete: %w", w.CIDR, err)
	}
	if h == nil {
		return nil
	}
	defer h.Close()
	if l == nil {
		return nil
	}
	found, err := findAddr(h, l, p.Addr())
	if err != nil {
		return fmt.Errorf("address %s on %s%s: delete: %w", w.CIDR, w.Link, in(w.Netns), err)
	}
	if found == nil {
		return nil
	}
	if err := h.AddrDel(l, found); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("address %s on %s%s: delete: %w", w.CIDR, w.Link, in(w.Netns), err)
	}
	return nil
}
