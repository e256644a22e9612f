package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"hutch/internal/scan"
	"hutch/plan"
)

// Container is what the reconciler makes one container from: its name, the
// host resources plan.Build wants for it, its OCI config.json (written to the
// bundle before the process starts) and the manifest it came from.
type Container struct {
	Name      string
	Resources []plan.Resource
	Config    []byte
	Source    Source
	// Kind is "" for a container, spec.KindNetwork or spec.KindLink for
	// the units of a lab, which have no config.json and no process.
	Kind string
}

// Reconciler observes the host through its drivers, diffs it against the
// desired containers, prints the plan and carries it out, recording every
// step in the state store.
type Reconciler struct {
	// Drivers has one driver per kind of resource.
	Drivers map[plan.Kind]Driver
	// Store is the state store.
	Store *Store
	// Out receives the plan, one line per step as it ends, and a summary.
	Out io.Writer
	// Color paints the plan (set only for a terminal without NO_COLOR).
	Color bool
	// Verbose prints the whole plan, every field of every change, before
	// the steps; otherwise only its summary line comes first (hutch plan
	// is where a plan is reviewed).
	Verbose bool
	// Parallel bounds the steps that run at once, over all containers
	// (0: eight per CPU). Most steps wait on the kernel (a process start
	// waits for its child, a stop for the process to end) rather than
	// compute, so several per CPU keep the CPUs busy; bench/README.md
	// ("Steps at once") has the figures the default comes from.
	Parallel int
	// NoWait makes a locked container an error (wrapping ErrLocked) rather
	// than something to wait for.
	NoWait bool
	// Fault, when set, is called before and after every step (see
	// Fault; hutch's is made from HUTCH_FAULT by cmd/apply).
	Fault Fault
	// Trace, when set, receives how long each Observe took, to find where
	// the time of a plan goes.
	Trace   io.Writer
	traceMu sync.Mutex
}

// ApplyOptions are the options of Apply and Plan.
type ApplyOptions struct {
	// Prune deletes the containers an earlier apply of one of the Sources
	// made that the desired containers no longer have.
	Prune   bool
	Sources []Source
}

// Result is an observed plan: the ordered plan and, per container, what it
// was computed from.
type Result struct {
	Plan  *plan.Plan
	units []*unit
}

// unit is one container's part of a plan.
type unit struct {
	name    string
	want    *Container // nil for a container being deleted or pruned
	state   *State     // as loaded; nil when the store has none
	changes []*plan.Change
	lock    *Lock
}

// Plan observes the host for the desired containers (and, with Prune, the
// containers to prune) and returns the ordered plan. It takes no lock and
// writes nothing.
func (r *Reconciler) Plan(ctx context.Context, want []*Container, o ApplyOptions) (*Result, error) {
	units, err := r.units(want, o)
	if err != nil {
		return nil, err
	}
	for _, u := range units {
		if u.state, err = r.Store.Load(u.name); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return r.observe(ctx, units)
}

// units lists the containers an apply works on: the desired ones, sorted by
// name, then those to prune.
func (r *Reconciler) units(want []*Container, o ApplyOptions) ([]*unit, error) {
	var units []*unit
	seen := map[string]bool{}
	for _, c := range want {
		if seen[c.Name] {
			return nil, fmt.Errorf("container %s: named twice", c.Name)
		}
		seen[c.Name] = true
		units = append(units, &unit{name: c.Name, want: c})
	}
	sort.Slice(units, func(i, j int) bool { return units[i].name < units[j].name })
	if !o.Prune {
		return units, nil
	}
	names, err := r.Store.Containers()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if seen[n] {
			continue
		}
		st, err := r.Store.Load(n)
		if err != nil {
			continue // being deleted, or not hutch's: nothing to prune
		}
		if slices.ContainsFunc(o.Sources, func(s Source) bool { return s.Path == st.Manifest.Path }) {
			units = append(units, &unit{name: n})
		}
	}
	return units, nil
}

// observe asks the drivers for every desired and recorded resource, in
// parallel over containers, and diffs. Every problem is reported at once,
// before anything changes: this is the preflight.
func (r *Reconciler) observe(ctx context.Context, units []*unit) (*Result, error) {
	if err := r.conflicts(units); err != nil {
		return nil, err
	}
	// The IDs of the containers being pruned are free for the desired ones:
	// a renamed container keeps its netns and interface names, and the
	// prune deletes the old objects before the new ones are made.
	pruned := map[string]bool{}
	for _, u := range units {
		if u.want == nil && u.state != nil {
			for _, rec := range u.state.Resources {
				pruned[rec.ID] = true
			}
		}
	}
	// Observing reads the host only: the drivers share their scans of it
	// (the mount table, the host's addresses) between the containers,
	// instead of reading all of it once for each.
	ctx = scan.With(ctx)
	errs := make([]error, len(units))
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.parallel())
	for i, u := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u.changes, errs[i] = r.diff(ctx, u, pruned)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("preflight:\n%w", err)
	}
	var all []*plan.Change
	for _, u := range units {
		all = append(all, u.changes...)
	}
	// A unit's resource may be bound to another unit's (an address on a
	// link end to the link): cascade over all of them.
	cascade(all)
	p, err := plan.NewPlan(all)
	if err != nil {
		return nil, err
	}
	return &Result{Plan: p, units: units}, nil
}

