//go:build linux

package net

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// kernelRoutes lists the routes to dst in the main table as the library dumps it:
// "DST via GW dev DEV metric N".
func kernelRoutes(t testing.TB, h *netlink.Handle, fam int, dst string) []string {
	t.Helper()
	rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParsePrefix(dst)
	var out []string
	for _, r := range rs {
		if dstOf(&r, fam) != want {
			continue
		}
		l, err := h.LinkByIndex(r.LinkIndex)
		if err != nil {
			t.Fatal(err)
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		out = append(out, s+" dev "+l.Attrs().Name+" metric "+strconv.Itoa(r.Priority))
	}
	return out
}

func TestRouteLifecycle(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	rd := d.Route()
	ns, v, as := addresses(t, d)
	for _, a := range as {
		if err := d.Address().Apply(ctx, create(a)); err != nil {
			t.Fatal(err)
		}
	}
	nh := nsHandle(t, d.netnsPath(ns.Name))
	needs := []string{v.ID()}
	routes := []*plan.Route{
		// Default routes inside, via the host end.
		{Container: "web", Netns: ns.Name, Dst: "0.0.0.0/0", Via: ip(as[0].CIDR), Dev: v.Peer.Name, Needs: needs},
		{Container: "web", Netns: ns.Name, Dst: "::/0", Via: ip(as[1].CIDR), Dev: v.Peer.Name, Needs: needs},
		// A static route with a metric, and a device route (TEST-NET-2 and
		// -3: routes only, nothing is sent there).
		{Container: "web", Netns: ns.Name, Dst: "198.51.100.0/24", Via: ip(as[0].CIDR), Dev: v.Peer.Name, Metric: 50, Needs: needs},
		{Container: "web", Netns: ns.Name, Dst: "203.0.113.0/24", Dev: v.Peer.Name, Needs: needs},
	}
	wantKernel := []string{
		"0.0.0.0/0 via " + ip(as[0].CIDR) + " dev " + v.Peer.Name + " metric 0",
		"::/0 via " + ip(as[1].CIDR) + " dev " + v.Peer.Name + " metric 1024",
		"198.51.100.0/24 via " + ip(as[0].CIDR) + " dev " + v.Peer.Name + " metric 50",
		"203.0.113.0/24 dev " + v.Peer.Name + " metric 0",
	}
	fam := func(r *plan.Route) int {
		if netip.MustParsePrefix(r.Dst).Addr().Is4() {
			return netlink.FAMILY_V4
		}
		return netlink.FAMILY_V6
	}
	for i, r := range routes {
		if got, err := rd.Observe(ctx, r); err != nil || got != nil {
			t.Fatalf("Observe %s before Apply = %v, %v", r.ID(), got, err)
		}
		if err := rd.Apply(ctx, create(r)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{wantKernel[i]}, kernelRoutes(t, nh, fam(r), r.Dst)); diff != "" {
			t.Fatalf("kernel routes to %s (-want +got):\n%s", r.Dst, diff)
		}
		got, err := rd.Observe(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(plan.Resource(r), got); diff != "" {
			t.Fatalf("Observe %s (-want +got):\n%s", r.ID(), diff)
		}
		if f, fr := rd.Diff(got, r); len(f)+len(fr) != 0 {
			t.Fatalf("Diff of observed %s = %v, %v", r.ID(), f, fr)
		}
	}

	// In place: a new metric (a new kernel route key).
	static := routes[2]
	got, err := rd.Observe(ctx, static)
	if err != nil {
		t.Fatal(err)
	}
	moved := *static
	moved.Metric = 60
	moved.Via = ip(as[0].CIDR)
	if f, fr := rd.Diff(got, &moved); !slicesEq(f, "metric") || len(fr) != 0 {
		t.Fatalf("Diff after a metric change = %v, %v", f, fr)
	}
	if err := rd.Apply(ctx, update(got, &moved)); err != nil {
		t.Fatal(err)
	}
	want := []string{"198.51.100.0/24 via " + ip(as[0].CIDR) + " dev " + v.Peer.Name + " metric 60"}
	if diff := cmp.Diff(want, kernelRoutes(t, nh, netlink.FAMILY_V4, static.Dst)); diff != "" {
		t.Fatalf("routes after the metric change (-want +got):\n%s", diff)
	}
	// Changed by hand: the gateway dropped, a device route left.
	kr := netlink.Route{Dst: mustIPNet(static.Dst), LinkIndex: link(t, nh, v.Peer.Name).Attrs().Index,
		Priority: 60, Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_LINK}
	if err := nh.RouteReplace(&kr); err != nil {
		t.Fatal(err)
	}
	got, err = rd.Observe(ctx, &moved)
	if err != nil {
		t.Fatal(err)
	}
	if f, fr := rd.Diff(got, &moved); !slicesEq(f, "via") || len(fr) != 0 {
		t.Fatalf("Diff after the gateway was dropped by hand = %v, %v (observed %+v)", f, fr, got)
	}
	if err := rd.Apply(ctx, update(got, &moved)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, kernelRoutes(t, nh, netlink.FAMILY_V4, static.Dst)); diff != "" {
		t.Fatalf("routes after Apply fixed the gateway (-want +got):\n%s", diff)
	}

	routes[2] = &moved
	for _, r := range routes {
		if err := rd.Delete(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got := kernelRoutes(t, nh, fam(r), r.Dst); len(got) != 0 {
			t.Fatalf("routes to %s left after Delete: %v", r.Dst, got)
		}
		if err := rd.Delete(ctx, r); err != nil {
			t.Fatalf("second Delete of %s: %v", r.ID(), err)
		}
		if got, err := rd.Observe(ctx, r); err != nil || got != nil {
			t.Fatalf("Observe %s after Delete = %v, %v", r.ID(), got, err)
		}
	}
}

func mustIPNet(cidr string) *net.IPNet {
	n, err := netlink.ParseIPNet(cidr)
	if err != nil {
		panic(err)
	}
	return n
}

func TestRouteDiff(t *testing.T) {
	rd := (&Driver{}).Route()
	base := plan.Route{Container: "web", Netns: "ns", Dst: "::/0", Via: "fd00::1", Dev: "veth1"}
	cases := []struct {
		name        string
		got         func(r *plan.Route)
		fields, frc []string
	}{
		{name: "same"},
		{name: "ipv6 metric 0 is 1024", got: func(r *plan.Route) { r.Metric = 1024 }},
		{name: "metric", got: func(r *plan.Route) { r.Metric = 100 }, fields: []string{"metric"}},
		{name: "via", got: func(r *plan.Route) { r.Via = "fd00::3" }, fields: []string{"via"}},
		{name: "no via", got: func(r *plan.Route) { r.Via = "" }, fields: []string{"via"}},
		{name: "dev", got: func(r *plan.Route) { r.Dev = "eth0" }, fields: []string{"dev"}},
		{name: "dst written otherwise", got: func(r *plan.Route) { r.Dst = "0::0/0" }},
		{name: "netns", got: func(r *plan.Route) { r.Netns = "" }, fields: []string{"netns"}, frc: []string{"netns"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, w := base, base
			if c.got != nil {
				c.got(&g)
			}
			f, fr := rd.Diff(&g, &w)
			if diff := cmp.Diff(c.fields, f); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.frc, fr); diff != "" {
				t.Errorf("forceReplace (-want +got):\n%s", diff)
			}
		})
	}
}

// A route with the same destination and metric through a link hutch does
// not own is the same kernel route key: hutch reports it and never
// replaces it. (All inside the test's own namespace.)
func TestRouteClash(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	v := mustVeth(t, d, ns)
	nh := nsHandle(t, d.netnsPath(ns.Name))
	la := netlink.NewLinkAttrs()
	la.Name = testutil.Name("xv")
	if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: testutil.Name("xv"), PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	foreign := link(t, nh, la.Name)
	if err := nh.LinkSetUp(foreign); err != nil {
		t.Fatal(err)
	}
	dst := "192.0.2.0/24" // TEST-NET-1: a route only, nothing is sent
	kr := &netlink.Route{Dst: mustIPNet(dst), LinkIndex: foreign.Attrs().Index, Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_LINK}
	if err := nh.RouteAdd(kr); err != nil {
		t.Fatal(err)
	}
	r := &plan.Route{Container: "web", Netns: ns.Name, Dst: dst, Dev: v.Peer.Name, Needs: []string{v.ID()}}
	if _, err := d.Route().Observe(ctx, r); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe with a foreign route of the same key: %v, want ErrNotOwned", err)
	}
	if err := d.Route().Apply(ctx, create(r)); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Apply over a foreign route of the same key: %v, want ErrNotOwned", err)
	}
	want := []string{dst + " dev " + la.Name + " metric 0"}
	if diff := cmp.Diff(want, kernelRoutes(t, nh, netlink.FAMILY_V4, dst)); diff != "" {
		t.Fatalf("the foreign route was touched (-want +got):\n%s", diff)
	}
	// Another metric is another key: hutch's route lives beside it, and its
	// Delete leaves the foreign one.
	r.Metric = 10
	if err := d.Route().Apply(ctx, create(r)); err != nil {
		t.Fatal(err)
	}
	if err := d.Route().Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, kernelRoutes(t, nh, netlink.FAMILY_V4, dst)); diff != "" {
		t.Fatalf("routes after hutch's Delete (-want +got):\n%s", diff)
	}
}
