package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"hutch/plan"
)

// Running one container in the foreground (`hutch run`): everything but the
// process converges exactly as Apply makes it (the same observe, diff, plan
// and steps, recorded in the store the same way), and the process is started
// by the process driver as a child of hutch itself instead of under a
// supervisor. Run waits for it, and with Remove deletes the container as
// Delete would.

// Foregrounder is implemented by the driver of plan.KindProcess that can run
// a container's process as a child of the calling process: it starts it with
// the given standard streams, calls started once the process runs and is
// recorded, forwards what arrives on signals to it, waits for it, and returns
// its exit status (128+N when signal N ended it, as a shell says).
type Foregrounder interface {
	Foreground(ctx context.Context, p *plan.Process, stdin io.Reader, stdout, stderr io.Writer,
		signals <-chan os.Signal, started func() error) (int, error)
}

// ErrRunning is wrapped when Run finds the container's process already
// running (under its supervisor, or another hutch run).
var ErrRunning = errors.New("already running")

// RunOptions are the options of Run.
type RunOptions struct {
	// Remove deletes every object of the container once its process has
	// ended, or when the run fails after anything was made (--rm).
	Remove bool
	// The workload's standard streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Signals are forwarded to the container's first process once it runs
	// (those that arrive before are forwarded as soon as it runs). Run
	// reads them itself only while it waits for the container's lock.
	Signals <-chan os.Signal
	// Interrupts says which of Signals ask to end the run (the caller's
	// choice: hutch run's are those of a Ctrl-C, a kill, a closed
	// terminal). One that arrives while Run waits for another hutch to
	// finish with the container ends the wait with an error, as nothing
	// was made yet; others that arrive meanwhile are dropped. Nil: no
	// signal ends the wait.
	Interrupts func(os.Signal) bool
}

// Run converges the container c as Apply would, except for its process,
// which it runs in the foreground through the process driver's Foreground,
// and returns the process's exit status.
//
// The container's lock is held while it converges and until the process is
// recorded as started, then released: a delete, a stop or an apply of a
// changed manifest may then end the process as they end a supervised one.
// A container whose process already runs is an error wrapping ErrRunning,
// and nothing is changed.
//
// With Remove, the container's objects are deleted once the process has
// ended, from what the store records, in the reverse order of their making.
// When another hutch holds the lock then (a delete or an apply working on
// it), the container is left to it. Every record is written before its step
// as Apply writes it, so that a Run killed at any point leaves nothing that
// Delete cannot find.
func (r *Reconciler) Run(ctx context.Context, c *Container, o RunOptions) (int, error) {
	start := time.Now()
	fg, err := r.foregrounder(c.Name)
	if err != nil {
		return -1, err
	}
	if o.Remove {
		// See WithoutSync: a removed container's records need to outlive
		// hutch, not the machine.
		defer func(s *Store) { r.Store = s }(r.Store)
		r.Store = r.Store.WithoutSync()
	}
	u := &unit{name: c.Name, want: c}
	if u.lock, err = r.lockInterruptibly(ctx, c.Name, o); err != nil {
		return -1, err
	}
	defer func() { u.lock.Unlock() }()
	if u.state, err = r.Store.Load(c.Name); err != nil && !errors.Is(err, ErrNotFound) {
		return -1, err
	}
	res, err := r.observe(ctx, []*unit{u})
	r.trace("run: observed at %s", ms(time.Since(start)))
	if err != nil {
		return -1, fmt.Errorf("%w\nnothing was changed", err)
	}
	proc, p, rest, err := foregroundChange(c.Name, res.Plan)
	if err != nil {
		return -1, err
	}
	if err := r.showPlan(res.Plan); err != nil {
		return -1, err
	}
	// Every step, the process's too, is recorded pending in one write
	// before the first starts.
	x := r.newRun(false)
	if err := x.prepare(res); err != nil {
		return -1, err
	}
	cr := x.units[c.Name]
	r.trace("run: intent recorded at %s", ms(time.Since(start)))
	if err := r.makeAllButProcess(ctx, x, cr, &plan.Plan{FormatVersion: res.Plan.FormatVersion, Changes: rest}, start); err != nil {
		return -1, r.failed(ctx, u, o, err)
	}
	if r.Fault != nil {
		r.Fault("before", plan.KindProcess, "create")
	}
	x.print("+ %s (starting in the foreground)", name(proc.ID))
	code, err := fg.Foreground(ctx, p, o.Stdin, o.Stdout, o.Stderr, o.Signals, r.started(u, cr, p, start))
	r.trace("run: process ended at %s", ms(time.Since(start)))
	if err != nil {
		return -1, r.failed(ctx, u, o, fmt.Errorf("create %s: %w", proc.ID, err))
	}
	if !o.Remove {
		return code, nil
	}
	err = r.remove(ctx, c.Name)
	r.trace("run: removed at %s", ms(time.Since(start)))
	return code, err
}

