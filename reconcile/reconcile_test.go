package reconcile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"hutch/plan"
)

type env struct {
	t    *testing.T
	root string
	host *fakeHost
	out  bytes.Buffer
	r    *Reconciler
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, root: t.TempDir(), host: newFakeHost(t)}
	opts := plan.DefaultOptions()
	opts.StateRoot = e.root
	e.r = &Reconciler{Drivers: e.host.drivers(), Store: NewStore(opts), Out: &e.out}
	return e
}

func (e *env) apply(cs ...*Container) error {
	e.t.Helper()
	e.out.Reset()
	e.host.reset()
	return e.r.Apply(context.Background(), cs, ApplyOptions{})
}

func (e *env) mustApply(cs ...*Container) {
	e.t.Helper()
	if err := e.apply(cs...); err != nil {
		e.t.Fatalf("apply: %v\n%s", err, e.out.String())
	}
}

func (e *env) state(name string) *State {
	e.t.Helper()
	st, err := e.r.Store.Load(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func ids(rs []plan.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID())
	}
	slices.Sort(out)
	return out
}

func TestApplyCreatesInDependencyOrderAndRecordsEverything(t *testing.T) {
	e := newEnv(t)
	c := web("web").container(e.root)
	e.mustApply(c)
	got := e.host.mutations()
	if len(got) != 7 {
		t.Fatalf("want 7 creates, got %q", got)
	}
	pos := map[string]int{}
	for i, m := range got {
		pos[strings.TrimPrefix(m, "apply create ")] = i
	}
	for _, r := range c.Resources {
		for _, d := range r.Deps() {
			if pos[d] > pos[r.ID()] {
				t.Errorf("%s created before its dependency %s: %q", r.ID(), d, got)
			}
		}
	}
	if diff := cmp.Diff(ids(c.Resources), e.host.objects()); diff != "" {
		t.Errorf("host objects (-want +got):\n%s", diff)
	}
	st := e.state("web")
	var recs []string
	for _, r := range st.Resources {
		if r.Status != StatusDone {
			t.Errorf("record %s: status %s, want done", r.ID, r.Status)
		}
		recs = append(recs, r.ID)
	}
	if diff := cmp.Diff(ids(c.Resources), recs); diff != "" {
		t.Errorf("state records (-want +got):\n%s", diff)
	}
	if st.Manifest != c.Source {
		t.Errorf("manifest source %+v, want %+v", st.Manifest, c.Source)
	}
	cfg, err := os.ReadFile(e.r.Store.ConfigPath("web"))
	if err != nil || !bytes.Equal(cfg, c.Config) {
		t.Errorf("config.json = %q, %v; want %q", cfg, err, c.Config)
	}
	out := e.out.String()
	for _, want := range []string{"+ veth web0 (created, ", "+ process web (created, ", "Apply complete in "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func mtimes(t *testing.T, root string) map[string]time.Time {
	t.Helper()
	m := map[string]time.Time{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			m[p] = fi.ModTime()
		}
		return nil
	})
	return m
}

func TestSecondApplyObservesOnlyAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	c := web("web").container(e.root)
	e.mustApply(c)
	before := mtimes(t, e.root)
	time.Sleep(10 * time.Millisecond) // so that a rewrite would show in the mtimes
	e.mustApply(web("web").container(e.root))
	if m := e.host.mutations(); len(m) != 0 {
		t.Errorf("second apply changed the host: %q", m)
	}
	if diff := cmp.Diff(before, mtimes(t, e.root)); diff != "" {
		t.Errorf("second apply wrote the state store (-before +after):\n%s", diff)
	}
	if !strings.Contains(e.out.String(), "No changes") {
		t.Errorf("output does not say nothing changes:\n%s", e.out.String())
	}
}

func TestMemoryChangeUpdatesInPlace(t *testing.T) {
	e := newEnv(t)
	o := web("web")
	e.mustApply(o.container(e.root))
	o.memory = 100 << 20
	e.mustApply(o.container(e.root))
	if diff := cmp.Diff([]string{"apply update cgroup/web"}, e.host.mutations()); diff != "" {
		t.Errorf("steps (-want +got):\n%s\n%s", diff, e.out.String())
	}
	if !strings.Contains(e.out.String(), "~ cgroup web (updated, ") {
		t.Errorf("output:\n%s", e.out.String())
	}
}

