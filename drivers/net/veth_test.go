//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"hutch/internal/testutil"
	"hutch/plan"
)

func TestVethLifecycle(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	vd := d.Veth()
	ns := mustNetns(t, d, "web")
	nsPath := d.netnsPath(ns.Name)
	v := &plan.Veth{
		Container: "web",
		Host:      plan.LinkEnd{Name: testutil.Name("hv"), MTU: 1400},
		Peer:      plan.LinkEnd{Name: testutil.Name("pv"), MTU: 1400, MAC: "02:68:75:74:63:01"},
		Netns:     ns.Name,
	}
	t.Cleanup(func() { delLink(t, "", v.Host.Name) })
	if got, err := vd.Observe(ctx, v); err != nil || got != nil {
		t.Fatalf("Observe before Apply = %v, %v; want nil, nil", got, err)
	}
	if err := vd.Apply(ctx, create(v)); err != nil {
		t.Fatal(err)
	}

	// What the kernel reports, through the library's own handles.
	hh, nh := nsHandle(t, ""), nsHandle(t, nsPath)
	hl := link(t, hh, v.Host.Name)
	if hl == nil {
		t.Fatalf("host end %s missing", v.Host.Name)
	}
	if _, ok := hl.(*netlink.Veth); !ok {
		t.Fatalf("host end is a %s", hl.Type())
	}
	if a := hl.Attrs(); a.Flags&net.FlagUp == 0 || a.MTU != 1400 || a.Alias != "hutch:web" {
		t.Fatalf("host end: up %v, mtu %d, alias %q", a.Flags&net.FlagUp != 0, a.MTU, a.Alias)
	}
	if link(t, hh, v.Peer.Name) != nil {
		t.Fatalf("peer %s is on the host", v.Peer.Name)
	}
	pl := link(t, nh, v.Peer.Name)
	if pl == nil {
		t.Fatalf("peer %s missing from netns %s", v.Peer.Name, ns.Name)
	}
	if a := pl.Attrs(); a.Flags&net.FlagUp == 0 || a.MTU != 1400 || a.Alias != "hutch:web" ||
		a.HardwareAddr.String() != v.Peer.MAC || a.ParentIndex != hl.Attrs().Index {
		t.Fatalf("peer: up %v, mtu %d, alias %q, mac %s, link %d (host end %d)",
			a.Flags&net.FlagUp != 0, a.MTU, a.Alias, a.HardwareAddr, a.ParentIndex, hl.Attrs().Index)
	}
	if lo := link(t, nh, "lo"); lo.Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("lo is down in the namespace")
	}

	got, err := vd.Observe(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*plan.Veth)
	if g.Netns != ns.Name || g.Peer.Name != v.Peer.Name || g.Container != "web" || g.Host.Down || g.Peer.Down {
		t.Fatalf("Observe = %+v", g)
	}
	if f, fr := vd.Diff(got, v); len(f)+len(fr) != 0 {
		t.Fatalf("Diff of the observed pair = %v, %v", f, fr)
	}

	// In place: MTU on both ends, the host end's MAC.
	v2 := *v
	v2.Host.MTU, v2.Peer.MTU, v2.Host.MAC = 1300, 1280, "02:68:75:74:63:02"
	f, fr := vd.Diff(got, &v2)
	if !slicesEq(f, "host.mac", "host.mtu", "peer.mtu") || len(fr) != 0 {
		t.Fatalf("Diff after an MTU and MAC change = %v, %v", f, fr)
	}
	if err := vd.Apply(ctx, update(got, &v2)); err != nil {
		t.Fatal(err)
	}
	hl2, pl2 := link(t, hh, v.Host.Name), link(t, nh, v.Peer.Name)
	if hl2.Attrs().Index != hl.Attrs().Index || pl2.Attrs().Index != pl.Attrs().Index {
		t.Fatal("an in-place update made a new pair")
	}
	if hl2.Attrs().MTU != 1300 || pl2.Attrs().MTU != 1280 || hl2.Attrs().HardwareAddr.String() != v2.Host.MAC ||
		hl2.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("after update: host mtu %d mac %s, peer mtu %d", hl2.Attrs().MTU, hl2.Attrs().HardwareAddr, pl2.Attrs().MTU)
	}

	// Set down by hand: observed as drift, fixed in place.
	if err := nh.LinkSetDown(pl2); err != nil {
		t.Fatal(err)
	}
	got, err = vd.Observe(ctx, &v2)
	if err != nil {
		t.Fatal(err)
	}
	if f, fr := vd.Diff(got, &v2); !slicesEq(f, "peer.down") || len(fr) != 0 {
		t.Fatalf("Diff after the peer was set down by hand = %v, %v", f, fr)
	}
	if err := vd.Apply(ctx, update(got, &v2)); err != nil {
		t.Fatal(err)
	}
	if link(t, nh, v.Peer.Name).Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("Apply did not set the peer up again")
	}

	// A new peer name or namespace replaces the pair.
	v3 := v2
	v3.Peer.Name = testutil.Name("pv")
	if _, fr := vd.Diff(got, &v3); !slicesEq(fr, "peer.name") {
		t.Fatalf("a peer rename must force a replace, got %v", fr)
	}
	v3 = v2
	v3.Netns = "elsewhere"
	if _, fr := vd.Diff(got, &v3); !slicesEq(fr, "netns") {
		t.Fatalf("a namespace change must force a replace, got %v", fr)
	}

	if err := vd.Delete(ctx, &v2); err != nil {
		t.Fatal(err)
	}
	if link(t, hh, v.Host.Name) != nil || link(t, nh, v.Peer.Name) != nil {
		t.Fatal("Delete left an end of the pair")
	}
	if got, err := vd.Observe(ctx, &v2); err != nil || got != nil {
		t.Fatalf("Observe after Delete = %v, %v", got, err)
	}
	if err := vd.Delete(ctx, &v2); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

