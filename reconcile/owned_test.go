package reconcile

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/plan"
)

// findingDriver is a fake driver that also finds its objects on the fake
// host by their owner (every fake object carries hutch's mark, except
// those listed in unmarked), and says which other state roots claim a
// container.
type findingDriver struct {
	*fakeDriver
	unmarked map[string]bool
	claims   map[string][]string // container -> other state roots
}

func (d *findingDriver) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	var out []plan.Resource
	for _, id := range d.h.objects() {
		if d.unmarked[id] || !strings.HasPrefix(id, string(d.kind)+"/") {
			continue
		}
		data, err := os.ReadFile(d.h.path(id))
		if err != nil {
			return nil, err
		}
		r, err := plan.DecodeResource(d.kind, data)
		if err != nil {
			return nil, err
		}
		if r.Owner() == container {
			out = append(out, r)
		}
	}
	return out, nil
}

func (d *findingDriver) Marked(ctx context.Context) ([]string, error) {
	var names []string
	for _, id := range d.h.objects() {
		if d.unmarked[id] || !strings.HasPrefix(id, string(d.kind)+"/") {
			continue
		}
		data, _ := os.ReadFile(d.h.path(id))
		r, err := plan.DecodeResource(d.kind, data)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(names, r.Owner()) {
			names = append(names, r.Owner())
		}
	}
	return names, nil
}

func (d *findingDriver) Elsewhere(container string) ([]string, error) {
	return d.claims[container], nil
}

// newFindingEnv is newEnv with drivers that find their objects by mark.
func newFindingEnv(t *testing.T) (*env, map[string]bool, map[string][]string) {
	e := newEnv(t)
	unmarked, claims := map[string]bool{}, map[string][]string{}
	for k, d := range e.r.Drivers {
		e.r.Drivers[k] = &findingDriver{fakeDriver: d.(*fakeDriver), unmarked: unmarked, claims: claims}
	}
	return e, unmarked, claims
}

// checkOrder fails when a resource of c was deleted after one it needs,
// unless the one it needs carries it (plan.Carried: it goes after that one),
// or when the process was not deleted first.
func checkOrder(t *testing.T, c *Container, deletes []string) {
	t.Helper()
	checkTeardown(t, c, deletes)
	if len(deletes) == 0 || deletes[0] != "delete "+plan.ProcessID(c.Name) {
		t.Errorf("the process is not deleted first: %q", deletes)
	}
}

func TestDeleteFindsMarkedObjectsWhenTheStateIsGone(t *testing.T) {
	e, unmarked, _ := newFindingEnv(t)
	web := web("web").container(e.root)
	e.mustApply(web)
	unmarked["netns/other"] = true
	e.host.put(&plan.Netns{Container: "web", Name: "other"}) // named like hutch's, no mark
	if err := os.RemoveAll(e.r.Store.Dir("web")); err != nil {
		t.Fatal(err)
	}
	e.host.reset()
	e.out.Reset()
	if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
		t.Fatalf("delete: %v\n%s", err, e.out.String())
	}
	if diff := cmp.Diff([]string{"netns/other"}, e.host.objects()); diff != "" {
		t.Errorf("left on the host (-want +got):\n%s", diff)
	}
	checkOrder(t, web, e.host.mutations())
	if !strings.Contains(e.out.String(), "found on the host without a record in the state store") {
		t.Errorf("output does not say what was found:\n%s", e.out.String())
	}
	if _, err := os.Stat(e.r.Store.Dir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state folder left: %v", err)
	}
	if _, err := os.Stat(e.r.Store.lockPath("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
	if err := e.r.Delete(context.Background(), []string{"web"}, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

func TestDeleteMergesAPartialStateWithWhatIsFound(t *testing.T) {
	e, _, _ := newFindingEnv(t)
	web := web("web").container(e.root)
	e.mustApply(web)
	st := e.state("web")
	// The store lost the records of the process and the cgroup.
	st.remove(plan.ProcessID("web"))
	st.remove(plan.CgroupID("web"))
	if err := e.r.Store.Save(st); err != nil {
		t.Fatal(err)
	}
	e.host.reset()
	if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
		t.Fatalf("delete: %v\n%s", err, e.out.String())
	}
	if objs := e.host.objects(); len(objs) != 0 {
		t.Errorf("left %q", objs)
	}
	checkOrder(t, web, e.host.mutations())
}

func TestDeleteLeavesANamesakeOfAnotherStateRoot(t *testing.T) {
	e, _, claims := newFindingEnv(t)
	e.mustApply(web("web").container(e.root))
	before := e.host.objects()
	if err := os.RemoveAll(e.r.Store.Dir("web")); err != nil {
		t.Fatal(err)
	}
	claims["web"] = []string{"/var/lib/hutch"}
	e.host.reset()
	err := e.r.Delete(context.Background(), []string{"web"}, false)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "--root /var/lib/hutch") {
		t.Errorf("delete: %v, want ErrNotFound naming the other root", err)
	}
	if m := e.host.mutations(); len(m) != 0 {
		t.Errorf("changed the host: %q", m)
	}
	if diff := cmp.Diff(before, e.host.objects()); diff != "" {
		t.Errorf("host changed (-before +after):\n%s", diff)
	}
	names, err := e.r.Orphans(context.Background())
	if err != nil || len(names) != 0 {
		t.Errorf("orphans %q, %v: want none", names, err)
	}
}

func TestDeleteOrphansRemovesOnlyContainersWithoutState(t *testing.T) {
	e, _, _ := newFindingEnv(t)
	a, b := web("web"), web("db")
	b.hostAddr, b.peerAddr = "172.16.1.1/24", "172.16.1.2/24"
	e.mustApply(a.container(e.root), b.container(e.root))
	kept := e.host.objects()
	kept = slices.DeleteFunc(kept, func(id string) bool { return strings.Contains(id, "db") })
	if err := os.RemoveAll(e.r.Store.Dir("db")); err != nil {
		t.Fatal(err)
	}
	names, err := e.r.Orphans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db"}, names); diff != "" {
		t.Errorf("orphans (-want +got):\n%s", diff)
	}
	e.host.reset()
	if err := e.r.DeleteOrphans(context.Background()); err != nil {
		t.Fatalf("delete orphans: %v\n%s", err, e.out.String())
	}
	if diff := cmp.Diff(kept, e.host.objects()); diff != "" {
		t.Errorf("on the host (-want +got):\n%s", diff)
	}
	checkOrder(t, b.container(e.root), e.host.mutations())
	if e.state("web") == nil {
		t.Error("web's state is gone")
	}
	e.out.Reset()
	if err := e.r.DeleteOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.out.String(), "no orphans") {
		t.Errorf("second run says:\n%s", e.out.String())
	}
}

// checkTeardown fails when a resource of c was deleted after one it needs
// that does not carry it, or before one that carries it.
func checkTeardown(t *testing.T, c *Container, deletes []string) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range deletes {
		pos[strings.TrimPrefix(m, "delete ")] = i
	}
	for _, r := range c.Resources {
		for _, d := range r.Deps() {
			carried := slices.Contains(plan.CarriedBy(r), d)
			switch {
			case carried && pos[r.ID()] < pos[d]:
				t.Errorf("%s deleted before %s, which carries it: %q", r.ID(), d, deletes)
			case !carried && pos[d] < pos[r.ID()]:
				t.Errorf("%s deleted before its dependent %s: %q", d, r.ID(), deletes)
			}
		}
	}
}
