package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hutch/internal/progress"
	"hutch/internal/scan"
	"hutch/internal/slot"
	"hutch/plan"
)

// Apply makes the host match the desired containers: it locks them (and the
// containers to prune), observes, prints the plan, then carries it out step
// by step, printing each step with its duration as it ends, and a summary.
// Steps run as soon as the steps they depend on have ended, up to Parallel at
// once. A failed step stops the apply: steps already running finish and are
// recorded, no new one starts, nothing is rolled back; the error names the
// resource and the cause. A plan with no change writes nothing at all.
func (r *Reconciler) Apply(ctx context.Context, want []*Container, o ApplyOptions) error {
	start := time.Now()
	units, err := r.units(want, o)
	if err != nil {
		return err
	}
	defer func() {
		for _, u := range units {
			u.lock.Unlock()
		}
	}()
	// Locks are taken in name order, so two applies never deadlock.
	byName := append([]*unit(nil), units...)
	sort.Slice(byName, func(i, j int) bool { return byName[i].name < byName[j].name })
	for _, u := range byName {
		if u.lock, err = r.lock(ctx, u.name); err != nil {
			return err
		}
		if u.state, err = r.Store.Load(u.name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if u.want == nil && u.state == nil {
			// Deleted by someone else while we waited: nothing to prune.
			if err := u.lock.remove(); err != nil {
				return err
			}
		}
	}
	r.trace("apply: locked and loaded %d containers at %s", len(units), ms(time.Since(start)))
	if err := r.stillUsed(units); err != nil {
		return fmt.Errorf("prune: %w\nnothing was changed", err)
	}
	res, err := r.observe(ctx, units)
	r.trace("apply: observed at %s", ms(time.Since(start)))
	if err != nil {
		return fmt.Errorf("%w\nnothing was changed", err)
	}
	if err := r.showPlan(res.Plan); err != nil {
		return err
	}
	s := res.Plan.Summary()
	if !s.Changed() {
		// Still bring the store up to date where it differs (a record left
		// pending by a crash whose object turned out complete); when it
		// matches, nothing is written.
		for _, u := range units {
			if u.want != nil {
				if err := r.settle(u); err != nil {
					return err
				}
			}
		}
		return nil
	}
	x := r.newRun(false)
	if err := x.prepare(res); err != nil {
		return err
	}
	r.trace("apply: intent recorded at %s", ms(time.Since(start)))
	runErr := x.run(ctx, res.Plan)
	r.trace("apply: steps ended at %s", ms(time.Since(start)))
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	for _, u := range units {
		cr := x.units[u.name]
		if cr == nil {
			continue
		}
		if err := cr.saver.flush(); err != nil {
			errs = append(errs, err)
			continue
		}
		if runErr != nil {
			continue // the store keeps what was done and what was pending
		}
		if u.want == nil {
			if err := r.Store.Remove(u.name); err != nil {
				errs = append(errs, err)
			} else if err := u.lock.remove(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := r.settle(u); err != nil {
			errs = append(errs, err)
		}
	}
	took := ms(time.Since(start))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(r.Out, "Apply stopped after %d of %d steps (%s): %d created, %d updated, %d replaced, %d deleted.\n",
			x.done.Load(), x.total, took, x.n[plan.Create].Load(), x.n[plan.Update].Load(), x.n[plan.Replace].Load(), x.n[plan.Delete].Load())
		return err
	}
	fmt.Fprintf(r.Out, "Apply complete in %s: %d created, %d updated, %d replaced, %d deleted.\n",
		took, x.n[plan.Create].Load(), x.n[plan.Update].Load(), x.n[plan.Replace].Load(), x.n[plan.Delete].Load())
	return nil
}

func (r *Reconciler) lock(ctx context.Context, name string) (*Lock, error) {
	return r.Store.LockContext(ctx, name, r.NoWait, func() {
		fmt.Fprintf(r.Out, "container %s: another hutch is working on it; waiting for it to finish (--no-wait fails instead)\n", name)
	})
}

// settle writes the container's final state: every desired resource done,
// and its config.json; each only when it differs from the file.
func (r *Reconciler) settle(u *unit) error {
	st := &State{Version: StateVersion, Container: u.name, Kind: u.want.Kind, Manifest: u.want.Source}
	for _, res := range u.want.Resources {
		if err := st.set(res, StatusDone); err != nil {
			return err
		}
	}
	if u.want.Config != nil {
		if _, err := r.Store.SaveConfig(u.name, u.want.Config); err != nil {
			return err
		}
	}
	return r.Store.Save(st)
}

// Delete removes every host object the store records for each named
// container, in reverse dependency order (the process first), carrying on
// past errors and reporting them all; when nothing failed it removes the
// container's folder. It needs no manifest. A name the store does not know is
// an error wrapping ErrNotFound unless ignoreNotFound, when it is skipped
// with a message.
func (r *Reconciler) Delete(ctx context.Context, names []string, ignoreNotFound bool) error {
	start := time.Now()
	// The finders' scans of the host (what is marked for each name) are
	// made once for all names, before anything is deleted.
	scanCtx := scan.With(ctx)
	names = append([]string(nil), names...)
	sort.Strings(names)
	var errs []error
	var units []*unit
	defer func() {
		for _, u := range units {
			u.lock.Unlock()
		}
	}()
	for i, n := range names {
		if i > 0 && names[i-1] == n {
			continue
		}
		// A name from the command line or from `delete -f` (which loads
		// without validating) becomes paths under the state root.
		if err := CheckName(n); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.known(scanCtx, n); errors.Is(err, ErrNotFound) {
			// Neither a folder nor a marked object on the host (owned.go):
			// do not make a lock file for it.
			if ignoreNotFound {
				fmt.Fprintf(r.Out, "container %s: not found, nothing to delete\n", n)
			} else {
				errs = append(errs, err)
			}
			continue
		}
		l, err := r.lock(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u := &unit{name: n, lock: l}
		units = append(units, u)
		if u.state, err = r.loadForDelete(scanCtx, n); errors.Is(err, ErrNotFound) {
			// Deleted by another hutch while we waited.
			fmt.Fprintf(r.Out, "container %s: not found, nothing to delete\n", n)
			l.remove()
			units = units[:len(units)-1]
			continue
		} else if err != nil {
			// Nothing of it is deleted: it keeps its records and its lock
			// file, and the error says why.
			errs = append(errs, err)
			l.Unlock()
			units = units[:len(units)-1]
			continue
		}
	}
	if err := r.stillUsed(units); err != nil {
		return errors.Join(append(errs, err)...)
	}
	deleted, derrs := r.deleteUnits(ctx, units)
	if err := errors.Join(append(errs, derrs...)...); err != nil {
		return err
	}
	if len(units) > 0 {
		fmt.Fprintf(r.Out, "Delete complete in %s: %d deleted.\n", ms(time.Since(start)), deleted)
	}
	return nil
}

// deleteUnits deletes every resource the states of the locked units record,
// in one run in reverse dependency order, carrying on past errors; each
// unit whose steps all succeeded then loses its folder and its lock file.
// It returns how many resources it deleted and every error.
func (r *Reconciler) deleteUnits(ctx context.Context, units []*unit) (int64, []error) {
	var errs []error
	var changes []*plan.Change
	for _, u := range units {
		for _, rec := range u.state.Resources {
			res, err := rec.Resource()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ch := &plan.Change{ID: rec.ID, Kind: rec.Kind, Action: plan.Delete, Before: res}
			u.changes = append(u.changes, ch)
			changes = append(changes, ch)
		}
	}
	p, err := plan.NewPlan(changes)
	if err != nil {
		return 0, append(errs, err)
	}
	x := r.newRun(true)
	if err := x.prepare(&Result{Plan: p, units: units}); err != nil {
		return 0, append(errs, err)
	}
	// The steps share the drivers' scans of the host too (each process
	// step looks for stray supervisors of its bundle in /proc): every
	// container deleted is locked, so nothing else adds to what a scan
	// found, and a delete makes nothing that one would have to see.
	if err := x.run(scan.With(ctx), p); err != nil {
		errs = append(errs, err)
	}
	for _, u := range units {
		cr := x.units[u.name]
		failed := cr != nil && cr.failed.Load()
		if cr != nil {
			if err := cr.saver.flush(); err != nil {
				errs = append(errs, err)
				failed = true
			}
		}
		if failed {
			continue // the store keeps what is left
		}
		if err := r.Store.Remove(u.name); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := u.lock.remove(); err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(r.Out, "%s %s: deleted\n", unitWord(u.state), u.name)
	}
	return x.n[plan.Delete].Load(), errs
}

// execution is one run of a plan's steps.
type execution struct {
	r       *Reconciler
	carryOn bool // delete: keep going past failures
	units   map[string]*unitRun
	owners  map[plan.Resource]string // a change's resource -> its container
	stopped atomic.Bool
	done    atomic.Int64
	total   int
	n       map[plan.Action]*atomic.Int64
	outMu   sync.Mutex
}

// unitRun is one container's part of an execution.
type unitRun struct {
	*unit
	saver  *saver
	failed atomic.Bool
}

func (r *Reconciler) newRun(carryOn bool) *execution {
	x := &execution{r: r, carryOn: carryOn, units: map[string]*unitRun{}, owners: map[plan.Resource]string{}, n: map[plan.Action]*atomic.Int64{}}
	for _, a := range []plan.Action{plan.Create, plan.Update, plan.Replace, plan.Delete} {
		x.n[a] = new(atomic.Int64)
	}
	return x
}

// prepare records, for each container with something to do, every step it
// is about to take (pending, or deleting) in one synchronous write, before
// the first step starts.
func (x *execution) prepare(res *Result) error {
	for _, u := range res.units {
		for _, c := range u.changes {
			x.owners[c.Resource()] = u.name
		}
		changed := false
		for _, c := range u.changes {
			if c.Action != plan.NoOp {
				changed = true
			}
		}
		if !changed {
			continue
		}
		st := u.state
		if st == nil {
			st = &State{Version: StateVersion, Container: u.name}
		} else {
			st = st.clone()
		}
		if u.want != nil {
			st.Manifest = u.want.Source
			st.Kind = u.want.Kind
		}
		sv := newSaver(x.r.Store, st)
		err := sv.sync(func(st *State) error {
			for _, c := range u.changes {
				switch c.Action {
				case plan.Delete:
					st.setStatus(c.ID, StatusDeleting)
				case plan.Create, plan.Update, plan.Replace:
					if err := st.set(c.After, StatusPending); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		x.units[u.name] = &unitRun{unit: u, saver: sv}
	}
	return nil
}

// node is one step and what it waits for.
type node struct {
	ch       *plan.Change
	owner    string
	waits    []*node
	carriers []*node // teardown steps of the resources whose removal takes this one along
	done     chan struct{}
	ok       bool
}

// run carries out the plan's steps. Each step waits for those it depends
// on: a delete for the deletes of its dependents, a create or update for the
// creates and updates of its dependencies and for every delete of its
// container (and any delete of the same ID, from a container being pruned).
func (x *execution) run(ctx context.Context, p *plan.Plan) error {
	nodes, ix := x.nodes(p)
	x.total = len(nodes)
	for _, n := range nodes {
		if teardown(n.ch) {
			x.waitTeardown(n, ix)
		} else {
			waitBuild(n, nodes, ix)
		}
	}
	if c := waitCycle(nodes); c != "" {
		// Only records edited by hand can say so (plan.Order refuses a
		// cycle among the changes themselves): nothing would ever start.
		return fmt.Errorf("%w among the recorded resources: %s", plan.ErrCycle, c)
	}
	return x.runNodes(ctx, nodes)
}

// stepIndex finds a run's steps by the resource they act on. A dependency
// of another unit's (a container's veth on a network's bridge, a link
// between two containers' namespaces) is found by its ID alone: IDs of
// shared objects are unique host-wide.
type stepIndex struct {
	down     map[string]*node // owner|id -> teardown step
	downByID map[string][]*node
	up       map[string]*node // owner|id -> create or update step
	upByID   map[string]*node
}

// nodes makes a step of every change that does something, in the plan's
// order, and their index.
func (x *execution) nodes(p *plan.Plan) ([]*node, *stepIndex) {
	var nodes []*node
	ix := &stepIndex{down: map[string]*node{}, downByID: map[string][]*node{}, up: map[string]*node{}, upByID: map[string]*node{}}
	for _, c := range p.Changes {
		if c.Action == plan.NoOp {
			continue
		}
		n := &node{ch: c, owner: x.owners[c.Resource()], done: make(chan struct{})}
		nodes = append(nodes, n)
		if teardown(c) {
			ix.down[n.owner+"|"+c.ID] = n
			ix.downByID[c.ID] = append(ix.downByID[c.ID], n)
		} else {
			ix.up[n.owner+"|"+c.ID] = n
			ix.upByID[c.ID] = n
		}
	}
	return nodes, ix
}

// downOf is the teardown step of id, owner's or the only one of that ID.
func (ix *stepIndex) downOf(owner, id string) (*node, bool) {
	if m, ok := ix.down[owner+"|"+id]; ok {
		return m, true
	}
	if ms := ix.downByID[id]; len(ms) == 1 {
		return ms[0], true
	}
	return nil, false
}

// upOf is the create or update step of id, owner's or any unit's.
func (ix *stepIndex) upOf(owner, id string) (*node, bool) {
	if m, ok := ix.up[owner+"|"+id]; ok {
		return m, true
	}
	m, ok := ix.upByID[id]
	return m, ok
}

// waitTeardown orders the teardown step n: its own dependencies are torn
// down after n, except those that carry it (plan.Carried): n goes after
// them, and knows them to skip what the kernel removes along.
func (x *execution) waitTeardown(n *node, ix *stepIndex) {
	r := x.doomed(n)
	carriers := plan.CarriedBy(r)
	for _, d := range r.Deps() {
		m, ok := ix.downOf(n.owner, d)
		switch {
		case !ok:
		case slices.Contains(carriers, d):
			n.waits = append(n.waits, m)
			n.carriers = append(n.carriers, m)
		default:
			m.waits = append(m.waits, n)
		}
	}
}

// waitBuild orders the create or update step n after the steps that make
// its dependencies, every teardown of its own unit, and the teardowns of
// the same ID (a container being pruned that held it).
func waitBuild(n *node, nodes []*node, ix *stepIndex) {
	for _, d := range n.ch.After.Deps() {
		if m, ok := ix.upOf(n.owner, d); ok {
			n.waits = append(n.waits, m)
		}
	}
	for _, m := range nodes {
		if teardown(m.ch) && m.owner == n.owner {
			n.waits = append(n.waits, m)
		}
	}
	n.waits = append(n.waits, ix.downByID[n.ch.ID]...)
}

// runNodes runs every step in its own goroutine once the steps it waits
// for have ended, up to parallel() at once (a step that only waits gives
// its place back meanwhile: slot.Idle). A failed step keeps the steps
// that wait for it from starting and, unless carryOn (a delete carries on
// past errors), every step not started yet.
func (x *execution) runNodes(ctx context.Context, nodes []*node) error {
	sem := make(chan struct{}, x.r.parallel())
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			defer close(n.done)
			for _, m := range n.waits {
				<-m.done
				if !m.ok && !x.carryOn {
					return
				}
			}
			if x.stopped.Load() {
				return
			}
			sctx, s := slot.Take(ctx, sem)
			defer s.Release()
			if x.stopped.Load() {
				return
			}
			if err := x.step(sctx, n); err != nil {
				errs[i] = err
				x.units[n.owner].failed.Store(true)
				if !x.carryOn {
					x.stopped.Store(true)
				}
				return
			}
			n.ok = true
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitCycle returns the IDs of steps that wait for each other in a circle
// ("a -> b -> a"), or "" when there is none.
func waitCycle(nodes []*node) string {
	const (
		white = iota
		grey
		black
	)
	color := map[*node]int{}
	var path []*node
	var found string
	var visit func(n *node) bool
	visit = func(n *node) bool {
		color[n] = grey
		path = append(path, n)
		for _, m := range n.waits {
			switch color[m] {
			case grey:
				var ids []string
				for i := len(path) - 1; i >= 0; i-- {
					ids = append([]string{path[i].ch.ID}, ids...)
					if path[i] == m {
						break
					}
				}
				found = strings.Join(append(ids, m.ch.ID), " -> ")
				return true
			case white:
				if visit(m) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		color[n] = black
		return false
	}
	for _, n := range nodes {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return ""
}

// doomed is the value a teardown step deletes: what the store records hutch
// made under that ID when it has a record, else the desired value (the
// delete half of a replace), else the observed one. The observed value says
// what the kernel has now and may lack what names the object (the peer of
// a veth whose netns is gone); the record never does.
func (x *execution) doomed(n *node) plan.Resource {
	if u := x.units[n.owner]; u != nil && u.state != nil {
		if rec := u.state.record(n.ch.ID); rec != nil {
			if r, err := rec.Resource(); err == nil {
				return r
			}
		}
	}
	if n.ch.Action == plan.Delete || n.ch.After == nil {
		return n.ch.Before
	}
	return n.ch.After
}

// carried reports whether a carrier of n's resource was torn down in this
// run, so the kernel is removing n's resource by itself.
func (n *node) carried() bool {
	for _, m := range n.carriers {
		if m.ok {
			return true
		}
	}
	return false
}

func teardown(c *plan.Change) bool {
	return c.Action == plan.Delete || c.Half == plan.HalfDelete
}

// step carries out one change through its driver and records it.
func (x *execution) step(ctx context.Context, n *node) error {
	c := n.ch
	u := x.units[n.owner]
	d, err := x.r.driver(c.Kind)
	if err != nil {
		return err
	}
	action := "create"
	switch {
	case teardown(c):
		action = "delete"
	case c.Action == plan.Update:
		action = "update"
	}
	if x.r.Fault != nil {
		x.r.Fault("before", c.Kind, action)
	}
	start := time.Now()
	x.r.trace("step %s %s: starts", action, c.ID)
	ctx, stopProgress := x.showProgress(ctx, c.ID, action, start)
	defer stopProgress()
	if action == "delete" {
		cd, ok := d.(CarriedDeleter)
		if ok && n.carried() {
			err = cd.DeleteCarried(ctx, x.doomed(n))
		} else {
			err = d.Delete(ctx, x.doomed(n))
		}
	} else {
		if c.Kind == plan.KindProcess && u.want != nil && u.want.Config != nil {
			// The process driver runs the bundle's config.json.
			if _, err := x.r.Store.SaveConfig(u.name, u.want.Config); err != nil {
				return err
			}
		}
		err = d.Apply(ctx, c)
	}
	took := time.Since(start)
	stopProgress()
	if err != nil {
		x.print("! %s (%s failed after %s)", name(c.ID), action, ms(took))
		return fmt.Errorf("%s %s: %w", action, c.ID, err)
	}
	if x.r.Fault != nil {
		x.r.Fault("after", c.Kind, action)
	}
	switch {
	case c.Action == plan.Delete:
		err = u.saver.update(func(st *State) error { st.remove(c.ID); return nil })
	case c.Half == plan.HalfDelete:
		// The record stays pending until the create half ends.
	default:
		err = u.saver.update(func(st *State) error { return st.set(c.After, StatusDone) })
	}
	if err != nil {
		return err
	}
	x.done.Add(1)
	switch {
	case c.Half == plan.HalfDelete:
		x.print("- %s (replace: deleted, %s)", name(c.ID), ms(took))
	case c.Half == plan.HalfCreate:
		x.n[plan.Replace].Add(1)
		x.print("+ %s (replace: created, %s)", name(c.ID), ms(took))
	case c.Action == plan.Create:
		x.n[plan.Create].Add(1)
		x.print("+ %s (created, %s)", name(c.ID), ms(took))
	case c.Action == plan.Update:
		x.n[plan.Update].Add(1)
		x.print("~ %s (updated, %s)", name(c.ID), ms(took))
	case c.Action == plan.Delete:
		x.n[plan.Delete].Add(1)
		x.print("- %s (deleted, %s)", name(c.ID), ms(took))
	}
	return nil
}

// How soon, and how often after, a step that is still running says so.
var (
	progressAfter = 2 * time.Second
	progressEvery = 5 * time.Second
)

// showProgress prints a line for the step id while it runs longer than
// progressAfter, then every progressEvery, with its driver's latest word
// (progress.Report): a rootfs copy of hundreds of MB is seen moving. The
// returned stop may be called more than once.
func (x *execution) showProgress(ctx context.Context, id, action string, start time.Time) (context.Context, func()) {
	m := &progress.Meter{}
	done, exited := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(exited)
		t := time.NewTimer(progressAfter)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			line := fmt.Sprintf("… %s (%s: %s", name(id), strings.TrimSuffix(action, "e")+"ing", roundSeconds(time.Since(start)))
			if w := m.Last(); w != "" {
				line += ", " + w
			}
			x.print("%s)", line)
			t.Reset(progressEvery)
		}
	}()
	// stop waits for the goroutine, so no progress line follows the
	// step's own.
	return progress.With(ctx, m), func() { once.Do(func() { close(done); <-exited }) }
}

// roundSeconds is d in whole seconds, "7 s".
func roundSeconds(d time.Duration) string {
	return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
}

func (x *execution) print(format string, args ...any) {
	x.outMu.Lock()
	defer x.outMu.Unlock()
	fmt.Fprintf(x.r.Out, format+"\n", args...)
}