// A pair removed by hand is observed as missing; one whose namespace is
// gone too (half of the teardown done) deletes without error.
func TestVethDeletedByHand(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	v := mustVeth(t, d, ns)
	hh := nsHandle(t, "")
	if err := hh.LinkDel(link(t, hh, v.Host.Name)); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Veth().Observe(ctx, v); err != nil || got != nil {
		t.Fatalf("Observe of a pair deleted by hand = %v, %v; want nil, nil", got, err)
	}
	if err := d.Netns().Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := d.Veth().Delete(ctx, v); err != nil {
		t.Fatalf("Delete with the pair and its namespace gone: %v", err)
	}
}

// DeleteCarried after the namespace's delete returns once the kernel has
// removed the pair with the namespace; when something still holds the
// namespace (here an open file of it), the pair outlives the unmount, and
// DeleteCarried removes it itself.
func TestVethDeleteCarried(t *testing.T) {
	for _, held := range []bool{false, true} {
		d := tempDriver(t)
		ctx := context.Background()
		ns := mustNetns(t, d, "web")
		v := mustVeth(t, d, ns)
		hh := nsHandle(t, "")
		if held {
			f, err := os.Open(d.netnsPath(ns.Name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
		}
		if err := d.Netns().Delete(ctx, ns); err != nil {
			t.Fatal(err)
		}
		if err := d.Veth().DeleteCarried(ctx, v); err != nil {
			t.Fatalf("held %v: DeleteCarried: %v", held, err)
		}
		if l := link(t, hh, v.Host.Name); l != nil {
			t.Fatalf("held %v: host end %s still there after DeleteCarried", held, v.Host.Name)
		}
	}
}

// A pair left by an interrupted apply (marked, but still down) is adopted:
// Observe returns it, Diff asks to set it up, Apply finishes it.
func TestVethLeftoverAdopted(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: testutil.Name("pv")}, Netns: ns.Name}
	t.Cleanup(func() { delLink(t, "", v.Host.Name) })
	// What create leaves before converge: the pair, marked, down.
	hh := nsHandle(t, "")
	ph := &handle{Handle: hh, netns: ""}
	nh, err := d.handle(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	if err := d.Veth().create(ph, nh, v, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := d.Veth().Observe(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("a marked leftover pair was not observed")
	}
	if f, fr := d.Veth().Diff(got, v); !slicesEq(f, "host.down", "peer.down") || len(fr) != 0 {
		t.Fatalf("Diff of the leftover = %v, %v", f, fr)
	}
	if err := d.Veth().Apply(ctx, update(got, v)); err != nil {
		t.Fatal(err)
	}
	if link(t, hh, v.Host.Name).Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("the adopted pair is still down")
	}
}

// Interfaces hutch did not make are never adopted, changed or removed.
func TestVethNotOwned(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	hh := nsHandle(t, "")
	la := netlink.NewLinkAttrs()
	la.Name = testutil.Name("hv")
	peerName := testutil.Name("pv")
	t.Cleanup(func() { delLink(t, "", la.Name) })
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peerName, PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: la.Name},
		Peer: plan.LinkEnd{Name: testutil.Name("pv")}, Netns: ns.Name}
	if _, err := d.Veth().Observe(ctx, v); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe of a foreign veth: %v, want ErrNotOwned", err)
	}
	if err := d.Veth().Apply(ctx, create(v)); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Apply over a foreign veth: %v, want ErrNotOwned", err)
	}
	if err := d.Veth().Delete(ctx, v); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Delete of a foreign veth: %v, want ErrNotOwned", err)
	}
	l := link(t, hh, la.Name)
	if l == nil || l.Attrs().Alias != "" {
		t.Fatalf("the foreign veth was removed or marked: %v", l)
	}

	// A foreign interface (a veth made inside) already holding the peer's
	// name in the namespace.
	nh := nsHandle(t, d.netnsPath(ns.Name))
	dummy := netlink.NewLinkAttrs()
	dummy.Name = testutil.Name("pv")
	if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: dummy, PeerName: testutil.Name("xv"), PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	v2 := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: dummy.Name}, Netns: ns.Name}
	t.Cleanup(func() { delLink(t, "", v2.Host.Name) })
	if _, err := d.Veth().Observe(ctx, v2); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe with the peer's name taken: %v, want ErrNotOwned", err)
	}
}