// foregrounder is the process driver, which must run processes in the
// foreground.
func (r *Reconciler) foregrounder(container string) (Foregrounder, error) {
	d, err := r.driver(plan.KindProcess)
	if err != nil {
		return nil, err
	}
	fg, ok := d.(Foregrounder)
	if !ok {
		return nil, fmt.Errorf("container %s: the process driver cannot run a process in the foreground", container)
	}
	return fg, nil
}

// foregroundChange splits the container's plan into the create of its
// process, which Run runs in the foreground, and the rest. A process that
// exists already (its change is not a create) runs under its supervisor or
// another hutch run: that is an error wrapping ErrRunning.
func foregroundChange(container string, pl *plan.Plan) (proc *plan.Change, p *plan.Process, rest []*plan.Change, err error) {
	for _, ch := range pl.Changes {
		if ch.Kind == plan.KindProcess && ch.Action != plan.Delete {
			proc = ch
			continue
		}
		rest = append(rest, ch)
	}
	if proc == nil {
		return nil, nil, nil, fmt.Errorf("container %s: the manifest has no process to run", container)
	}
	if proc.Action != plan.Create {
		return nil, nil, nil, fmt.Errorf("container %s: %w: its process runs under its supervisor (hutch apply) or another hutch run; stop it (hutch stop %s) or delete it first\nnothing was changed",
			container, ErrRunning, container)
	}
	p, ok := proc.After.(*plan.Process)
	if !ok {
		return nil, nil, nil, fmt.Errorf("container %s: process resource %T is not a *plan.Process", container, proc.After)
	}
	return proc, p, rest, nil
}

// makeAllButProcess runs the steps of rest (every step but the process's)
// as Apply runs them, and writes what they made to the store, then the
// bundle's config.json, which the process driver runs.
func (r *Reconciler) makeAllButProcess(ctx context.Context, x *execution, cr *unitRun, rest *plan.Plan, start time.Time) error {
	err := x.run(ctx, rest)
	r.trace("run: steps ended at %s", ms(time.Since(start)))
	if ferr := cr.saver.flush(); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if err == nil && cr.want.Config != nil {
		_, err = r.Store.SaveConfig(cr.name, cr.want.Config)
	}
	return err
}

// started is what the process driver calls once the process runs and it
// has recorded it: the store says so too, and the container's lock is let
// go, so that other hutches may work on the container while it runs.
func (r *Reconciler) started(u *unit, cr *unitRun, p *plan.Process, start time.Time) func() error {
	return func() error {
		err := cr.saver.sync(func(st *State) error { return st.set(p, StatusDone) })
		u.lock.Unlock()
		r.trace("run: process started at %s", ms(time.Since(start)))
		if r.Fault != nil {
			r.Fault("after", plan.KindProcess, "create")
		}
		return err
	}
}

