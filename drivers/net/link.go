//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"net"

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

// ends opens both namespaces and finds the pair: nil ends when there is
// none. An end of the wanted name that is not this link's (another kind
// of link, another mark, not the other end's peer) is an ErrNotOwned
// error. A namespace that is gone is errNoNetns.
func (ld *LinkDriver) ends(w *plan.Link) (ha, hb *handle, a, b netlink.Link, err error) {
	if ha, err = ld.d.handle(w.A.Netns); err != nil {
		return nil, nil, nil, nil, err
	}
	if hb, err = ld.d.handle(w.B.Netns); err != nil {
		ha.Close()
		return nil, nil, nil, nil, err
	}
	fail := func(err error) (*handle, *handle, netlink.Link, netlink.Link, error) {
		ha.Close()
		hb.Close()
		return nil, nil, nil, nil, err
	}
	if a, err = ha.link(w.A.Name); err != nil {
		return fail(err)
	}
	if b, err = hb.link(w.B.Name); err != nil {
		return fail(err)
	}
	for _, e := range []struct {
		l         netlink.Link
		end, peer plan.LinkEndpoint
		other     netlink.Link
	}{{a, w.A, w.B, b}, {b, w.B, w.A, a}} {
		if e.l == nil {
			continue
		}
		if _, ok := e.l.(*netlink.Veth); !ok {
			return fail(fmt.Errorf("%s%s: %w (it is a %s link)", e.end.Name, in(e.end.Netns), ErrNotOwned, e.l.Type()))
		}
		// The kernel takes no alias when it makes a pair; hutch's group,
		// which it does take for the end it makes first, proves a pair
		// stopped before its marks, and that end proves its peer.
		proven := func(l netlink.Link) bool {
			return l != nil && (l.Attrs().Alias == linkMark(w.Name) || l.Attrs().Alias == "" && l.Attrs().Group == bridgeGroup)
		}
		if al := e.l.Attrs().Alias; !proven(e.l) && !(al == "" && proven(e.other)) {
			return fail(fmt.Errorf("%s%s: %w (its alias is %q, hutch marks this link %q)", e.end.Name, in(e.end.Netns), ErrNotOwned, al, linkMark(w.Name)))
		}
		if e.other == nil || e.l.Attrs().ParentIndex != e.other.Attrs().Index || e.l.Attrs().NetNsID < 0 {
			return fail(fmt.Errorf("%s%s: %w (its peer is not %s%s)", e.end.Name, in(e.end.Netns), ErrNotOwned, e.peer.Name, in(e.peer.Netns)))
		}
	}
	return ha, hb, a, b, nil
}

// Observe reads both ends (RTM_GETLINK in each namespace): nil when the
// pair is missing or either namespace is gone.
func (ld *LinkDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asLink(want)
	if err != nil {
		return nil, err
	}
	ha, hb, a, b, err := ld.ends(w)
	if errors.Is(err, errNoNetns) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", w.Name, err)
	}
	defer ha.Close()
	defer hb.Close()
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
	ha, hb, a, b, err := ld.ends(w)
	if err != nil {
		return fmt.Errorf("link %s: %w", w.Name, err)
	}
	defer ha.Close()
	defer hb.Close()
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

// Delete removes the pair (RTM_DELLINK on one end takes the other along).
// It succeeds when the pair or either namespace is gone, and refuses ends
// that are not this link's.
func (ld *LinkDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, err := asLink(r)
	if err != nil {
		return err
	}
	ha, hb, a, _, err := ld.ends(w)
	if errors.Is(err, errNoNetns) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("link %s: delete: %w", w.Name, err)
	}
	defer ha.Close()
	defer hb.Close()
	if a == nil {
		return nil
	}
	if err := ha.LinkDel(a); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("link %s: delete: %w", w.Name, err)
	}
	return nil
}