func TestVethDiff(t *testing.T) {
	base := plan.Veth{Container: "web", Host: plan.LinkEnd{Name: "veth0", MAC: "02:00:00:00:00:01", MTU: 1500},
		Peer: plan.LinkEnd{Name: "veth1", MTU: 1500}, Netns: "container_ns"}
	vd := (&Driver{}).Veth()
	cases := []struct {
		name        string
		got         func(v *plan.Veth)
		want        func(v *plan.Veth)
		fields, frc []string
	}{
		{name: "same"},
		{name: "kernel chose the peer's mac", got: func(v *plan.Veth) { v.Peer.MAC = "0a:0b:0c:0d:0e:0f" }},
		{name: "mac case", got: func(v *plan.Veth) { v.Host.MAC = "02:00:00:00:00:01" },
			want: func(v *plan.Veth) { v.Host.MAC = "02:00:00:00:00:01" }},
		{name: "mtu unset is the kernel's", got: func(v *plan.Veth) { v.Peer.MTU = 9000 }, want: func(v *plan.Veth) { v.Peer.MTU = 0 }},
		{name: "mtu", want: func(v *plan.Veth) { v.Host.MTU = 1400 }, fields: []string{"host.mtu"}},
		{name: "mac", want: func(v *plan.Veth) { v.Host.MAC = "02:00:00:00:00:02" }, fields: []string{"host.mac"}},
		{name: "down", got: func(v *plan.Veth) { v.Host.Down = true }, fields: []string{"host.down"}},
		{name: "marks differ", got: func(v *plan.Veth) { v.Container = "" }, fields: []string{"container"}},
		{name: "peer name", want: func(v *plan.Veth) { v.Peer.Name = "eth0" },
			fields: []string{"peer.name"}, frc: []string{"peer.name"}},
		{name: "netns", want: func(v *plan.Veth) { v.Netns = "other" },
			fields: []string{"netns"}, frc: []string{"netns"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, w := base, base
			if c.got != nil {
				c.got(&g)
			}
			if c.want != nil {
				c.want(&w)
			}
			f, fr := vd.Diff(&g, &w)
			if diff := cmp.Diff(c.fields, f); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.frc, fr); diff != "" {
				t.Errorf("forceReplace (-want +got):\n%s", diff)
			}
		})
	}
}