func TestAddressChangeKeepsVethAndProcess(t *testing.T) {
	e := newEnv(t)
	o := web("web")
	e.mustApply(o.container(e.root))
	o.peerAddr = "172.16.0.3/24"
	e.mustApply(o.container(e.root))
	want := []string{"delete address/web_ns/web1/172.16.0.2/24", "apply create address/web_ns/web1/172.16.0.3/24"}
	if diff := cmp.Diff(want, e.host.mutations()); diff != "" {
		t.Errorf("steps (-want +got):\n%s\n%s", diff, e.out.String())
	}
	for _, r := range e.state("web").Resources {
		if strings.Contains(r.ID, "172.16.0.2/24") {
			t.Errorf("state still records %s", r.ID)
		}
	}
}

func TestRootfsChangeReplacesProcess(t *testing.T) {
	e := newEnv(t)
	o := web("web")
	e.mustApply(o.container(e.root))
	o.file = "print('bye')"
	e.mustApply(o.container(e.root))
	want := []string{"delete process/web", "delete rootfs/web", "apply create rootfs/web", "apply create process/web"}
	if diff := cmp.Diff(want, e.host.mutations()); diff != "" {
		t.Errorf("steps (-want +got):\n%s\n%s", diff, e.out.String())
	}
	cfg, _ := os.ReadFile(e.r.Store.ConfigPath("web"))
	if !strings.Contains(string(cfg), "bye") {
		t.Errorf("config.json not rewritten: %s", cfg)
	}
}

func TestDriftRepaired(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drift func(h *fakeHost, o webOpts)
		want  []string // mutations of the repairing apply, sorted
	}{
		{"veth deleted", func(h *fakeHost, o webOpts) {
			h.remove("veth/web0")
			h.remove("address/host/web0/172.16.0.1/24")
			h.remove("address/web_ns/web1/172.16.0.2/24")
		}, []string{"apply create address/host/web0/172.16.0.1/24", "apply create address/web_ns/web1/172.16.0.2/24", "apply create veth/web0"}},
		{"address changed", func(h *fakeHost, o webOpts) {
			h.remove("address/web_ns/web1/172.16.0.2/24")
		}, []string{"apply create address/web_ns/web1/172.16.0.2/24"}},
		{"cgroup limit rewritten", func(h *fakeHost, o webOpts) {
			o.memory = 1 << 20
			h.put(o.container("").Resources[5])
		}, []string{"apply update cgroup/web"}},
		{"process killed", func(h *fakeHost, o webOpts) {
			h.remove("process/web")
		}, []string{"apply create process/web"}},
		{"netns removed", func(h *fakeHost, o webOpts) {
			h.remove("netns/web_ns")
		}, []string{
			"apply create address/host/web0/172.16.0.1/24", "apply create address/web_ns/web1/172.16.0.2/24",
			"apply create netns/web_ns", "apply create process/web", "apply create veth/web0",
			"delete address/host/web0/172.16.0.1/24", "delete address/web_ns/web1/172.16.0.2/24",
			"delete process/web", "delete veth/web0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			o := web("web")
			e.mustApply(o.container(e.root))
			tc.drift(e.host, o)
			e.mustApply(o.container(e.root))
			got := e.host.mutations()
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("repair (-want +got):\n%s\n%s", diff, e.out.String())
			}
			e.mustApply(o.container(e.root))
			if m := e.host.mutations(); len(m) != 0 {
				t.Errorf("apply after the repair changed %q", m)
			}
		})
	}
}

func TestFailureStopsAndNextApplyConverges(t *testing.T) {
	for n := 1; n <= 7; n++ {
		e := newEnv(t)
		o := web("web")
		e.host.failAt = n
		err := e.apply(o.container(e.root))
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("step %d: apply error %v", n, err)
		}
		// The error names the resource the step was about.
		failed := strings.TrimPrefix(e.host.failed, "apply create ")
		if !strings.Contains(err.Error(), failed) {
			t.Errorf("step %d: error %q does not name %s", n, err, failed)
		}
		// Everything on the host is recorded in the store.
		st := e.state("web")
		for _, id := range e.host.objects() {
			if st.record(id) == nil {
				t.Errorf("step %d: %s is on the host but not in the store", n, id)
			}
		}
		e.host.failAt = 0
		e.mustApply(o.container(e.root))
		e.mustApply(o.container(e.root))
		if m := e.host.mutations(); len(m) != 0 {
			t.Errorf("step %d: not converged: %q", n, m)
		}
		if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
			t.Fatal(err)
		}
		if objs := e.host.objects(); len(objs) != 0 {
			t.Errorf("step %d: delete left %q", n, objs)
		}
	}
}

