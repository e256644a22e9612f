//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// VethDriver manages veth pairs (plan.KindVeth): the host end in the host's
// network namespace, the peer in the container's, both up and both marked
// "hutch:<container>".
type VethDriver struct{ d *Driver }

// Kind is plan.KindVeth.
func (v *VethDriver) Kind() plan.Kind { return plan.KindVeth }

func asVeth(r plan.Resource) (*plan.Veth, error) {
	vt, ok := r.(*plan.Veth)
	if !ok || vt == nil {
		return nil, fmt.Errorf("veth driver: resource %T is not a *plan.Veth", r)
	}
	if vt.Host.Name == "" || vt.Peer.Name == "" {
		return nil, fmt.Errorf("veth %q: both ends need a name (peer %q)", vt.Host.Name, vt.Peer.Name)
	}
	return vt, nil
}

// Observe reads the pair back: the host end by name (RTM_GETLINK), then the
// peer through the host end's IFLA_LINK (the peer's ifindex) and
// IFLA_LINK_NETNSID (the peer's namespace, as the host numbers it), which is
// matched against the named namespaces. It returns nil when the host end is
// missing, and an ErrNotOwned error when the host end, or an interface
// called like the peer in the target namespace, exists without hutch's
// mark and is not proven hutch's (see provenPair and insideLeftover). A
// pair left by an interrupted apply is returned as it is (down, unmarked
// perhaps), for Apply to finish.
//
// Container is the host end's owner, or "" when either end lacks the mark
// or the two marks differ (an apply stopped before or between them), so
// that Diff asks for the marks again.
func (v *VethDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asVeth(want)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host, err := v.d.handle(plan.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	defer host.Close()
	l, err := v.hostEnd(host, w)
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	if l == nil {
		// A fallback create stopped with both ends still inside, or (the
		// preflight) the peer's name must be free, or hutch's, there.
		return v.observeInside(w)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return nil, fmt.Errorf("veth %s: %w (it is a %s link)", w.Host.Name, ErrNotOwned, l.Type())
	}
	c, _ := owner(l)
	got := &plan.Veth{Container: c, Host: end(l)}
	if m := l.Attrs().MasterIndex; m != 0 {
		br, err := host.linkByIndex(m)
		if err != nil {
			return nil, fmt.Errorf("veth %s: read master %d: %w", w.Host.Name, m, err)
		}
		if br != nil {
			got.Bridge = br.Attrs().Name
		}
	}

	ph, netns, err := v.d.peerHandle(host, l, w.Netns)
	if err != nil {
		return nil, fmt.Errorf("veth %s: find peer: %w", w.Host.Name, err)
	}
	got.Netns = netns
	if ph == nil {
		// The peer is in a namespace hutch does not name: report it so
		// that Diff sees the namespace differ.
		return got, nil
	}
	if ph != host {
		defer ph.Close()
	}
	peer, err := ph.linkByIndex(l.Attrs().ParentIndex)
	if err != nil {
		return nil, fmt.Errorf("veth %s: read peer%s: %w", w.Host.Name, in(netns), err)
	}
	if peer == nil {
		return nil, fmt.Errorf("veth %s: peer ifindex %d not found%s", w.Host.Name, l.Attrs().ParentIndex, in(netns))
	}
	got.Peer = end(peer)
	if pc, ok := owner(peer); ok && validContainer(pc) && pc != w.Container {
		return nil, fmt.Errorf("veth %s: %w", w.Host.Name, otherContainer("peer "+peer.Attrs().Name+in(netns), pc, w.Container))
	}
	if pc, ok := owner(peer); !ok || pc != c {
		got.Container = ""
	}
	return got, nil
}

// end is the observed form of one end of a pair.
func end(l netlink.Link) plan.LinkEnd {
	a := l.Attrs()
	return plan.LinkEnd{
		Name: a.Name,
		MAC:  a.HardwareAddr.String(),
		MTU:  a.MTU,
		Down: a.Flags&net.FlagUp == 0,
	}
}

// observeInside is Observe when the host end is missing from the host. A
// pair that a fallback create left with both ends in the target namespace
// (insideLeftover) is returned, unmarked, for Apply to finish. Otherwise it
// checks, before a pair is created, that no interface without hutch's mark
// already has the peer's name in the target namespace, and returns nil.
func (v *VethDriver) observeInside(w *plan.Veth) (plan.Resource, error) {
	h, err := v.d.handle(w.Netns)
	if errors.Is(err, errNoNetns) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	defer h.Close()
	peer, hostIn, err := v.insideLeftover(h, w)
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	if hostIn != nil {
		return &plan.Veth{Host: end(hostIn), Peer: end(peer), Netns: w.Netns}, nil
	}
	if _, err := ownedLink(h, w.Peer.Name); err != nil {
		return nil, fmt.Errorf("veth %s: peer: %w", w.Host.Name, err)
	}
	return nil, nil
}

// A veth pair is made by one RTM_NEWLINK, but the kernel takes no alias
// (IFLA_IFALIAS) in it, so hutch's marks follow in later messages. A kill
// in between leaves a pair without them, which hutch must still know as its
// own, or no later apply could converge and no delete remove it. The pair
// is proven by where it is, not by its names alone: its peer is in the
// target namespace, which hutch marked (lo's alias) before giving it its
// name, so nobody else made that namespace, and the two ends point at each
// other by ifindex (IFLA_LINK, and IFLA_LINK_NETNSID across namespaces).
// Both ways of creating a pair keep an end in that namespace from the first
// message on: the peer is born there, or, in the fallback, the whole pair is
// and the host end leaves it last.

// hostEnd returns the interface called like the pair's host end on the
// host when it is hutch's for w's container: marked for it, or proven by
// provenPair. It returns nil when there is none, an ErrOtherContainer
// error for an end marked for another container (Observe, Apply and
// Delete then leave it alone), and an ErrNotOwned error for any other
// interface.
func (v *VethDriver) hostEnd(host *handle, w *plan.Veth) (netlink.Link, error) {
	l, err := host.link(w.Host.Name)
	if err != nil || l == nil {
		return nil, err
	}
	if c, ok := owner(l); ok && validContainer(c) && c != w.Container {
		return nil, otherContainer("host end "+w.Host.Name, c, w.Container)
	}
	if _, ok := owner(l); ok {
		return l, nil
	}
	why, err := v.provenPair(host, l, w)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return nil, fmt.Errorf("%w; %s", notOwned(l, plan.HostNetns), why)
	}
	return l, nil
}

