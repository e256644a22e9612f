//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// LinkDriver manages veth pairs straight between two containers' network
// namespaces (plan.KindLink), the point-to-point links of router labs:
// `ip -n A link add EA type veth peer name EB netns B`.
type LinkDriver struct{ d *Driver }

// Link is the reconcile driver of plan.KindLink.
func (d *Driver) Link() *LinkDriver { return &LinkDriver{d} }

// Kind is plan.KindLink.
func (ld *LinkDriver) Kind() plan.Kind { return plan.KindLink }

// linkMark is the alias of both ends of the link called name. Its owner
// part, "link:<name>", can never be a container's name.
func linkMark(name string) string { return markPrefix + "link:" + name }

func asLink(r plan.Resource) (*plan.Link, error) {
	l, ok := r.(*plan.Link)
	if !ok || l == nil {
		return nil, fmt.Errorf("link driver: resource %T is not a *plan.Link", r)
	}
	if l.A.Netns == plan.HostNetns || l.B.Netns == plan.HostNetns {
		return nil, fmt.Errorf("link %s: both ends must be in containers' namespaces", l.Name)
	}
	return l, nil
}

// pair is what ends found: a handle in each namespace and the two ends
// of the link, or nil ends; stale are ends that carry this link's mark
// but are not paired with each other: the rest of a pair whose other
// namespace is being torn down (the kernel removes the pair when that
// namespace's cleanup runs, a moment after its bind mount goes).
type pair struct {
	ha, hb *handle
	a, b   netlink.Link
	stale  []staleEnd
}

type staleEnd struct {
	h *handle
	l netlink.Link
}

func (p *pair) Close() {
	p.ha.Close()
	p.hb.Close()
}

// ends opens both namespaces and finds the pair. An end of the wanted name
// that is not this link's (another kind of link, another mark) is an
// ErrNotOwned error. A namespace that is gone is errNoNetns.
func (ld *LinkDriver) ends(w *plan.Link) (*pair, error) {
	ha, err := ld.d.handle(w.A.Netns)
	if err != nil {
		return nil, err
	}
	hb, err := ld.d.handle(w.B.Netns)
	if err != nil {
		ha.Close()
		return nil, err
	}
	p := &pair{ha: ha, hb: hb}
	fail := func(err error) (*pair, error) {
		p.Close()
		return nil, err
	}
	if p.a, err = ha.link(w.A.Name); err != nil {
		return fail(err)
	}
	if p.b, err = hb.link(w.B.Name); err != nil {
		return fail(err)
	}
	// The kernel takes no alias when it makes a pair; hutch's group, which
	// it does take for the end it makes first, proves a pair stopped
	// before its marks, and that end proves its peer.
	proven := func(l netlink.Link) bool {
		return l != nil && (l.Attrs().Alias == linkMark(w.Name) || groupOnly(l))
	}
	paired := func(l, other netlink.Link) bool {
		return other != nil && l.Attrs().ParentIndex == other.Attrs().Index && l.Attrs().NetNsID >= 0
	}
	ends := []struct {
		h         *handle
		l         *netlink.Link
		end, peer plan.LinkEndpoint
		other     netlink.Link
	}{{ha, &p.a, w.A, w.B, p.b}, {hb, &p.b, w.B, w.A, p.a}}
	for _, e := range ends {
		l := *e.l
		if l == nil {
			continue
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fail(fmt.Errorf("%s%s: %w (it is a %s link)", e.end.Name, in(e.end.Netns), ErrNotOwned, l.Type()))
		}
		if al := l.Attrs().Alias; !proven(l) && !(al == "" && proven(e.other) && paired(l, e.other)) {
			return fail(fmt.Errorf("%s%s: %w (its alias is %q, hutch marks this link %q)", e.end.Name, in(e.end.Netns), ErrNotOwned, al, linkMark(w.Name)))
		}
	}
	for _, e := range ends {
		if l := *e.l; l != nil && !paired(l, e.other) {
			// This link's end, without its peer: going, with the other
			// namespace, or left by an interrupted delete.
			p.stale = append(p.stale, staleEnd{e.h, l})
		}
	}
	if len(p.stale) > 0 {
		p.a, p.b = nil, nil
	}
	return p, nil
}