func (r *Reconciler) parallel() int {
	if r.Parallel > 0 {
		return r.Parallel
	}
	return 8 * runtime.NumCPU()
}

// shared are the kinds whose IDs name host-wide objects (a netns or
// interface name, an address on a link), which two containers cannot both own.
var shared = []plan.Kind{plan.KindNetns, plan.KindVeth, plan.KindAddress, plan.KindRoute, plan.KindBridge, plan.KindNftRule, plan.KindLink}

// conflicts reports desired resources that the store records as another
// container's: hutch owns them, but not for this container.
func (r *Reconciler) conflicts(units []*unit) error {
	mine := map[string]string{} // resource ID -> desired container
	working := map[string]bool{}
	for _, u := range units {
		working[u.name] = true
		if u.want == nil {
			continue
		}
		for _, res := range u.want.Resources {
			if !slices.Contains(shared, res.Kind()) {
				continue
			}
			if other, ok := mine[res.ID()]; ok {
				return fmt.Errorf("%s: wanted by containers %s and %s", res.ID(), other, u.name)
			}
			mine[res.ID()] = u.name
		}
	}
	names, err := r.Store.Containers()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if working[n] {
			continue
		}
		st, err := r.Store.Load(n)
		if err != nil {
			continue
		}
		for _, rec := range st.Resources {
			if c, ok := mine[rec.ID]; ok {
				errs = append(errs, fmt.Errorf("container %s: %s: in use by container %s (delete it first, or apply with --prune)", c, rec.ID, n))
			}
		}
	}
	return errors.Join(errs...)
}

// diff observes one container's resources and returns its changes: one per
// desired resource, and a delete for each recorded resource that is no
// longer desired but still on the host.
func (r *Reconciler) diff(ctx context.Context, u *unit, pruned map[string]bool) ([]*plan.Change, error) {
	var changes []*plan.Change
	var errs []error
	desired := map[string]bool{}
	if u.want != nil {
		obs := r.observeAll(ctx, u.want.Resources, pruned)
		for i, want := range u.want.Resources {
			desired[want.ID()] = true
			d, err := r.driver(want.Kind())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if pruned[want.ID()] {
				changes = append(changes, &plan.Change{ID: want.ID(), Kind: want.Kind(), Action: plan.Create, After: want,
					Reasons: []string{"made anew after the prune deletes the old one"}})
				continue
			}
			r.trace("observe %s: %s", want.ID(), ms(obs[i].dur))
			if obs[i].err != nil {
				errs = append(errs, fmt.Errorf("observe %s: %w", want.ID(), obs[i].err))
				continue
			}
			changes = append(changes, desiredChange(d, obs[i].got, want))
		}
	}
	if u.state != nil {
		deletes, derrs := r.leftovers(ctx, u, desired)
		changes = append(changes, deletes...)
		errs = append(errs, derrs...)
	}
	cascade(changes)
	return changes, errors.Join(errs...)
}

// observed is what one Observe returned, and how long it took.
type observed struct {
	got plan.Resource
	err error
	dur time.Duration
}

// observeAll observes the desired resources of one container, but those
// being pruned and those of no driver (diff reports them). The Observes of
// one container read the host only: they run side by side (a no-op apply of
// one container costs the slowest of them, the rootfs, instead of their
// sum).
func (r *Reconciler) observeAll(ctx context.Context, want []plan.Resource, pruned map[string]bool) []observed {
	obs := make([]observed, len(want))
	var wg sync.WaitGroup
	for i, w := range want {
		d, err := r.driver(w.Kind())
		if err != nil || pruned[w.ID()] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			obs[i].got, obs[i].err = d.Observe(ctx, w)
			obs[i].dur = time.Since(start)
		}()
	}
	wg.Wait()
	return obs
}

// desiredChange is the change that takes the observed got to want: a create when
// it is absent, else what the driver's Diff says the kernel can change in
// place (an update), cannot (a replace) or nothing (a no-op).
func desiredChange(d Driver, got, want plan.Resource) *plan.Change {
	ch := &plan.Change{ID: want.ID(), Kind: want.Kind(), After: want}
	if absent(got) {
		ch.Action = plan.Create
		return ch
	}
	ch.Before = got
	ch.Fields, ch.ForceReplace = d.Diff(got, want)
	ch.Fields, ch.ForceReplace = hostFields(ch.Fields), hostFields(ch.ForceReplace)
	switch {
	case len(ch.Fields) == 0:
		ch.Action = plan.NoOp
	case len(ch.ForceReplace) > 0:
		ch.Action = plan.Replace
	default:
		ch.Action = plan.Update
	}
	return ch
}

