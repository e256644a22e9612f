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

	"hutch/plan"
)

// RouteDriver manages routes (plan.KindRoute) in the main table of a
// network namespace, through links hutch owns.
type RouteDriver struct{ d *Driver }

// Kind is plan.KindRoute.
func (rd *RouteDriver) Kind() plan.Kind { return plan.KindRoute }

// route is a plan.Route with its addresses parsed.
type route struct {
	*plan.Route
	dst netip.Prefix
	via netip.Addr // invalid when unset
}

func asRoute(r plan.Resource) (*route, error) {
	rt, ok := r.(*plan.Route)
	if !ok || rt == nil {
		return nil, fmt.Errorf("route driver: resource %T is not a *plan.Route", r)
	}
	out := &route{Route: rt}
	var err error
	if out.dst, err = netip.ParsePrefix(rt.Dst); err != nil {
		return nil, fmt.Errorf("route %s%s: dst: %w", rt.Dst, in(rt.Netns), err)
	}
	out.dst = out.dst.Masked()
	if rt.Via != "" {
		if out.via, err = netip.ParseAddr(rt.Via); err != nil {
			return nil, fmt.Errorf("route %s%s: via: %w", rt.Dst, in(rt.Netns), err)
		}
		if out.via.Is4() != out.dst.Addr().Is4() {
			return nil, fmt.Errorf("route %s%s: via %s is of another family than the destination", rt.Dst, in(rt.Netns), rt.Via)
		}
	}
	if rt.Dev == "" {
		return nil, fmt.Errorf("route %s%s: no dev", rt.Dst, in(rt.Netns))
	}
	return out, nil
}

// metric is the route's metric as the kernel stores it: a metric of 0 is
// 0 for IPv4 but 1024 (IP6_RT_PRIO_USER) for IPv6.
func (r *route) metric() int {
	if r.Metric == 0 && r.dst.Addr().Is6() {
		return 1024
	}
	return r.Metric
}

// dstOf is a kernel route's destination; a default route has none (no
// RTA_DST), which is the /0 prefix of its family.
func dstOf(kr *netlink.Route, fam int) netip.Prefix {
	if kr.Dst == nil {
		if fam == netlink.FAMILY_V4 {
			return netip.MustParsePrefix("0.0.0.0/0")
		}
		return netip.MustParsePrefix("::/0")
	}
	ip, _ := netip.AddrFromSlice(kr.Dst.IP)
	ones, _ := kr.Dst.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones).Masked()
}

// matches dumps the main table (RTM_GETROUTE) and returns the routes to
// r's destination; those with r's metric come first.
func (r *route) matches(h *handle) ([]netlink.Route, error) {
	fam := family(r.dst.Addr())
	all, err := h.routes(fam, unix.RT_TABLE_MAIN)
	if err != nil {
		return nil, err
	}
	var best, rest []netlink.Route
	for _, kr := range all {
		if dstOf(&kr, fam) != r.dst {
			continue
		}
		if kr.Priority == r.metric() {
			best = append(best, kr)
		} else {
			rest = append(rest, kr)
		}
	}
	return append(best, rest...), nil
}

// kroute is a kernel route with the name of its device.
type kroute struct {
	netlink.Route
	dev string
}

// lookup splits the routes to r's destination into those through links
// hutch owns (ours, with r's metric first) and the first one through another
// link that has r's metric, which is the same kernel route key (clash): an
// RTM_NEWROUTE with NLM_F_REPLACE would overwrite it, so hutch must not.
func (r *route) lookup(h *handle) (ours []kroute, clash *kroute, err error) {
	krs, err := r.matches(h)
	if err != nil {
		return nil, nil, err
	}
	for _, kr := range krs {
		l, err := h.linkByIndex(kr.LinkIndex)
		if err != nil {
			return nil, nil, fmt.Errorf("dev %d: %w", kr.LinkIndex, err)
		}
		if l == nil {
			continue // its link went away meanwhile
		}
		k := kroute{Route: kr, dev: l.Attrs().Name}
		if _, ok := owner(l); ok {
			ours = append(ours, k)
		} else if clash == nil && kr.Priority == r.metric() {
			clash = &k
		}
	}
	return ours, clash, nil
}

func (r *route) clashError(k *kroute) error {
	return fmt.Errorf("route %s metric %d%s: dev %s: %w", r.Dst, k.Priority, in(r.Netns), k.dev, ErrNotOwned)
}

// Observe finds the route to Dst through a link hutch owns in the
// namespace's main table (the one with the desired metric when there are
// several) and returns it as the kernel has it: gateway, device and metric.
// It returns nil when there is none or the namespace is missing, and an
// ErrNotOwned error when Dev exists without hutch's mark or another link
// holds a route with the same destination and metric.
func (rd *RouteDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asRoute(want)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, _, err := rd.d.linkIn(w.Netns, w.Dev, w.Container, w.Needs)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", w.Dst, err)
	}
	if h == nil {
		return nil, nil
	}
	defer h.Close()
	ours, clash, err := w.lookup(h)
	if err != nil {
		return nil, fmt.Errorf("route %s%s: %w", w.Dst, in(w.Netns), err)
	}
	if len(ours) == 0 {
		if clash != nil {
			return nil, w.clashError(clash)
		}
		return nil, nil
	}
	kr := ours[0]
	got := *w.Route
	got.Dst = w.Dst
	got.Metric = kr.Priority
	if got.Metric == w.metric() {
		got.Metric = w.Metric // keep 0 for the IPv6 default of 1024
	}
	got.Via = ""
	if kr.Gw != nil {
		got.Via = kr.Gw.String()
	}
	got.Dev = kr.dev
	return &got, nil
}