// provenPair checks that l, an interface on the host without a mark and
// called like w's host end, is the host end of a pair hutch made for w and
// was stopped before marking: provenEnd holds, the other end's namespace is
// w.Netns and the other end is called w.Peer.Name. It returns "" when all
// hold, else what does not.
func (v *VethDriver) provenPair(host *handle, l netlink.Link, w *plan.Veth) (string, error) {
	if w.Netns == plan.HostNetns {
		return "its peer is not in a netns of hutch's", nil
	}
	netns, peer, why, err := v.d.provenEnd(host, l, w.Container, w.Netns, nil)
	if why != "" || err != nil {
		return why, err
	}
	if netns != w.Netns || peer.Attrs().Name != w.Peer.Name {
		return fmt.Sprintf("its peer is %s in netns %s, not %s in netns %s", peer.Attrs().Name, netns, w.Peer.Name, w.Netns), nil
	}
	return "", nil
}

// insideLeftover finds, through ph (a handle in w.Netns), the pair of a
// fallback create stopped before its host end left the namespace: an
// interface called w.Peer.Name that is a veth whose other end is in the
// same namespace (no IFLA_LINK_NETNSID) and called w.Host.Name, both
// unmarked or marked for w.Container, in a namespace marked for
// w.Container. It returns both ends, or nils when there is no such pair.
func (v *VethDriver) insideLeftover(ph *handle, w *plan.Veth) (peer, hostIn netlink.Link, err error) {
	if w.Netns == plan.HostNetns {
		return nil, nil, nil
	}
	peer, err = ph.link(w.Peer.Name)
	if err != nil || peer == nil {
		return nil, nil, err
	}
	if _, ok := peer.(*netlink.Veth); !ok || peer.Attrs().NetNsID >= 0 {
		return nil, nil, nil
	}
	hostIn, err = ph.linkByIndex(peer.Attrs().ParentIndex)
	if err != nil || hostIn == nil || hostIn.Attrs().Name != w.Host.Name ||
		hostIn.Attrs().ParentIndex != peer.Attrs().Index {
		return nil, nil, err
	}
	for _, e := range []netlink.Link{peer, hostIn} {
		if a := e.Attrs().Alias; a != "" && a != mark(w.Container) {
			return nil, nil, nil
		}
	}
	c, err := (&NetnsDriver{v.d}).owner(w.Netns)
	if errors.Is(err, errNoNetns) || errors.Is(err, ErrNotOwned) || (err == nil && c != w.Container) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return peer, hostIn, nil
}