// leftovers are the deletes of what the unit's store records and the
// manifest no longer wants, for each object still on the host; a record
// whose object is gone is dropped when the state is saved.
func (r *Reconciler) leftovers(ctx context.Context, u *unit, desired map[string]bool) ([]*plan.Change, []error) {
	var changes []*plan.Change
	var errs []error
	for _, rec := range u.state.Resources {
		if desired[rec.ID] {
			continue
		}
		res, err := rec.Resource()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, err := r.driver(res.Kind())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got, err := d.Observe(ctx, res)
		if err != nil {
			errs = append(errs, fmt.Errorf("observe %s: %w", rec.ID, err))
			continue
		}
		if absent(got) {
			continue // already gone; the record is dropped when the state is saved
		}
		reason := "no longer in the manifest"
		if u.want == nil {
			reason = "container " + u.name + " is no longer in the manifest (prune)"
		}
		changes = append(changes, &plan.Change{ID: rec.ID, Kind: rec.Kind, Action: plan.Delete,
			Before: res, Reasons: []string{reason}})
	}
	return changes, errs
}

// hostFields drops the fields that only say what a resource depends on
// (Needs): they order the plan, the host has no such property, and an
// address added to the container's link must not restart its process.
func hostFields(fields []string) []string {
	var out []string
	for _, f := range fields {
		if f != "needs" && !strings.HasPrefix(f, "needs[") && !strings.HasPrefix(f, "needs.") {
			out = append(out, f)
		}
	}
	return out
}

func (r *Reconciler) trace(format string, args ...any) {
	if r.Trace != nil {
		r.traceMu.Lock()
		defer r.traceMu.Unlock()
		fmt.Fprintf(r.Trace, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000000")}, args...)...)
	}
}

// showPlan prints the plan before its steps run: whole with Verbose,
// else its summary line ("Plan: 3 to create, ...", or "No changes").
func (r *Reconciler) showPlan(p *plan.Plan) error {
	if r.Verbose {
		if err := p.Render(r.Out, plan.RenderOptions{Color: r.Color}); err != nil {
			return err
		}
		fmt.Fprintln(r.Out)
		return nil
	}
	s := p.Summary()
	if !s.Changed() {
		_, err := fmt.Fprintf(r.Out, "No changes: the host matches the manifest (%d unchanged).\n", s.NoOp)
		return err
	}
	_, err := fmt.Fprintf(r.Out, "Plan: %s.\n", s)
	return err
}

func (r *Reconciler) driver(k plan.Kind) (Driver, error) {
	d, ok := r.Drivers[k]
	if !ok || d == nil {
		return nil, fmt.Errorf("no driver for resource kind %q", k)
	}
	return d, nil
}

// absent says whether an observed value means "not there": nil, or a typed
// nil pointer in the interface.
func absent(r plan.Resource) bool {
	if r == nil {
		return true
	}
	v := reflect.ValueOf(r)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// bound says whether a resource of kind dependent lives inside (or is tied
// to the identity of) a resource of kind dep it depends on, so that a new
// dep (created or replaced) leaves the existing dependent stale: a new netns
// holds none of the old one's links, addresses, routes or processes; a new
// veth has none of the old one's addresses or routes; a process runs in the
// rootfs and cgroup that existed when it started, and after the processes
// it depends on (dependsOn) as they were then. A new address or a new veth
// does not restart the process: its netns stays the same.
func bound(dep, dependent plan.Kind) bool {
	switch dep {
	case plan.KindNetns:
		return true
	case plan.KindVeth, plan.KindLink, plan.KindBridge:
		// An address, a route or an interface's parameter goes with its
		// link.
		return dependent == plan.KindAddress || dependent == plan.KindRoute || dependent == plan.KindSysctl
	case plan.KindAddress:
		return dependent == plan.KindRoute
	case plan.KindRootfs, plan.KindCgroup:
		return dependent == plan.KindProcess
	case plan.KindProcess:
		// dependsOn: a container started again restarts the ones that
		// depend on it, which may hold connections to the old one or
		// have read its state at their start (as compose's
		// depends_on.restart does).
		return dependent == plan.KindProcess
	}
	return false
}

// cascade turns no-ops and updates of existing resources into replaces when
// a resource they are bound to is created or replaced, until nothing more
// changes.
func cascade(changes []*plan.Change) {
	byID := map[string]*plan.Change{}
	for _, c := range changes {
		if c.Action != plan.Delete {
			byID[c.ID] = c
		}
	}
	for more := true; more; {
		more = false
		for _, c := range changes {
			if c.Action != plan.NoOp && c.Action != plan.Update {
				continue
			}
			for _, dep := range c.After.Deps() {
				d, ok := byID[dep]
				if !ok || (d.Action != plan.Create && d.Action != plan.Replace) || !bound(d.Kind, c.Kind) {
					continue
				}
				c.Action = plan.Replace
				c.Reasons = append(c.Reasons, fmt.Sprintf("%s is made anew", dep))
				more = true
				break
			}
		}
	}
}

// name is how a step names its resource: "veth veth0" for "veth/veth0".
func name(id string) string {
	return strings.Replace(id, "/", " ", 1)
}

// ms formats a step's duration: "3 ms", "0.4 ms".
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	if f < 1 {
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.0f ms", f)
}
