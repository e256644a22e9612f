//go:build linux

package net

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"hutch/plan"
)

// linkIn reads the interface called name in the namespace at path, straight
// from the kernel.
func linkIn(t *testing.T, path, name string) netlink.Link {
	t.Helper()
	return link(t, nsHandle(t, path), name)
}

// A link between two namespaces: both ends marked and up, the peer born in
// the other namespace (never on the host), a ping across; drift repaired;
// gone with either namespace; deleted.
func TestLinkLifecycle(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	nsA, nsB := mustNetns(t, d, "router"), mustNetns(t, d, "server")
	pa, pb := d.netnsPath(nsA.Name), d.netnsPath(nsB.Name)
	l := &plan.Link{Name: "r1-s1", A: plan.LinkEndpoint{Netns: nsA.Name, Name: "eth1", MTU: 1400}, B: plan.LinkEndpoint{Netns: nsB.Name, Name: "eth0"}}
	if got, err := d.Link().Observe(ctx, l); err != nil || got != nil {
		t.Fatalf("before apply: %v, %v", got, err)
	}
	if err := d.Link().Apply(ctx, create(l)); err != nil {
		t.Fatal(err)
	}
	a, b := linkIn(t, pa, "eth1"), linkIn(t, pb, "eth0")
	if a == nil || b == nil {
		t.Fatalf("ends: %v %v", a, b)
	}
	for _, e := range []netlink.Link{a, b} {
		if e.Attrs().Alias != "hutch:link:r1-s1" || e.Attrs().Flags&1 == 0 {
			t.Errorf("%s: alias %q flags %v", e.Attrs().Name, e.Attrs().Alias, e.Attrs().Flags)
		}
	}
	if a.Attrs().MTU != 1400 || a.Attrs().ParentIndex != b.Attrs().Index || b.Attrs().ParentIndex != a.Attrs().Index {
		t.Errorf("pair: mtu %d, %d->%d, %d->%d", a.Attrs().MTU, a.Attrs().ParentIndex, b.Attrs().Index, b.Attrs().ParentIndex, a.Attrs().Index)
	}
	got, err := d.Link().Observe(ctx, l)
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	if f, _ := d.Link().Diff(got, l); len(f) != 0 {
		t.Errorf("after apply: diff %v", f)
	}
	mustRun(t, "nsenter", "--net="+pa, "ip", "addr", "add", "10.66.0.1/30", "dev", "eth1")
	mustRun(t, "nsenter", "--net="+pb, "ip", "addr", "add", "10.66.0.2/30", "dev", "eth0")
	mustRun(t, "nsenter", "--net="+pa, "busybox", "ping", "-c", "1", "-W", "2", "10.66.0.2")

	mustRun(t, "nsenter", "--net="+pb, "ip", "link", "set", "eth0", "down")
	got, _ = d.Link().Observe(ctx, l)
	if f, replace := d.Link().Diff(got, l); strings.Join(f, ",") != "b.down" || len(replace) != 0 {
		t.Errorf("down by hand: %v %v", f, replace)
	}
	if err := d.Link().Apply(ctx, &plan.Change{ID: l.ID(), Kind: l.Kind(), Action: plan.Update, Before: got, After: l}); err != nil {
		t.Fatal(err)
	}
	if b := linkIn(t, pb, "eth0"); b.Attrs().Flags&1 == 0 {
		t.Errorf("not up after repair")
	}

	if err := d.Link().Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	if linkIn(t, pa, "eth1") != nil || linkIn(t, pb, "eth0") != nil {
		t.Errorf("an end survived delete")
	}
	if err := d.Link().Delete(ctx, l); err != nil {
		t.Errorf("delete again: %v", err)
	}
}

// An interface of the wanted name that is not this link's end is a
// conflict, left alone by delete.
func TestLinkNotOwned(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	nsA, nsB := mustNetns(t, d, "router"), mustNetns(t, d, "server")
	pa := d.netnsPath(nsA.Name)
	mustRun(t, "nsenter", "--net="+pa, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "other")
	l := &plan.Link{Name: "r1-s1", A: plan.LinkEndpoint{Netns: nsA.Name, Name: "eth1"}, B: plan.LinkEndpoint{Netns: nsB.Name, Name: "eth0"}}
	if _, err := d.Link().Observe(ctx, l); !errors.Is(err, ErrNotOwned) {
		t.Errorf("observe: %v", err)
	}
	if err := d.Link().Apply(ctx, create(l)); !errors.Is(err, ErrNotOwned) {
		t.Errorf("apply: %v", err)
	}
	if err := d.Link().Delete(ctx, l); !errors.Is(err, ErrNotOwned) {
		t.Errorf("delete: %v", err)
	}
	if linkIn(t, pa, "eth1") == nil {
		t.Errorf("someone else's eth1 was removed")
	}
}

// A pair made but not yet marked (apply killed between RTM_NEWLINK and the
// aliases) carries hutch's group on the end made first: adopted, finished.
func TestLinkHalfMadeAdopted(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	nsA, nsB := mustNetns(t, d, "router"), mustNetns(t, d, "server")
	pa, pb := d.netnsPath(nsA.Name), d.netnsPath(nsB.Name)
	mustRun(t, "nsenter", "--net="+pa, "ip", "link", "add", "eth1", "group", strconv.Itoa(bridgeGroup), "type", "veth", "peer", "name", "eth0", "netns", pb)
	l := &plan.Link{Name: "r1-s1", A: plan.LinkEndpoint{Netns: nsA.Name, Name: "eth1"}, B: plan.LinkEndpoint{Netns: nsB.Name, Name: "eth0"}}
	got, err := d.Link().Observe(ctx, l)
	if err != nil || got == nil {
		t.Fatalf("half-made: %v, %v", got, err)
	}
	if f, _ := d.Link().Diff(got, l); len(f) == 0 {
		t.Errorf("a half-made link shows no change")
	}
	if err := d.Link().Apply(ctx, create(l)); err != nil {
		t.Fatal(err)
	}
	if a, b := linkIn(t, pa, "eth1"), linkIn(t, pb, "eth0"); a.Attrs().Alias != "hutch:link:r1-s1" || b.Attrs().Alias != "hutch:link:r1-s1" {
		t.Errorf("marks after apply: %q %q", a.Attrs().Alias, b.Attrs().Alias)
	}
}