// peerHandle finds the namespace holding the peer of the host end l: the
// host itself when l has no IFLA_LINK_NETNSID, else the named namespace
// whose id (RTM_GETNSID) matches, trying want first. It returns the handle
// (host itself for the host) and the namespace's name, or a nil handle and
// a descriptive name when no named namespace matches.
func (d *Driver) peerHandle(host *handle, l netlink.Link, want string) (*handle, string, error) {
	id := l.Attrs().NetNsID
	if id < 0 {
		return host, plan.HostNetns, nil
	}
	names := []string{}
	if want != plan.HostNetns {
		names = append(names, want)
	}
	if entries, err := os.ReadDir(d.netnsDir); err == nil {
		for _, e := range entries {
			if e.Name() != want {
				names = append(names, e.Name())
			}
		}
	}
	for _, name := range names {
		f, err := openNetns(d.netnsPath(name))
		if err != nil {
			continue
		}
		nsid, err := host.GetNetNsIdByFd(int(f.Fd()))
		if err != nil || nsid != id {
			f.Close()
			continue
		}
		h, err := handleIn(f)
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("netns %s: %w", name, err)
		}
		return &handle{Handle: h, netns: name}, name, nil
	}
	return nil, fmt.Sprintf("(unnamed, nsid %d)", id), nil
}

// Diff: the kernel changes a link's MTU, MAC address and up/down state in
// place. A pair in another namespace, or with another peer name, is
// replaced: moving or renaming an end would drop its addresses and routes,
// which are separate resources made after the pair. MTU and MAC are only
// compared when the desired value sets them.
func (v *VethDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	w, werr := asVeth(want)
	if werr != nil {
		return []string{"host.name"}, []string{"host.name"}
	}
	g, ok := got.(*plan.Veth)
	if !ok || g == nil {
		return plan.FieldDiff(nil, w), nil
	}
	force := func(name string, differ bool) {
		if differ {
			fields = append(fields, name)
			forceReplace = append(forceReplace, name)
		}
	}
	force("host.name", g.Host.Name != w.Host.Name)
	force("peer.name", g.Peer.Name != w.Peer.Name)
	force("netns", g.Netns != w.Netns)
	if g.Container != w.Container {
		fields = append(fields, "container")
	}
	if g.Bridge != w.Bridge {
		fields = append(fields, "bridge")
	}
	for _, e := range []struct {
		side string
		g, w plan.LinkEnd
	}{{"host", g.Host, w.Host}, {"peer", g.Peer, w.Peer}} {
		if e.w.MAC != "" && !sameMAC(e.g.MAC, e.w.MAC) {
			fields = append(fields, e.side+".mac")
		}
		if e.w.MTU != 0 && e.g.MTU != e.w.MTU {
			fields = append(fields, e.side+".mtu")
		}
		if e.g.Down != e.w.Down {
			fields = append(fields, e.side+".down")
		}
	}
	return fields, forceReplace
}

func sameMAC(a, b string) bool {
	ma, erra := net.ParseMAC(a)
	mb, errb := net.ParseMAC(b)
	if erra != nil || errb != nil {
		return a == b
	}
	return ma.String() == mb.String()
}

