//go:build linux

package net

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// Owned finds a container's namespace and its pairs by their marks, and an
// unmarked pair only through the proof of provenEnd; a namespace without
// the mark (called like the container) and a pair whose peer is in it are
// never found. Delete accepts what Owned returns.
func TestOwnedFindsMarkedAndProvenOnly(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	c := testutil.Name("oc") // unique: host links are shared with other tests
	ns := mustNetns(t, d, c)
	marked := mustVeth(t, d, ns)
	half := &plan.Veth{Container: c, Host: plan.LinkEnd{Name: testutil.Name("hv")},
		Peer: plan.LinkEnd{Name: testutil.Name("pv")}, Netns: ns.Name}
	halfMade(t, half.Host.Name, half.Peer.Name, d.netnsPath(ns.Name))

	// `ip netns add C`: a namespace without the mark, with a pair in it.
	if err := prepareNetnsDir(d.netnsDir); err != nil {
		t.Fatal(err)
	}
	plain := c
	if err := createNetns(d.netnsPath(plain), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetns(d.netnsPath(plain)) })
	stranger := &plan.Veth{Host: plan.LinkEnd{Name: testutil.Name("hv")}, Peer: plan.LinkEnd{Name: testutil.Name("pv")}}
	halfMade(t, stranger.Host.Name, stranger.Peer.Name, d.netnsPath(plain))

	gotNs, err := d.Netns().Owned(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []plan.Resource{&plan.Netns{Container: c, Name: ns.Name}}; !sameJSON(gotNs, want) {
		t.Errorf("netns Owned = %s, want %s", js(gotNs), js(want))
	}
	gotVeth, err := d.Veth().Owned(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(gotVeth, func(a, b plan.Resource) int { return cmpStr(a.ID(), b.ID()) })
	want := []plan.Resource{
		&plan.Veth{Container: c, Host: plan.LinkEnd{Name: marked.Host.Name}, Peer: plan.LinkEnd{Name: marked.Peer.Name}, Netns: ns.Name},
		&plan.Veth{Container: c, Host: plan.LinkEnd{Name: half.Host.Name}, Peer: plan.LinkEnd{Name: half.Peer.Name}, Netns: ns.Name},
	}
	slices.SortFunc(want, func(a, b plan.Resource) int { return cmpStr(a.ID(), b.ID()) })
	if !sameJSON(gotVeth, want) {
		t.Errorf("veth Owned = %s, want %s", js(gotVeth), js(want))
	}
	for _, m := range []interface {
		Marked(context.Context) ([]string, error)
	}{d.Netns(), d.Veth()} {
		names, err := m.Marked(ctx)
		if err != nil || !slices.Contains(names, c) {
			t.Errorf("%T Marked = %q, %v; want it to hold %s", m, names, err, c)
		}
	}
	if other, err := d.Veth().Owned(ctx, testutil.Name("oc")); err != nil || len(other) != 0 {
		t.Errorf("Owned of another container = %s, %v; want nothing", js(other), err)
	}

	for _, r := range gotVeth {
		if err := d.Veth().Delete(ctx, r); err != nil {
			t.Fatalf("Delete %s: %v", r.ID(), err)
		}
	}
	for _, r := range gotNs {
		if err := d.Netns().Delete(ctx, r); err != nil {
			t.Fatalf("Delete %s: %v", r.ID(), err)
		}
	}
	hh := nsHandle(t, "")
	for _, name := range []string{marked.Host.Name, half.Host.Name} {
		if link(t, hh, name) != nil {
			t.Errorf("link %s left after Delete", name)
		}
	}
	if link(t, hh, stranger.Host.Name) == nil {
		t.Errorf("link %s, not hutch's, was removed", stranger.Host.Name)
	}
	if !exists(d.netnsPath(plain)) || exists(d.netnsPath(ns.Name)) {
		t.Errorf("after Delete: unmarked netns there %v (want true), hutch's there %v (want false)",
			exists(d.netnsPath(plain)), exists(d.netnsPath(ns.Name)))
	}
}

// A namespace and a veth pair marked for one container are another
// container's conflict: Observe and Apply for it fail with an error naming
// the owner, Delete for it removes nothing, and the marks stay the owner's.
// (Two state roots can both want a namespace called alike; before, the
// second apply rewrote the marks and took the objects over, and its delete
// removed them from under the first container.)
func TestMarkedForAnotherContainerIsLeftAlone(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	owner, other := testutil.Name("oa"), testutil.Name("ob")
	ns := mustNetns(t, d, owner)
	v := mustVeth(t, d, ns)
	theirNs := &plan.Netns{Container: other, Name: ns.Name}
	theirVeth := &plan.Veth{Container: other, Host: v.Host, Peer: v.Peer, Netns: ns.Name}

	for _, c := range []struct {
		name string
		drv  interface {
			Observe(context.Context, plan.Resource) (plan.Resource, error)
			Apply(context.Context, *plan.Change) error
			Delete(context.Context, plan.Resource) error
		}
		r plan.Resource
	}{{"netns", d.Netns(), theirNs}, {"veth", d.Veth(), theirVeth}} {
		if got, err := c.drv.Observe(ctx, c.r); !errors.Is(err, ErrOtherContainer) || !strings.Contains(err.Error(), "container "+owner+"'s") {
			t.Errorf("%s: Observe for %s = %v, %v; want an ErrOtherContainer error naming %s", c.name, other, got, err, owner)
		}
		if err := c.drv.Apply(ctx, create(c.r)); !errors.Is(err, ErrOtherContainer) {
			t.Errorf("%s: Apply for %s = %v; want ErrOtherContainer", c.name, other, err)
		}
		if err := c.drv.Delete(ctx, c.r); !errors.Is(err, ErrOtherContainer) {
			t.Errorf("%s: Delete for %s = %v; want ErrOtherContainer", c.name, other, err)
		}
	}
	if err := d.Veth().DeleteCarried(ctx, theirVeth); !errors.Is(err, ErrOtherContainer) {
		t.Errorf("veth: DeleteCarried for %s = %v; want ErrOtherContainer", other, err)
	}
	// The kernel still has both, marked for their owner.
	if !exists(d.netnsPath(ns.Name)) {
		t.Fatalf("netns %s was removed", ns.Name)
	}
	if a := link(t, nsHandle(t, d.netnsPath(ns.Name)), "lo").Attrs().Alias; a != "hutch:"+owner {
		t.Errorf("lo alias = %q, want hutch:%s", a, owner)
	}
	host := link(t, nsHandle(t, ""), v.Host.Name)
	if host == nil {
		t.Fatalf("veth %s was removed", v.Host.Name)
	}
	if a := host.Attrs().Alias; a != "hutch:"+owner {
		t.Errorf("veth %s alias = %q, want hutch:%s", v.Host.Name, a, owner)
	}
	if a := link(t, nsHandle(t, d.netnsPath(ns.Name)), v.Peer.Name).Attrs().Alias; a != "hutch:"+owner {
		t.Errorf("peer %s alias = %q, want hutch:%s", v.Peer.Name, a, owner)
	}
	// Its owner still observes both as its own.
	if got, err := d.Netns().Observe(ctx, ns); err != nil || got == nil {
		t.Errorf("netns Observe for its owner = %v, %v", got, err)
	}
	if got, err := d.Veth().Observe(ctx, v); err != nil || got == nil || got.(*plan.Veth).Container != owner {
		t.Errorf("veth Observe for its owner = %v, %v", got, err)
	}
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func sameJSON(a, b any) bool { return js(a) == js(b) }

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