// A peer moved to another namespace by hand is found there (through the
// host end's IFLA_LINK_NETNSID) and the move forces a replace.
func TestVethPeerMovedByHand(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	other := mustNetns(t, d, "web")
	v := mustVeth(t, d, ns)
	nh := nsHandle(t, d.netnsPath(ns.Name))
	f, err := os.Open(d.netnsPath(other.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := nh.LinkSetNsFd(link(t, nh, v.Peer.Name), int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	got, err := d.Veth().Observe(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*plan.Veth)
	if g.Netns != other.Name || g.Peer.Name != v.Peer.Name {
		t.Fatalf("Observe: peer %s in %q, want %s in %s", g.Peer.Name, g.Netns, v.Peer.Name, other.Name)
	}
	if _, fr := d.Veth().Diff(got, v); !slicesEq(fr, "netns") {
		t.Fatalf("Diff of a moved peer forces %v, want netns", fr)
	}
	if err := d.Veth().Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if link(t, nsHandle(t, ""), v.Host.Name) != nil || link(t, nsHandle(t, d.netnsPath(other.Name)), v.Peer.Name) != nil {
		t.Fatal("Delete left an end of the moved pair")
	}
}

// Both ends on the host (Netns ""): no namespace involved.
func TestVethOnHost(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: testutil.Name("pv")}}
	t.Cleanup(func() { delLink(t, "", v.Host.Name) })
	if err := d.Veth().Apply(ctx, create(v)); err != nil {
		t.Fatal(err)
	}
	hh := nsHandle(t, "")
	p := link(t, hh, v.Peer.Name)
	if p == nil || p.Attrs().Flags&net.FlagUp == 0 || p.Attrs().Alias != "hutch:web" {
		t.Fatalf("peer on the host: %v", p)
	}
	got, err := d.Veth().Observe(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if f, fr := d.Veth().Diff(got, v); len(f)+len(fr) != 0 {
		t.Fatalf("Diff = %v, %v (observed %+v)", f, fr, got)
	}
	if err := d.Veth().Delete(ctx, v); err != nil {
		t.Fatal(err)
	}
	if link(t, hh, v.Peer.Name) != nil {
		t.Fatal("Delete left the peer")
	}
}

// halfMade makes, through the library, what a create killed before its
// marks leaves: a veth pair without aliases, host end on the host and peer
// born in the namespace mounted at nsPath.
func halfMade(t *testing.T, hostName, peerName, nsPath string) {
	t.Helper()
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	la := netlink.NewLinkAttrs()
	la.Name = hostName
	t.Cleanup(func() { delLink(t, "", hostName) })
	err = nsHandle(t, "").LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peerName, PeerTxQLen: -1,
		PeerNamespace: netlink.NsFd(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
}

// A pair left without marks, whose peer is in hutch's namespace for the
// container under the wanted name, is hutch's: observed (unmarked), marked
// and finished by Apply in place, removed by Delete.
func TestVethHalfMadeAdopted(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: testutil.Name("pv"), MTU: 1400}, Netns: ns.Name}
	halfMade(t, v.Host.Name, v.Peer.Name, d.netnsPath(ns.Name))
	hh, nh := nsHandle(t, ""), nsHandle(t, d.netnsPath(ns.Name))
	hl, pl := link(t, hh, v.Host.Name), link(t, nh, v.Peer.Name)
	if hl.Attrs().Alias != "" || pl.Attrs().Alias != "" {
		t.Fatalf("the half-made pair has marks: %q, %q", hl.Attrs().Alias, pl.Attrs().Alias)
	}

	// The same apply's preflight observes the addresses and routes on the
	// pair before the veth step marks it: its ends are hutch's to them too.
	h4, p4, _, _ := subnet()
	for _, r := range []struct {
		dr driver
		r  plan.Resource
	}{
		{d.Address(), &plan.Address{Container: "web", Link: v.Host.Name, CIDR: h4, Veth: v.ID()}},
		{d.Address(), &plan.Address{Container: "web", Netns: ns.Name, Link: v.Peer.Name, CIDR: p4, Veth: v.ID()}},
		{d.Route(), &plan.Route{Container: "web", Netns: ns.Name, Dst: "0.0.0.0/0", Via: ip(h4), Dev: v.Peer.Name}},
	} {
		if got, err := r.dr.Observe(ctx, r.r); err != nil || got != nil {
			t.Errorf("Observe %s on the half-made pair = %v, %v; want nil, nil", r.r.ID(), got, err)
		}
	}

	got, err := d.Veth().Observe(ctx, v)
	if err != nil {
		t.Fatalf("Observe of a half-made pair: %v", err)
	}
	g, _ := got.(*plan.Veth)
	if g == nil || g.Container != "" || g.Netns != ns.Name || g.Peer.Name != v.Peer.Name {
		t.Fatalf("Observe = %+v, want the unmarked pair in %s", got, ns.Name)
	}
	f, fr := d.Veth().Diff(got, v)
	if !slicesEq(f, "container", "host.down", "peer.mtu", "peer.down") || len(fr) != 0 {
		t.Fatalf("Diff of the half-made pair = %v, %v", f, fr)
	}
	if err := d.Veth().Apply(ctx, update(got, v)); err != nil {
		t.Fatal(err)
	}
	hl2, pl2 := link(t, hh, v.Host.Name), link(t, nh, v.Peer.Name)
	if hl2.Attrs().Index != hl.Attrs().Index || pl2.Attrs().Index != pl.Attrs().Index {
		t.Fatal("Apply made a new pair instead of finishing the half-made one")
	}
	for _, l := range []netlink.Link{hl2, pl2} {
		if a := l.Attrs(); a.Alias != "hutch:web" || a.Flags&net.FlagUp == 0 {
			t.Fatalf("%s after Apply: alias %q, up %v", a.Name, a.Alias, a.Flags&net.FlagUp != 0)
		}
	}
	if pl2.Attrs().MTU != 1400 {
		t.Fatalf("peer mtu %d after Apply, want 1400", pl2.Attrs().MTU)
	}

	// Delete removes a half-made pair.
	v2 := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: testutil.Name("pv")}, Netns: ns.Name}
	halfMade(t, v2.Host.Name, v2.Peer.Name, d.netnsPath(ns.Name))
	if err := d.Veth().Delete(ctx, v2); err != nil {
		t.Fatalf("Delete of a half-made pair: %v", err)
	}
	if link(t, hh, v2.Host.Name) != nil || link(t, nh, v2.Peer.Name) != nil {
		t.Fatal("Delete left the half-made pair")
	}
}