// dropStale removes the stale ends, whose pair the kernel is removing or
// an interrupted delete left, so that the link can be made again.
func (p *pair) dropStale(name string) error {
	for _, s := range p.stale {
		if err := s.h.LinkDel(s.l); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("link %s: delete the rest of the old pair, %s%s: %w", name, s.l.Attrs().Name, in(s.h.netns), err)
		}
	}
	return nil
}

// Observe reads both ends (RTM_GETLINK in each namespace): nil when the
// pair is missing or either namespace is gone.
func (ld *LinkDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asLink(want)
	if err != nil {
		return nil, err
	}
	p, err := ld.ends(w)
	if errors.Is(err, errNoNetns) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", w.Name, err)
	}
	defer p.Close()
	a, b := p.a, p.b
	if a == nil || b == nil {
		return nil, nil
	}
	got := &plan.Link{Name: w.Name, A: endpoint(a, w.A.Netns), B: endpoint(b, w.B.Netns)}
	if a.Attrs().Alias != linkMark(w.Name) || b.Attrs().Alias != linkMark(w.Name) {
		got.A.Down = true // unmarked: Apply finishes it
	}
	return got, nil
}

func endpoint(l netlink.Link, netns string) plan.LinkEndpoint {
	a := l.Attrs()
	return plan.LinkEndpoint{Netns: netns, Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Down: a.Flags&net.FlagUp == 0}
}

// Diff: MTU, MAC and up/down change in place; another namespace or name
// of an end replaces the pair.
func (ld *LinkDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, ok1 := got.(*plan.Link)
	w, ok2 := want.(*plan.Link)
	if !ok1 || !ok2 || g == nil || w == nil {
		return []string{"type"}, []string{"type"}
	}
	for _, e := range []struct {
		side string
		g, w plan.LinkEndpoint
	}{{"a", g.A, w.A}, {"b", g.B, w.B}} {
		if e.g.Netns != e.w.Netns || e.g.Name != e.w.Name {
			fields = append(fields, e.side+".name")
			forceReplace = append(forceReplace, e.side+".name")
		}
		if e.w.MAC != "" && !sameMAC(e.g.MAC, e.w.MAC) {
			fields = append(fields, e.side+".mac")
		}
		if e.w.MTU != 0 && e.g.MTU != e.w.MTU {
			fields = append(fields, e.side+".mtu")
		}
		if e.g.Down {
			fields = append(fields, e.side+".down")
		}
	}
	return fields, forceReplace
}