// Apply creates the pair when the host end is missing, then brings both
// ends to the desired state: mark, MTU, MAC, up. A pair left unmarked by
// an interrupted create is finished the same way (see provenPair).
//
// The pair is made with one RTM_NEWLINK whose VETH_INFO_PEER carries the
// peer's name, MTU, MAC and IFLA_NET_NS_FD, so the peer is born inside the
// target namespace (`ip link add H type veth peer name P netns NS`). Should
// the kernel refuse that, the whole pair is made inside the namespace and
// the host end moved out (`ip -n NS link add H type veth peer name P`, `ip
// -n NS link set H netns 1`); making the peer on the host and moving it in
// would leave, if killed in between, a pair with both ends on the host,
// which nothing proves hutch's. The kernel takes no alias at creation, so
// the marks follow at once (RTM_NEWLINK with IFLA_IFALIAS).
func (v *VethDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, err := asVeth(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	hostMAC, err := parseMAC(w.Host.MAC)
	if err != nil {
		return fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	peerMAC, err := parseMAC(w.Peer.MAC)
	if err != nil {
		return fmt.Errorf("veth %s: peer %s: %w", w.Host.Name, w.Peer.Name, err)
	}
	host, err := v.d.handle(plan.HostNetns)
	if err != nil {
		return fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	defer host.Close()
	ph := host
	if w.Netns != plan.HostNetns {
		if ph, err = v.d.handle(w.Netns); err != nil {
			return fmt.Errorf("veth %s: %w", w.Host.Name, err)
		}
		defer ph.Close()
	}

	l, err := v.hostEnd(host, w)
	if err != nil {
		return fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	if l == nil {
		peer, hostIn, err := v.insideLeftover(ph, w)
		if err != nil {
			return fmt.Errorf("veth %s: %w", w.Host.Name, err)
		}
		if hostIn != nil {
			err = v.leave(ph, w, peer, hostIn)
		} else {
			err = v.create(host, ph, w, hostMAC, peerMAC)
		}
		if err != nil {
			return fmt.Errorf("veth %s: create: %w", w.Host.Name, err)
		}
		if l, err = host.link(w.Host.Name); err != nil || l == nil {
			return fmt.Errorf("veth %s: read back: %w", w.Host.Name, errors.Join(err, unix.ENODEV))
		}
	}
	peer, err := ph.link(w.Peer.Name)
	if err != nil {
		return fmt.Errorf("veth %s: peer %s%s: %w", w.Host.Name, w.Peer.Name, in(w.Netns), err)
	}
	if peer == nil || peer.Attrs().ParentIndex != l.Attrs().Index {
		return fmt.Errorf("veth %s: peer %s%s is not this pair's other end (replace the pair)",
			w.Host.Name, w.Peer.Name, in(w.Netns))
	}
	if err := converge(host, l, w.Container, w.Host.MTU, hostMAC); err != nil {
		return fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	if err := converge(ph, peer, w.Container, w.Peer.MTU, peerMAC); err != nil {
		return fmt.Errorf("veth %s: peer %s%s: %w", w.Host.Name, w.Peer.Name, in(w.Netns), err)
	}
	return attach(host, l, w)
}

// attach makes the host end a port of the wanted bridge (RTM_NEWLINK with
// IFLA_MASTER), or of none, when it is not already. The bridge must be
// hutch's: a veth is never plugged into someone else's switch.
func attach(host *handle, l netlink.Link, w *plan.Veth) error {
	if w.Bridge == "" {
		if l.Attrs().MasterIndex == 0 {
			return nil
		}
		if err := host.LinkSetNoMaster(l); err != nil {
			return fmt.Errorf("veth %s: set nomaster: %w", w.Host.Name, err)
		}
		return nil
	}
	br, err := host.link(w.Bridge)
	if err != nil {
		return fmt.Errorf("veth %s: bridge %s: %w", w.Host.Name, w.Bridge, err)
	}
	if br == nil {
		return fmt.Errorf("veth %s: bridge %s: %w", w.Host.Name, w.Bridge, unix.ENODEV)
	}
	if _, ok := br.(*netlink.Bridge); !ok || !strings.HasPrefix(br.Attrs().Alias, netMarkPrefix) {
		return fmt.Errorf("veth %s: bridge %s: %w", w.Host.Name, w.Bridge, ErrNotOwned)
	}
	if l.Attrs().MasterIndex == br.Attrs().Index {
		return nil
	}
	if err := host.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
		return fmt.Errorf("veth %s: set master %s: %w", w.Host.Name, w.Bridge, err)
	}
	return nil
}

func parseMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, nil
	}
	m, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("mac %q: %w", s, err)
	}
	return m, nil
}

// create makes the pair and marks both ends, each message followed by
// v.d.vethStep (tests stop there, as a kill would).
func (v *VethDriver) create(host, ph *handle, w *plan.Veth, hostMAC, peerMAC net.HardwareAddr) error {
	la := netlink.NewLinkAttrs()
	la.Name = w.Host.Name
	la.MTU = w.Host.MTU
	la.HardwareAddr = hostMAC
	pair := netlink.NewVeth(la)
	pair.PeerName = w.Peer.Name
	pair.PeerMTU = uint32(w.Peer.MTU)
	pair.PeerHardwareAddr = peerMAC
	if w.Netns != plan.HostNetns {
		f, err := openNetns(v.d.netnsPath(w.Netns))
		if err != nil {
			return fmt.Errorf("netns %s: %w", w.Netns, err)
		}
		pair.PeerNamespace = netlink.NsFd(f.Fd())
		if v.d.noPeerNetns {
			err = unix.EOPNOTSUPP
		} else {
			err = host.LinkAdd(pair)
		}
		f.Close()
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			// A kernel that cannot make the peer elsewhere: make the pair
			// inside, and move the host end out.
			pair.PeerNamespace = nil
			if err2 := ph.LinkAdd(pair); err2 != nil {
				return fmt.Errorf("in netns %s: %w", w.Netns, errors.Join(err, err2))
			}
			if err := v.step("create inside"); err != nil {
				return err
			}
			peer, err := ph.link(w.Peer.Name)
			if err != nil || peer == nil {
				return fmt.Errorf("peer %s%s: read back: %w", w.Peer.Name, in(w.Netns), errors.Join(err, unix.ENODEV))
			}
			hostIn, err := ph.linkByIndex(peer.Attrs().ParentIndex)
			if err != nil || hostIn == nil {
				return fmt.Errorf("%s%s: read back: %w", w.Host.Name, in(w.Netns), errors.Join(err, unix.ENODEV))
			}
			return v.leave(ph, w, peer, hostIn)
		}
		if err != nil {
			return fmt.Errorf("peer %s%s: %w", w.Peer.Name, in(w.Netns), err)
		}
	} else if err := host.LinkAdd(pair); err != nil {
		return err
	}
	if err := v.step("create"); err != nil {
		return err
	}
	l, err := host.link(w.Host.Name)
	if err == nil && l != nil {
		err = host.LinkSetAlias(l, mark(w.Container))
	}
	if err != nil {
		return fmt.Errorf("set alias %s: %w", mark(w.Container), err)
	}
	if err := v.step("mark host end"); err != nil {
		return err
	}
	p, err := ph.link(w.Peer.Name)
	if err == nil && p != nil {
		err = ph.LinkSetAlias(p, mark(w.Container))
	}
	if err != nil {
		return fmt.Errorf("peer %s%s: set alias %s: %w", w.Peer.Name, in(w.Netns), mark(w.Container), err)
	}
	return v.step("mark peer")
}