// An unmarked pair is never adopted when anything but its names ties it to
// hutch: its peer in a namespace hutch did not make, in another
// container's, under another name, or marked for someone else.
func TestVethHalfMadeRefused(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	other := mustNetns(t, d, "db")
	// A namespace in hutch's folder that hutch did not make (`ip netns
	// add`): its lo has no mark.
	foreign := testutil.Name("fns")
	if err := prepareNetnsDir(d.netnsDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetns(d.netnsPath(foreign)) })
	if err := createNetns(d.netnsPath(foreign), nil); err != nil {
		t.Fatal(err)
	}
	hh := nsHandle(t, "")
	cases := []struct {
		name     string
		madeIn   string // the namespace the peer is born in
		peerName func(v *plan.Veth) string
		alias    string // set on the peer by hand
		want     func(v *plan.Veth)
		// Whether an address on the host end, on the peer, is refused too.
		// The address driver knows the link, not the pair's other name: a
		// pair of the right shape is hutch's to it, and the veth's refusal
		// alone stops the apply. A hutch mark on the link itself is
		// hutch's, whichever container it names.
		hostAddr, peerAddr bool
	}{
		{name: "peer in a namespace hutch did not make", madeIn: foreign,
			want: func(v *plan.Veth) { v.Netns = foreign }, hostAddr: true, peerAddr: true},
		{name: "peer in another container's namespace", madeIn: other.Name, hostAddr: true, peerAddr: true},
		{name: "peer in hutch's namespace, wanted in another", madeIn: ns.Name,
			want: func(v *plan.Veth) { v.Netns = other.Name; v.Container = "db" }, hostAddr: true, peerAddr: true},
		{name: "peer under another name", madeIn: ns.Name,
			peerName: func(*plan.Veth) string { return testutil.Name("xv") }},
		{name: "peer marked for someone else", madeIn: ns.Name, alias: "vpn", hostAddr: true, peerAddr: true},
		{name: "peer marked for another container", madeIn: ns.Name, alias: "hutch:db", hostAddr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
				Peer: plan.LinkEnd{Name: testutil.Name("pv")}, Netns: ns.Name}
			peer := v.Peer.Name
			if c.peerName != nil {
				peer = c.peerName(v)
			}
			halfMade(t, v.Host.Name, peer, d.netnsPath(c.madeIn))
			nh := nsHandle(t, d.netnsPath(c.madeIn))
			if c.alias != "" {
				if err := nh.LinkSetAlias(link(t, nh, peer), c.alias); err != nil {
					t.Fatal(err)
				}
			}
			if c.want != nil {
				c.want(v)
			}
			if _, err := d.Veth().Observe(ctx, v); !errors.Is(err, ErrNotOwned) {
				t.Errorf("Observe: %v, want ErrNotOwned", err)
			}
			h4, p4, _, _ := subnet()
			for _, a := range []struct {
				*plan.Address
				refused bool
			}{
				{&plan.Address{Container: v.Container, Link: v.Host.Name, CIDR: h4, Veth: v.ID()}, c.hostAddr},
				{&plan.Address{Container: v.Container, Netns: c.madeIn, Link: peer, CIDR: p4, Veth: v.ID()}, c.peerAddr},
			} {
				if _, err := d.Address().Observe(ctx, a.Address); errors.Is(err, ErrNotOwned) != a.refused {
					t.Errorf("Observe %s: %v, want ErrNotOwned %v", a.ID(), err, a.refused)
				}
			}
			if err := d.Veth().Apply(ctx, create(v)); !errors.Is(err, ErrNotOwned) {
				t.Errorf("Apply: %v, want ErrNotOwned", err)
			}
			if err := d.Veth().Delete(ctx, v); !errors.Is(err, ErrNotOwned) {
				t.Errorf("Delete: %v, want ErrNotOwned", err)
			}
			hl, pl := link(t, hh, v.Host.Name), link(t, nh, peer)
			if hl == nil || pl == nil || hl.Attrs().Alias != "" || pl.Attrs().Alias != c.alias ||
				hl.Attrs().Flags&net.FlagUp != 0 {
				t.Fatalf("the pair was removed or changed: host %v, peer %v", hl, pl)
			}
		})
	}

	// A pair made inside a namespace hutch did not make, under the names a
	// fallback create uses.
	v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: testutil.Name("pv")}, Netns: foreign}
	fh := nsHandle(t, d.netnsPath(foreign))
	la := netlink.NewLinkAttrs()
	la.Name = v.Host.Name
	if err := fh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: v.Peer.Name, PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Veth().Observe(ctx, v); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Observe of a pair inside a foreign namespace: %v, want ErrNotOwned", err)
	}
	if err := d.Veth().Delete(ctx, v); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Delete of a pair inside a foreign namespace: %v, want ErrNotOwned", err)
	}
	if link(t, fh, v.Host.Name) == nil || link(t, fh, v.Peer.Name) == nil {
		t.Error("the pair inside the foreign namespace was removed")
	}
}