func TestDeleteCarriesOnAndReportsEveryError(t *testing.T) {
	e := newEnv(t)
	e.mustApply(web("web").container(e.root))
	e.host.fail["veth/web0"] = errors.New("veth web0: delete: device or resource busy")
	e.host.fail["cgroup/web"] = errors.New("cgroup hutch/web: delete: busy")
	e.out.Reset()
	err := e.r.Delete(context.Background(), []string{"web"}, false)
	if err == nil || !strings.Contains(err.Error(), "veth web0") || !strings.Contains(err.Error(), "cgroup hutch/web") {
		t.Fatalf("delete error %v, want both failures", err)
	}
	if diff := cmp.Diff([]string{"cgroup/web", "veth/web0"}, e.host.objects()); diff != "" {
		t.Errorf("left on the host (-want +got):\n%s", diff)
	}
	var recs []string
	for _, r := range e.state("web").Resources {
		recs = append(recs, r.ID)
	}
	if diff := cmp.Diff([]string{"cgroup/web", "veth/web0"}, recs); diff != "" {
		t.Errorf("state keeps (-want +got):\n%s", diff)
	}
	clear(e.host.fail)
	if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
		t.Fatal(err)
	}
	if objs := e.host.objects(); len(objs) != 0 {
		t.Errorf("left %q", objs)
	}
	if _, err := os.Stat(e.r.Store.Dir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state folder left: %v", err)
	}
	if _, err := os.Stat(e.r.Store.lockPath("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
	err = e.r.Delete(context.Background(), []string{"web"}, false)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of an unknown name: %v, want ErrNotFound", err)
	}
	if err := e.r.Delete(context.Background(), []string{"web"}, true); err != nil {
		t.Errorf("delete --ignore-not-found: %v", err)
	}
}

func TestDeleteOrderIsReverse(t *testing.T) {
	e := newEnv(t)
	c := web("web").container(e.root)
	e.mustApply(c)
	e.host.reset()
	if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
		t.Fatal(err)
	}
	got := e.host.mutations()
	if len(got) != 7 {
		t.Fatalf("deletes %q", got)
	}
	checkTeardown(t, c, got)
}

// A veth goes after its netns, and the addresses after the veth, through
// DeleteCarried (the kernel removes them with the namespace); when the
// netns could not be deleted, the veth is deleted by itself.
func TestDeleteLetsTheCarrierTakeWhatItCarries(t *testing.T) {
	for _, failNetns := range []bool{false, true} {
		e := newEnv(t)
		c := web("web").container(e.root)
		e.mustApply(c)
		e.host.reset()
		if failNetns {
			e.host.fail["netns/web_ns"] = errors.New("device or resource busy")
		}
		err := e.r.Delete(context.Background(), []string{"web"}, false)
		if failNetns != (err != nil) {
			t.Fatalf("netns fails %v: delete: %v", failNetns, err)
		}
		got := e.host.mutations()
		checkTeardown(t, c, got)
		want := []string{"address/host/web0/172.16.0.1/24", "address/web_ns/web1/172.16.0.2/24", "veth/web0"}
		if failNetns {
			want = nil // the veth by itself, then its addresses with it
			want = append(want, "address/host/web0/172.16.0.1/24", "address/web_ns/web1/172.16.0.2/24")
		}
		sort.Strings(e.host.carried)
		if !slices.Equal(e.host.carried, want) {
			t.Errorf("netns fails %v: deleted as carried %q, want %q (deletes %q)", failNetns, e.host.carried, want, got)
		}
	}
}

func TestPruneDeletesContainersTheFileNoLongerHas(t *testing.T) {
	e := newEnv(t)
	a, b := web("a"), web("b")
	b.hostAddr, b.peerAddr = "172.16.1.1/24", "172.16.1.2/24"
	ca, cb := a.container(e.root), b.container(e.root)
	cb.Source = ca.Source
	e.mustApply(ca, cb)
	other := web("other")
	other.hostAddr, other.peerAddr = "172.16.2.1/24", "172.16.2.2/24"
	e.mustApply(other.container(e.root)) // another file: never pruned
	e.out.Reset()
	if err := e.r.Apply(context.Background(), []*Container{ca}, ApplyOptions{Prune: true, Sources: []Source{ca.Source}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range e.host.objects() {
		if strings.Contains(id, "/b") {
			t.Errorf("pruned container's %s left", id)
		}
	}
	if _, err := e.r.Store.Load("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned container's state: %v", err)
	}
	if _, err := e.r.Store.Load("other"); err != nil {
		t.Errorf("other file's container: %v", err)
	}
	if !strings.Contains(e.out.String(), "- process b (deleted, ") {
		t.Errorf("output does not show the prune:\n%s", e.out.String())
	}
}

func TestConflictWithAnotherContainerChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustApply(web("a").container(e.root))
	b := web("b")
	b.netns = "a_ns"
	b.hostAddr, b.peerAddr = "172.16.1.1/24", "172.16.1.2/24"
	err := e.apply(b.container(e.root))
	if err == nil || !strings.Contains(err.Error(), "netns/a_ns: in use by container a") {
		t.Fatalf("apply: %v", err)
	}
	if m := e.host.mutations(); len(m) != 0 {
		t.Errorf("a conflict changed the host: %q", m)
	}
	if _, err := os.Stat(e.r.Store.Dir("b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a conflict wrote state: %v", err)
	}
}

