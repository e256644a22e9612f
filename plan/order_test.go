package plan

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// small is a container's worth of resources with real dependencies:
// netns <- veth <- addresses <- route <- process.
func small() []Resource {
	return []Resource{
		&Netns{Container: "c", Name: "ns"},
		&Veth{Container: "c", Host: LinkEnd{Name: "h0"}, Peer: LinkEnd{Name: "eth0"}, Netns: "ns"},
		&Address{Container: "c", Netns: HostNetns, Link: "h0", CIDR: "10.0.0.1/24", Veth: "veth/h0"},
		&Address{Container: "c", Netns: "ns", Link: "eth0", CIDR: "10.0.0.2/24", Veth: "veth/h0"},
		&Route{Container: "c", Netns: "ns", Dst: "0.0.0.0/0", Via: "10.0.0.1", Dev: "eth0",
			Needs: []string{"veth/h0", "address/ns/eth0/10.0.0.2/24"}},
		&Cgroup{Container: "c", Path: "hutch/c"},
		&Rootfs{Container: "c"},
		&Process{Container: "c", Needs: []string{"rootfs/c", "cgroup/c", "netns/ns", "veth/h0",
			"address/host/h0/10.0.0.1/24", "address/ns/eth0/10.0.0.2/24", "route/ns/0.0.0.0/0"}},
	}
}

func ids(cs []*Change) []string {
	var s []string
	for _, c := range cs {
		id := string(c.Action) + " " + c.ID
		if c.Half != "" {
			id += " (" + string(c.Half) + ")"
		}
		s = append(s, id)
	}
	return s
}

func TestOrderCreates(t *testing.T) {
	got, err := Order(Creates(small()))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create cgroup/c",
		"create netns/ns",
		"create rootfs/c",
		"create veth/h0",
		"create address/host/h0/10.0.0.1/24",
		"create address/ns/eth0/10.0.0.2/24",
		"create route/ns/0.0.0.0/0",
		"create process/c",
	}
	if d := cmp.Diff(want, ids(got)); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
}

func TestOrderDeletesAndReplace(t *testing.T) {
	rs := small()
	var cs []*Change
	for _, r := range rs {
		switch r.Kind() {
		case KindVeth:
			after := *r.(*Veth)
			after.Peer.Name = "eth1"
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Replace, Before: r, After: &after,
				Fields: []string{"peer.name"}, ForceReplace: []string{"peer.name"}})
		case KindCgroup:
			after := *r.(*Cgroup)
			after.Memory.Limit = 1 << 20
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Update, Before: r, After: &after,
				Fields: []string{"memory.limit"}})
		case KindNetns, KindRootfs:
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: NoOp, Before: r, After: r})
		default:
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Delete, Before: r})
		}
	}
	got, err := Order(cs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"delete process/c",
		// the addresses and the route go with the veth (Carried)
		"replace veth/h0 (delete)",
		"delete address/host/h0/10.0.0.1/24",
		"delete route/ns/0.0.0.0/0",
		"delete address/ns/eth0/10.0.0.2/24",
		"update cgroup/c",
		"no-op netns/ns",
		"no-op rootfs/c",
		"replace veth/h0 (create)",
	}
	if d := cmp.Diff(want, ids(got)); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
	// Ordering an ordered list changes nothing.
	again, err := Order(got)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ids(got), ids(again)); d != "" {
		t.Errorf("order is not idempotent (-first +second):\n%s", d)
	}
	p := &Plan{FormatVersion: FormatVersion, Changes: got}
	if s := p.Summary(); s != (Summary{Update: 1, Replace: 1, Delete: 4, NoOp: 2}) {
		t.Errorf("summary = %+v", s)
	}
}

func TestOrderCycle(t *testing.T) {
	a := &Route{Container: "c", Netns: "ns", Dst: "10.1.0.0/16", Needs: []string{"route/ns/10.2.0.0/16"}}
	b := &Route{Container: "c", Netns: "ns", Dst: "10.2.0.0/16", Needs: []string{"route/ns/10.1.0.0/16"}}
	c := &Netns{Container: "c", Name: "ns"}
	_, err := Order(Creates([]Resource{c, b, a}))
	if !errors.Is(err, ErrCycle) {
		t.Fatalf("err = %v, want ErrCycle", err)
	}
	want := "order build: dependency cycle: route/ns/10.1.0.0/16 -> route/ns/10.2.0.0/16 -> route/ns/10.1.0.0/16"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

func TestOrderDuplicate(t *testing.T) {
	n := &Netns{Container: "c", Name: "ns"}
	if _, err := Order(Creates([]Resource{n, n})); err == nil || !strings.Contains(err.Error(), "two changes") {
		t.Errorf("err = %v, want two changes for one resource", err)
	}
}

func TestFieldDiff(t *testing.T) {
	a := &Cgroup{Container: "c", Path: "hutch/c", Memory: CgroupMemory{Limit: 1}}
	b := &Cgroup{Container: "c", Path: "hutch/c", Memory: CgroupMemory{Limit: 2}, Pids: 3}
	if d := cmp.Diff([]string{"memory.limit", "pids"}, FieldDiff(a, b)); d != "" {
		t.Error(d)
	}
	if got := FieldDiff(a, a); len(got) != 0 {
		t.Errorf("FieldDiff(a, a) = %v", got)
	}
}

func TestRenderAndReadJSON(t *testing.T) {
	before := &Cgroup{Container: "c", Path: "hutch/c", Memory: CgroupMemory{Limit: 1 << 20}}
	after := &Cgroup{Container: "c", Path: "hutch/c", Memory: CgroupMemory{Limit: 2 << 20}}
	p, err := NewPlan([]*Change{
		{ID: before.ID(), Kind: KindCgroup, Action: Update, Before: before, After: after, Fields: []string{"memory.limit"}},
		{ID: "netns/ns", Kind: KindNetns, Action: NoOp, Before: &Netns{Container: "c", Name: "ns"}, After: &Netns{Container: "c", Name: "ns"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var h bytes.Buffer
	if err := p.Human(&h, false); err != nil {
		t.Fatal(err)
	}
	want := "~ cgroup/c\n    memory.limit: 1M (1048576) -> 2M (2097152)\n\nPlan: 0 to create, 1 to update, 0 to replace, 0 to delete, 1 unchanged.\n"
	if h.String() != want {
		t.Errorf("human:\n%s\nwant:\n%s", h.String(), want)
	}
	h.Reset()
	p.Human(&h, true)
	if !strings.Contains(h.String(), "\x1b[33m~ cgroup/c\x1b[0m") {
		t.Errorf("coloured human lacks the yellow update line:\n%q", h.String())
	}
	var j bytes.Buffer
	if err := p.JSON(&j); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&j)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, back); d != "" {
		t.Errorf("json round trip (-want +got):\n%s", d)
	}
}