var errStopped = errors.New("stopped here, as if killed")

// A create stopped after any of its netlink messages, on the usual path and
// on the fallback (the pair made inside, the host end moved out), leaves a
// pair that the next Observe accepts and Apply finishes, or that Delete
// removes.
func TestVethCrashAtEveryMessage(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		for _, then := range []string{"apply", "delete"} {
			for k := 1; ; k++ {
				stopped := false
				t.Run(fmt.Sprintf("fallback=%v/%s/after-message-%d", fallback, then, k), func(t *testing.T) {
					d := tempDriver(t)
					ctx := context.Background()
					ns := mustNetns(t, d, "web")
					v := &plan.Veth{Container: "web", Host: plan.LinkEnd{Name: testutil.Name("hv"), MTU: 1400},
						Peer: plan.LinkEnd{Name: testutil.Name("pv"), MTU: 1400}, Netns: ns.Name}
					t.Cleanup(func() { delLink(t, "", v.Host.Name) })
					hh, nh := nsHandle(t, ""), nsHandle(t, d.netnsPath(ns.Name))
					d.noPeerNetns = fallback
					n, at := 0, ""
					d.vethStep = func(step string) error {
						if n++; n == k {
							at = step
							return errStopped
						}
						return nil
					}
					err := d.Veth().Apply(ctx, create(v))
					d.vethStep = nil
					if !errors.Is(err, errStopped) {
						if err != nil {
							t.Fatal(err)
						}
						return // fewer than k messages
					}
					stopped = true
					t.Logf("stopped after %q", at)
					if fallback && k == 1 && (link(t, nh, v.Host.Name) == nil || link(t, hh, v.Host.Name) != nil) {
						t.Fatal("the fallback did not make the pair inside the namespace")
					}
					if !fallback && k == 1 && link(t, hh, v.Host.Name).Attrs().Alias != "" {
						t.Fatal("the host end has a mark after the first message")
					}

					// The preflight of the next apply observes the pair's
					// addresses and routes too: no conflict.
					h4, p4, _, _ := subnet()
					for _, r := range []struct {
						dr driver
						r  plan.Resource
					}{
						{d.Address(), &plan.Address{Container: "web", Link: v.Host.Name, CIDR: h4, Veth: v.ID()}},
						{d.Address(), &plan.Address{Container: "web", Netns: ns.Name, Link: v.Peer.Name, CIDR: p4, Veth: v.ID()}},
						{d.Route(), &plan.Route{Container: "web", Netns: ns.Name, Dst: "0.0.0.0/0", Via: ip(h4), Dev: v.Peer.Name,
							Needs: []string{"address/x", v.ID()}}},
					} {
						if got, err := r.dr.Observe(ctx, r.r); err != nil || got != nil {
							t.Errorf("Observe %s = %v, %v; want nil, nil", r.r.ID(), got, err)
						}
					}
					got, err := d.Veth().Observe(ctx, v)
					if err != nil {
						t.Fatalf("Observe: %v", err)
					}
					if got == nil {
						t.Fatal("Observe: the half-made pair is not seen")
					}
					if then == "delete" {
						if err := d.Veth().Delete(ctx, v); err != nil {
							t.Fatal(err)
						}
						if link(t, hh, v.Host.Name) != nil || link(t, nh, v.Peer.Name) != nil || link(t, nh, v.Host.Name) != nil {
							t.Fatal("Delete left an end of the pair")
						}
						return
					}
					f, fr := d.Veth().Diff(got, v)
					if len(f) == 0 || len(fr) != 0 {
						t.Fatalf("Diff = %v, %v; want an update in place", f, fr)
					}
					if err := d.Veth().Apply(ctx, update(got, v)); err != nil {
						t.Fatal(err)
					}
					hl, pl := link(t, hh, v.Host.Name), link(t, nh, v.Peer.Name)
					if hl == nil || pl == nil || pl.Attrs().ParentIndex != hl.Attrs().Index {
						t.Fatalf("after Apply: host end %v, peer %v", hl, pl)
					}
					for _, l := range []netlink.Link{hl, pl} {
						if a := l.Attrs(); a.Alias != "hutch:web" || a.Flags&net.FlagUp == 0 || a.MTU != 1400 {
							t.Fatalf("%s after Apply: alias %q, up %v, mtu %d", a.Name, a.Alias, a.Flags&net.FlagUp != 0, a.MTU)
						}
					}
					got, err = d.Veth().Observe(ctx, v)
					if err != nil {
						t.Fatal(err)
					}
					if f, fr := d.Veth().Diff(got, v); len(f)+len(fr) != 0 {
						t.Fatalf("not converged: Diff = %v, %v", f, fr)
					}
				})
				if !stopped {
					break
				}
			}
		}
	}
}