func TestObserveErrorIsPreflight(t *testing.T) {
	e := newEnv(t)
	e.r.Drivers[plan.KindVeth] = &conflictDriver{e.r.Drivers[plan.KindVeth]}
	err := e.apply(web("web").container(e.root))
	if err == nil || !strings.Contains(err.Error(), "not owned by hutch") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("apply: %v", err)
	}
	if m := e.host.mutations(); len(m) != 0 {
		t.Errorf("preflight changed the host: %q", m)
	}
}

type conflictDriver struct{ Driver }

func (d *conflictDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	return nil, errors.New("veth web0: exists and is not owned by hutch")
}

func TestManyContainersConvergeInParallel(t *testing.T) {
	e := newEnv(t)
	var cs []*Container
	for i := range 20 {
		o := web("c" + string(rune('a'+i)))
		cs = append(cs, o.container(e.root))
	}
	e.mustApply(cs...)
	if n := len(e.host.objects()); n != 140 {
		t.Errorf("%d objects, want 140", n)
	}
	e.mustApply(cs...)
	if m := e.host.mutations(); len(m) != 0 {
		t.Errorf("second apply: %q", m)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if err := e.r.Delete(context.Background(), names, false); err != nil {
		t.Fatal(err)
	}
	if objs := e.host.objects(); len(objs) != 0 {
		t.Errorf("left %q", objs)
	}
}

func TestPlanWritesNothing(t *testing.T) {
	e := newEnv(t)
	res, err := e.r.Plan(context.Background(), []*Container{web("web").container(e.root)}, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Plan.Summary(); s.Create != 7 {
		t.Errorf("summary %v", s)
	}
	if ents, _ := os.ReadDir(e.root); len(ents) != 0 {
		t.Errorf("plan wrote %v", ents)
	}
}

func TestPruneOfARenamedContainerFreesItsNamesFirst(t *testing.T) {
	e := newEnv(t)
	old := web("a")
	e.mustApply(old.container(e.root))
	renamed := old
	renamed.name = "c" // same netns, veth names and addresses
	c := renamed.container(e.root)
	c.Source = old.container(e.root).Source
	if err := e.apply(c); err == nil || !strings.Contains(err.Error(), "in use by container a") {
		t.Fatalf("apply of the renamed container without --prune: %v", err)
	}
	e.out.Reset()
	e.host.reset()
	if err := e.r.Apply(context.Background(), []*Container{c}, ApplyOptions{Prune: true, Sources: []Source{c.Source}}); err != nil {
		t.Fatalf("apply --prune: %v\n%s", err, e.out.String())
	}
	got := e.host.mutations()
	pos := map[string]int{}
	for i, m := range got {
		pos[m] = i
	}
	for _, id := range []string{"netns/a_ns", "veth/a0"} {
		d, ok1 := pos["delete "+id]
		c, ok2 := pos["apply create "+id]
		if !ok1 || !ok2 || d > c {
			t.Errorf("%s: the old one must be deleted before the new one is made: %q", id, got)
		}
	}
	if _, err := e.r.Store.Load("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old container's state: %v", err)
	}
	if st := e.state("c"); len(st.Resources) != 7 {
		t.Errorf("new container's state has %d records", len(st.Resources))
	}
}

// waitCycle finds steps that wait for each other (only records edited by
// hand can make them; run refuses them instead of waiting for ever).
func TestWaitCycle(t *testing.T) {
	mk := func(id string) *node { return &node{ch: &plan.Change{ID: id}} }
	a, b, c := mk("a"), mk("b"), mk("c")
	a.waits = []*node{b}
	b.waits = []*node{c}
	if got := waitCycle([]*node{a, b, c}); got != "" {
		t.Errorf("a chain: %q", got)
	}
	c.waits = []*node{a}
	if got := waitCycle([]*node{a, b, c}); got != "a -> b -> c -> a" {
		t.Errorf("a circle: %q", got)
	}
	self := mk("self")
	self.waits = []*node{self}
	if got := waitCycle([]*node{self}); got != "self -> self" {
		t.Errorf("a step waiting for itself: %q", got)
	}
}