// failed ends a Run that failed before or while starting the process: with
// Remove, what was made is deleted (the error says what was not).
func (r *Reconciler) failed(ctx context.Context, u *unit, o RunOptions, err error) error {
	if !o.Remove {
		return err
	}
	u.lock.Unlock()
	if rerr := r.remove(ctx, u.name); rerr != nil {
		return errors.Join(err, fmt.Errorf("--rm: %w", rerr))
	}
	return err
}

// remove deletes the container after its foreground process ended: every
// object the store records, in reverse dependency order, carrying on past
// errors, then its folder and lock. The process record is dropped without
// a step when the driver observes no process: it has ended, and its files
// go with the folder. It takes the lock without waiting: a hutch that holds
// it is deleting the container or applying it again, and the container is
// left to it.
func (r *Reconciler) remove(ctx context.Context, name string) error {
	l, err := r.Store.Lock(name, true, nil)
	if errors.Is(err, ErrLocked) {
		fmt.Fprintf(r.Out, "container %s: another hutch is working on it; --rm leaves it to that one\n", name)
		return nil
	}
	if err != nil {
		return err
	}
	u := &unit{name: name, lock: l}
	defer func() { u.lock.Unlock() }()
	if u.state, err = r.Store.Load(name); errors.Is(err, ErrNotFound) {
		return u.lock.remove() // deleted meanwhile
	} else if err != nil {
		return err
	}
	// An ended process leaves nothing a step need remove: its files go
	// with the folder.
	u.state.Resources = slices.DeleteFunc(u.state.Resources, func(rec Record) bool {
		if rec.Kind != plan.KindProcess {
			return false
		}
		res, err := rec.Resource()
		if err != nil {
			return false
		}
		d, err := r.driver(plan.KindProcess)
		if err != nil {
			return false
		}
		got, err := d.Observe(ctx, res)
		return err == nil && absent(got)
	})
	if _, errs := r.deleteUnits(ctx, []*unit{u}); len(errs) > 0 {
		return errors.Join(errs...) // the store keeps what is left, for hutch delete
	}
	return nil
}

// lockInterruptibly is lock for Run: while it waits for another hutch to
// finish with the container, a signal that o.Interrupts says asks to end (a
// Ctrl-C) ends the wait with an error, as nothing was made yet; other
// signals that arrive meanwhile are dropped. Once the lock is held, signals
// are left to the process, which gets them once it runs.
func (r *Reconciler) lockInterruptibly(ctx context.Context, name string, o RunOptions) (*Lock, error) {
	if o.Signals == nil || o.Interrupts == nil || r.NoWait {
		return r.lock(ctx, name)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, watched := make(chan struct{}), make(chan struct{})
	var interrupted os.Signal
	watching := false
	l, err := r.Store.LockContext(wctx, name, false, func() {
		fmt.Fprintf(r.Out, "container %s: another hutch is working on it; waiting for it to finish (Ctrl-C stops waiting)\n", name)
		watching = true
		go func() {
			defer close(watched)
			for {
				select {
				case s := <-o.Signals:
					if o.Interrupts(s) {
						interrupted = s
						cancel()
						return
					}
				case <-stop:
					return
				}
			}
		}()
	})
	if watching {
		close(stop)
		<-watched
	}
	if interrupted != nil {
		l.Unlock()
		return nil, fmt.Errorf("container %s: %v while waiting for another hutch to finish with it\nnothing was changed", name, interrupted)
	}
	return l, err
}

// WithoutSync returns a store that writes as this one does, atomically
// (a temporary file renamed over the old one), but without fsync(2).
// `hutch run --rm` uses it: its records must outlive the hutch process (a
// kill -9 is followed by a delete that finds everything), which the page
// cache guarantees, while what they name (the netns, links, cgroup, mounts,
// the process) does not outlive the machine; two fsyncs per write were most
// of such a run's time. runc and crun do not fsync their state either.
func (s *Store) WithoutSync() *Store {
	c := *s
	c.noSync = true
	return &c
}