// leave finishes a pair made inside the target namespace (ph's): it marks
// both ends there, then moves the host end out to the host's namespace
// (RTM_NEWLINK with IFLA_NET_NS_FD, `ip -n NS link set H netns 1`).
func (v *VethDriver) leave(ph *handle, w *plan.Veth, peer, hostIn netlink.Link) error {
	for _, e := range []struct {
		side string
		l    netlink.Link
	}{{"host end", hostIn}, {"peer", peer}} {
		if e.l.Attrs().Alias == mark(w.Container) {
			continue
		}
		if err := ph.LinkSetAlias(e.l, mark(w.Container)); err != nil {
			return fmt.Errorf("%s %s%s: set alias %s: %w", e.side, e.l.Attrs().Name, in(w.Netns), mark(w.Container), err)
		}
		if err := v.step("mark " + e.side + " inside"); err != nil {
			return err
		}
	}
	// hutch never moves the threads that are not locked away from the
	// host's namespace, so the process's is the host's.
	hostNs, err := os.Open("/proc/self/ns/net")
	if err != nil {
		return err
	}
	defer hostNs.Close()
	if err := ph.LinkSetNsFd(hostIn, int(hostNs.Fd())); err != nil {
		return fmt.Errorf("move %s from netns %s to the host: %w", w.Host.Name, w.Netns, err)
	}
	return v.step("move host end out")
}

// step calls the test hook v.d.vethStep, when set.
func (v *VethDriver) step(name string) error {
	if v.d.vethStep == nil {
		return nil
	}
	return v.d.vethStep(name)
}