// Diff: RTM_NEWROUTE with NLM_F_REPLACE changes the gateway and device of a
// route in place; a new metric is a new route key, which Apply adds before
// removing the old one, so nothing but the namespace and the destination
// (the route's ID) forces a replace.
func (rd *RouteDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	w, werr := asRoute(want)
	if werr != nil {
		return []string{"dst"}, []string{"dst"}
	}
	g, gerr := asRoute(got)
	if gerr != nil {
		return plan.FieldDiff(nil, w.Route), nil
	}
	if g.Netns != w.Netns {
		fields, forceReplace = append(fields, "netns"), append(forceReplace, "netns")
	}
	if g.dst != w.dst {
		fields, forceReplace = append(fields, "dst"), append(forceReplace, "dst")
	}
	if g.via != w.via {
		fields = append(fields, "via")
	}
	if g.Dev != w.Dev {
		fields = append(fields, "dev")
	}
	if g.metric() != w.metric() {
		fields = append(fields, "metric")
	}
	return fields, forceReplace
}

// kernelRoute is the netlink form of r on the link with index dev. Like
// `ip route add`, it uses protocol boot and, without a gateway, scope link.
func (r *route) kernelRoute(dev int) *netlink.Route {
	kr := &netlink.Route{
		LinkIndex: dev,
		Dst:       &net.IPNet{IP: r.dst.Addr().AsSlice(), Mask: net.CIDRMask(r.dst.Bits(), r.dst.Addr().BitLen())},
		Priority:  r.Metric,
		Table:     unix.RT_TABLE_MAIN,
		Protocol:  unix.RTPROT_BOOT,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.via.IsValid() {
		kr.Gw = r.via.AsSlice()
	} else {
		kr.Scope = netlink.SCOPE_LINK
	}
	return kr
}

// Apply adds or replaces the route (RTM_NEWROUTE with NLM_F_CREATE |
// NLM_F_REPLACE, `ip route replace`), after checking that the route it
// would replace, if any, is hutch's. When the observed route had another
// metric, that route is removed afterwards.
func (rd *RouteDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, err := asRoute(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, l, err := rd.d.linkIn(w.Netns, w.Dev, w.Container, w.Needs)
	if err == nil && h == nil {
		err = fmt.Errorf("netns %s: %w", w.Netns, errNoNetns)
	}
	if err != nil {
		return fmt.Errorf("route %s: %w", w.Dst, err)
	}
	defer h.Close()
	if l == nil {
		return fmt.Errorf("route %s%s: dev %s: %w", w.Dst, in(w.Netns), w.Dev, unix.ENODEV)
	}
	_, clash, err := w.lookup(h)
	if err != nil {
		return fmt.Errorf("route %s%s: %w", w.Dst, in(w.Netns), err)
	}
	if clash != nil {
		return w.clashError(clash)
	}
	if err := h.RouteReplace(w.kernelRoute(l.Attrs().Index)); err != nil {
		return fmt.Errorf("route %s%s: replace: %w", w.Dst, in(w.Netns), err)
	}
	if ch.Before == nil {
		return nil
	}
	old, err := asRoute(ch.Before)
	if err != nil || old.metric() == w.metric() || old.Netns != w.Netns || old.dst != w.dst {
		return nil
	}
	return rd.remove(h, old, old.metric())
}

// remove deletes the routes to r's destination through r.Dev (a link hutch
// owns), only those with the given metric when metric >= 0.
func (rd *RouteDriver) remove(h *handle, r *route, metric int) error {
	ours, _, err := r.lookup(h)
	if err != nil {
		return fmt.Errorf("route %s%s: %w", r.Dst, in(r.Netns), err)
	}
	var errs []error
	for _, kr := range ours {
		if kr.dev != r.Dev || (metric >= 0 && kr.Priority != metric) {
			continue
		}
		if err := h.RouteDel(&kr.Route); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("route %s%s dev %s: delete: %w", r.Dst, in(r.Netns), kr.dev, err))
		}
	}
	return errors.Join(errs...)
}

// Delete removes the routes to Dst through Dev in the namespace
// (RTM_DELROUTE), whatever their metric. It succeeds when they, the device
// or the namespace are gone (a route goes with its device), and refuses
// when Dev exists without hutch's mark.
func (rd *RouteDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, err := asRoute(r)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, _, err := rd.d.linkIn(w.Netns, w.Dev, w.Container, w.Needs)
	if err != nil {
		return fmt.Errorf("route %s: delete: %w", w.Dst, err)
	}
	if h == nil {
		return nil
	}
	defer h.Close()
	return rd.remove(h, w, -1)
}