// Apply makes the pair when it is missing: one RTM_NEWLINK in A's
// namespace whose VETH_INFO_PEER carries B's name and IFLA_NET_NS_FD, so
// the peer is born in B's namespace (never on the host), with hutch's
// group; then marks, MTU, MAC and up on both ends.
func (ld *LinkDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, err := asLink(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	macA, err := parseMAC(w.A.MAC)
	if err != nil {
		return fmt.Errorf("link %s: %w", w.Name, err)
	}
	macB, err := parseMAC(w.B.MAC)
	if err != nil {
		return fmt.Errorf("link %s: %w", w.Name, err)
	}
	p, err := ld.ends(w)
	if err != nil {
		return fmt.Errorf("link %s: %w", w.Name, err)
	}
	defer p.Close()
	if err := p.dropStale(w.Name); err != nil {
		return err
	}
	ha, hb, a, b := p.ha, p.hb, p.a, p.b
	if a == nil && b == nil {
		f, err := openNetns(ld.d.netnsPath(w.B.Netns))
		if err != nil {
			return fmt.Errorf("link %s: netns %s: %w", w.Name, w.B.Netns, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.HardwareAddr, la.Group = w.A.Name, w.A.MTU, macA, bridgeGroup
		pair := netlink.NewVeth(la)
		pair.PeerName, pair.PeerMTU, pair.PeerHardwareAddr = w.B.Name, uint32(w.B.MTU), macB
		pair.PeerNamespace = netlink.NsFd(f.Fd())
		err = ha.LinkAdd(pair)
		f.Close()
		if err != nil {
			return fmt.Errorf("link %s: create %s%s - %s%s: %w", w.Name, w.A.Name, in(w.A.Netns), w.B.Name, in(w.B.Netns), err)
		}
		if a, err = ha.link(w.A.Name); err == nil && a != nil {
			b, err = hb.link(w.B.Name)
		}
		if err != nil || a == nil || b == nil {
			return fmt.Errorf("link %s: read back: %w", w.Name, errors.Join(err, unix.ENODEV))
		}
	} else if a == nil || b == nil {
		return fmt.Errorf("link %s: only one end exists (replace the link)", w.Name)
	}
	if err := converge(ha, a, "link:"+w.Name, w.A.MTU, macA); err != nil {
		return fmt.Errorf("link %s: %s%s: %w", w.Name, w.A.Name, in(w.A.Netns), err)
	}
	if err := converge(hb, b, "link:"+w.Name, w.B.MTU, macB); err != nil {
		return fmt.Errorf("link %s: %s%s: %w", w.Name, w.B.Name, in(w.B.Netns), err)
	}
	return nil
}

// Delete removes the pair (RTM_DELLINK on one end takes the other along),
// and what is left of a pair whose other namespace went. It succeeds when
// the pair is gone, and refuses ends that are not this link's.
func (ld *LinkDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, err := asLink(r)
	if err != nil {
		return err
	}
	var leftovers []staleEnd
	p, err := ld.ends(w)
	switch {
	case errors.Is(err, errNoNetns):
		// One namespace is gone: what is left is the other end.
		leftovers, err = ld.survivor(w)
		if err != nil {
			return fmt.Errorf("link %s: delete: %w", w.Name, err)
		}
		for _, s := range leftovers {
			defer s.h.Close()
		}
	case err != nil:
		return fmt.Errorf("link %s: delete: %w", w.Name, err)
	default:
		defer p.Close()
		if err := p.dropStale(w.Name); err != nil {
			return err
		}
		if p.a != nil {
			leftovers = append(leftovers, staleEnd{p.ha, p.a})
		}
	}
	for _, s := range leftovers {
		if err := s.h.LinkDel(s.l); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("link %s: delete %s%s: %w", w.Name, s.l.Attrs().Name, in(s.h.netns), err)
		}
	}
	return nil
}

// survivor returns the end of the link in whichever namespace is still
// mounted, when it carries this link's mark.
func (ld *LinkDriver) survivor(w *plan.Link) ([]staleEnd, error) {
	var out []staleEnd
	for _, e := range []plan.LinkEndpoint{w.A, w.B} {
		h, err := ld.d.handle(e.Netns)
		if errors.Is(err, errNoNetns) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l, err := h.link(e.Name)
		if err != nil {
			h.Close()
			return nil, err
		}
		if l == nil || l.Attrs().Alias != linkMark(w.Name) {
			h.Close()
			continue
		}
		out = append(out, staleEnd{h, l})
	}
	return out, nil
}

// DeleteCarried is Delete after one of the link's namespaces was torn down
// in the same run: the kernel removes the pair when that namespace's
// cleanup runs, a moment later. It waits, within carriedWait, for the end
// in the other namespace to go, and then removes what is left, so that
// nothing of the pair outlives the step that says it is gone.
func (ld *LinkDriver) DeleteCarried(ctx context.Context, r plan.Resource) error {
	w, err := asLink(r)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(carriedWait)
	for time.Now().Before(deadline) {
		left, err := ld.survivor(w)
		if err != nil {
			return ld.Delete(ctx, r)
		}
		for _, s := range left {
			s.h.Close()
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return ld.Delete(ctx, r)
}