// converge sets one end's mark, MTU and MAC where they differ, and sets it
// up. A MAC that the kernel will not change on a running link (EBUSY) is
// set with the link down.
func converge(h *handle, l netlink.Link, container string, mtu int, mac net.HardwareAddr) error {
	a := l.Attrs()
	if a.Alias != mark(container) {
		if err := h.LinkSetAlias(l, mark(container)); err != nil {
			return fmt.Errorf("set alias %s: %w", mark(container), err)
		}
	}
	if mtu != 0 && a.MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set mtu %d: %w", mtu, err)
		}
	}
	if mac != nil && a.HardwareAddr.String() != mac.String() {
		err := h.LinkSetHardwareAddr(l, mac)
		if errors.Is(err, unix.EBUSY) {
			if err = h.LinkSetDown(l); err == nil {
				err = h.LinkSetHardwareAddr(l, mac)
			}
		}
		if err != nil {
			return fmt.Errorf("set address %s: %w", mac, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// carriedWait bounds how long DeleteCarried waits for the kernel to remove a
// pair with its namespace before it removes the pair itself. The namespace
// outlives its bind mount while anything else holds it (a process of
// someone else's inside, an open file); then the pair stays, and is removed
// after this.
const carriedWait = time.Second

// DeleteCarried removes the pair after its peer's namespace was unmounted
// in the same run (plan.Carried). The kernel frees the namespace in its
// cleanup work (cleanup_net) once nothing holds it, and unregisters every
// device inside in one batch, the peer end taking the host end along; that
// costs the RCU grace periods once for every namespace of the batch, where
// RTM_DELLINK pays them for each pair, one pair at a time under the RTNL
// lock (20-40 ms a pair here). So it waits for the RTM_DELLINK notice of the
// host end (RTNLGRP_LINK), at most carriedWait, and then does what Delete
// does with whatever is left.
func (v *VethDriver) DeleteCarried(ctx context.Context, r plan.Resource) error {
	w, err := asVeth(r)
	if err != nil {
		return err
	}
	host, err := v.d.handle(plan.HostNetns)
	if err != nil {
		return fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	defer host.Close()
	// Subscribe before looking, so that a removal between the two is seen.
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer func() {
		close(done)
		// The library's reader blocks on a full channel: drain it until
		// the reader ends (it closes the channel).
		go func() {
			for range updates {
			}
		}()
	}()
	tv := unix.NsecToTimeval(carriedWait.Nanoseconds())
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{ReceiveTimeout: &tv}); err != nil {
		return v.Delete(ctx, r)
	}
	l, err := v.hostEnd(host, w)
	if err != nil || l == nil {
		return v.Delete(ctx, r)
	}
	index := l.Attrs().Index
	timer := time.NewTimer(carriedWait)
	defer timer.Stop()
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				// The receive timed out or failed: look once more.
				return v.Delete(ctx, r)
			}
			if u.Header.Type == unix.RTM_DELLINK && int(u.Index) == index {
				return nil
			}
		case <-timer.C:
			return v.Delete(ctx, r)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Delete removes the pair (RTM_DELLINK on one end removes both). It
// succeeds when the pair is gone, and refuses an end without hutch's mark
// unless provenPair or insideLeftover prove it hutch's. When the host end
// is gone but an end called like the peer, marked by hutch, is still in
// the namespace, that end is removed.
func (v *VethDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, err := asVeth(r)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	host, err := v.d.handle(plan.HostNetns)
	if err != nil {
		return fmt.Errorf("veth %s: %w", w.Host.Name, err)
	}
	defer host.Close()
	l, err := v.hostEnd(host, w)
	if err != nil {
		return fmt.Errorf("veth %s: delete: %w", w.Host.Name, err)
	}
	if l != nil {
		if err := host.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("veth %s: delete: %w", w.Host.Name, err)
		}
		return nil
	}
	ph, err := v.d.handle(w.Netns)
	if errors.Is(err, errNoNetns) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("veth %s: delete: %w", w.Host.Name, err)
	}
	defer ph.Close()
	p, _, err := v.insideLeftover(ph, w)
	if err == nil && p == nil {
		p, err = ownedLink(ph, w.Peer.Name)
	}
	if err != nil {
		return fmt.Errorf("veth %s: delete peer: %w", w.Host.Name, err)
	}
	if p != nil {
		if err := ph.LinkDel(p); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("veth %s: delete peer %s%s: %w", w.Host.Name, w.Peer.Name, in(w.Netns), err)
		}
	}
	return nil
}
