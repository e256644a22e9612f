package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	processdrv "hutch/drivers/process"
	"hutch/plan"
)

// readyPoll is how often --wait reads the containers' states.
const readyPoll = 50 * time.Millisecond

// waitReady waits until every container of d that has a process is ready
// (running, and healthy when it has a health check), printing each as it
// becomes so. It fails at once for a container that cannot become ready
// without a new apply (its process ended, its health check failed Retries
// times), and after timeout for those still not ready, naming each with
// its state and log tail.
func waitReady(ctx context.Context, out io.Writer, pd *processdrv.Driver, d *plan.Desired, timeout time.Duration) error {
	pending := map[string]string{} // container -> bundle
	for _, c := range d.Containers {
		for _, r := range c.Resources {
			if p, ok := r.(*plan.Process); ok {
				pending[c.Name] = p.Bundle
			}
		}
	}
	if len(pending) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fmt.Fprintf(out, "Waiting for %s to be ready (timeout %s).\n", plural(uint64(len(pending)), "container"), timeout)
	last := map[string]processdrv.Readiness{}
	for {
		var failed []string
		for _, name := range slices.Sorted(maps.Keys(pending)) {
			r, err := pd.Ready(ctx, pending[name])
			if err != nil {
				return err
			}
			last[name] = r
			switch {
			case r.Ready:
				fmt.Fprintf(out, "✓ %s %s (%s)\n", name, r.Why, elapsed(time.Since(start)))
				delete(pending, name)
			case r.Failed:
				failed = append(failed, notReady(name, r))
				delete(pending, name)
			}
		}
		if len(failed) > 0 {
			return errors.New(strings.Join(failed, "\n"))
		}
		if len(pending) == 0 {
			fmt.Fprintf(out, "Ready in %s.\n", elapsed(time.Since(start)))
			return nil
		}
		select {
		case <-ctx.Done():
			var msgs []string
			for _, name := range slices.Sorted(maps.Keys(pending)) {
				r := last[name]
				r.Why = "still " + r.Why + " after " + timeout.String()
				msgs = append(msgs, notReady(name, r))
			}
			return errors.New(strings.Join(msgs, "\n"))
		case <-time.After(readyPoll):
		}
	}
}

// notReady is the message for a container that is not ready.
func notReady(name string, r processdrv.Readiness) string {
	var b strings.Builder
	fmt.Fprintf(&b, "container %s: not ready: %s", name, r.Why)
	if len(r.LogTail) > 0 {
		fmt.Fprintf(&b, "; the last %d lines of its log (hutch logs %s):", len(r.LogTail), name)
		for _, l := range r.LogTail {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}

// elapsed is a wait's length for people: "340 ms", "2.4 s".
func elapsed(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
