package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"hutch/plan"
	"hutch/reconcile"
)

// newApplyCommand is `hutch apply`.
func newApplyCommand(h *host) *cobra.Command {
	var o applyFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILE...",
		Short: "Make the host match the manifests",
		Long: `apply reads and validates the manifests, observes what is on the host, prints
the plan (+ create, ~ update in place, -/+ replace, - delete) and carries it
out, printing each step with its duration as it ends (and, for a step that
takes longer than 2 s, how far it has got). A second apply of an unchanged
manifest changes nothing and writes nothing. It prints the plan's summary
first; --verbose prints the whole plan, as 'hutch plan' does.

A process step is complete when the process has run through its start window
(spec.process.startWindow, 1 s unless set) or its health check passed: one
that exits in it fails the apply (exit status 1) with its exit status and the
last lines of its log. With --wait, apply then waits until every container is
ready (running, and healthy when it has a health check), at most --timeout,
and fails naming each one that is not.

Memory and CPU limits and addresses change in place; a changed rootfs, process
or namespace replaces the container's process. Whatever was changed or removed
on the host behind hutch's back is repaired.

Every step is recorded in the state store (--root) before it starts and after
it ends, so an apply that is killed is completed by the next apply, and
'hutch delete' removes everything it made. One hutch at a time works on a
container: apply waits for another one to finish, or fails with --no-wait.

--prune also deletes the containers an earlier apply of the same files made
that the files no longer have.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd, h, o)
		},
	}
	cmd.Flags().StringArrayVarP(&o.files, "file", "f", nil, "manifest file, folder of *.yaml, or - for stdin (repeatable)")
	cmd.Flags().BoolVar(&o.prune, "prune", false, "delete containers an earlier apply of these files made that they no longer have")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "fail at once when another hutch is working on a container")
	cmd.Flags().BoolVar(&o.explain, "explain", false, "first print each change's kernel operation and equivalent shell command")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "print the whole plan (every field of every change) before the steps")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "then wait until every container runs, and is healthy when it has a health check")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "longest wait of --wait")
	cmd.MarkFlagRequired("file")
	return cmd
}

// applyFlags are the flags of hutch apply.
type applyFlags struct {
	files   []string
	prune   bool
	noWait  bool
	explain bool
	verbose bool
	wait    bool
	timeout time.Duration
}

// runApply is hutch apply: load, plan and apply the manifests, and with
// --wait wait for the containers to be ready.
func runApply(cmd *cobra.Command, h *host, o applyFlags) error {
	_, d, err := loadDesired(o.files, h.opts)
	if err != nil {
		return err
	}
	want, err := reconcile.FromDesired(d)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	ds, err := h.drivers()
	if err != nil {
		return err
	}
	r, err := newReconciler(h, ds, out)
	if err != nil {
		return err
	}
	r.NoWait = o.noWait
	r.Verbose = o.verbose
	ao := reconcile.ApplyOptions{Prune: o.prune}
	if o.prune {
		if ao.Sources, err = reconcile.Sources(o.files); err != nil {
			return err
		}
	}
	if o.explain {
		// First the plan with each step's kernel operation and shell
		// command, then the apply itself.
		res, err := r.Plan(ctx(cmd), want, ao)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		if err := writeExplained(ctx(cmd), out, h, "human", res.Plan, d, false); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	if err := r.Apply(ctx(cmd), want, ao); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if !o.wait {
		return nil
	}
	pd, err := h.process()
	if err != nil {
		return fmt.Errorf("apply: --wait: %w", err)
	}
	if err := waitReady(ctx(cmd), out, pd, d, o.timeout); err != nil {
		return fmt.Errorf("apply: --wait: %w", err)
	}
	return nil
}

// observeChanges is how hutch plan finds the changes: the reconciler
// observes the host and diffs, as apply does, through the plan-only
// drivers.
func (h *host) observeChanges(c context.Context, d *plan.Desired) ([]*plan.Change, error) {
	want, err := reconcile.FromDesired(d)
	if err != nil {
		return nil, err
	}
	ds, err := h.planDrivers()
	if err != nil {
		return nil, err
	}
	r, err := newReconciler(h, ds, io.Discard)
	if err != nil {
		return nil, err
	}
	res, err := r.Plan(c, want, reconcile.ApplyOptions{})
	if err != nil {
		return nil, err
	}
	return res.Plan.Changes, nil
}

func ctx(cmd *cobra.Command) context.Context {
	if c := cmd.Context(); c != nil {
		return c
	}
	return context.Background()
}

// newReconciler wires the drivers ds, the host's state store and fault
// injection, with what the environment asks of them.
func newReconciler(h *host, ds map[plan.Kind]reconcile.Driver, out io.Writer) (*reconcile.Reconciler, error) {
	fault, err := faultFromEnv()
	if err != nil {
		return nil, err
	}
	r := &reconcile.Reconciler{
		Drivers: ds,
		Store:   h.store(),
		Out:     out,
		Color:   useColor(out),
		Fault:   fault,
	}
	if v := os.Getenv("HUTCH_PARALLEL"); v != "" {
		// How many steps run at once (default: eight per CPU, as
		// reconcile.Reconciler.Parallel says why).
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("HUTCH_PARALLEL=%q: want a number of steps, 1 or more", v)
		}
		r.Parallel = n
	}
	if os.Getenv("HUTCH_TRACE") != "" {
		// Where the time of a plan goes: each Observe's duration, on stderr.
		r.Trace = os.Stderr
	}
	return r, nil
}
