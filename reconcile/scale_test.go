package reconcile

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"hutch/internal/scan"
	"hutch/internal/slot"
	"hutch/plan"
)

// scanProbe is a driver that records whether each Observe and Delete call
// could share the host scans of its phase (scan.Active).
type scanProbe struct {
	Driver
	mu      sync.Mutex
	without []string
}

func (p *scanProbe) note(ctx context.Context, call string) {
	if !scan.Active(ctx) {
		p.mu.Lock()
		p.without = append(p.without, call)
		p.mu.Unlock()
	}
}

func (p *scanProbe) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	p.note(ctx, "observe "+want.ID())
	return p.Driver.Observe(ctx, want)
}

func (p *scanProbe) Delete(ctx context.Context, r plan.Resource) error {
	p.note(ctx, "delete "+r.ID())
	return p.Driver.Delete(ctx, r)
}

// The drivers' scans of the host (mountinfo, the host's addresses, /proc
// for stray supervisors) are shared by every container of an apply's
// observation and of a delete's steps: without that, each container read
// the whole host once and a delete of 1000 containers grew as N squared.
func TestObserveAndDeleteShareScans(t *testing.T) {
	e := newEnv(t)
	probes := map[plan.Kind]*scanProbe{}
	for k, d := range e.r.Drivers {
		probes[k] = &scanProbe{Driver: d}
		e.r.Drivers[k] = probes[k]
	}
	cs := []*Container{web("a").container(e.root), web("b").container(e.root)}
	e.mustApply(cs...)
	if err := e.r.Delete(context.Background(), []string{"a", "b"}, false); err != nil {
		t.Fatal(err)
	}
	for k, p := range probes {
		if len(p.without) > 0 {
			t.Errorf("%s: calls without a shared scan: %q", k, p.without)
		}
	}
}

// waitingProcess is a process driver whose Apply gives its place back
// (slot.Idle) and waits until the other container's process has been made
// too, as a start window or a wait for a healthy dependency waits.
type waitingProcess struct {
	Driver
	made map[string]chan struct{}
}

func (w *waitingProcess) Apply(ctx context.Context, ch *plan.Change) error {
	if err := w.Driver.Apply(ctx, ch); err != nil {
		return err
	}
	other := map[string]string{plan.ProcessID("a"): plan.ProcessID("b"), plan.ProcessID("b"): plan.ProcessID("a")}[ch.ID]
	if other == "" {
		return nil
	}
	close(w.made[ch.ID])
	slot.Idle(ctx)
	select {
	case <-w.made[other]:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s was not made while %s waited: the waiting step kept its place", other, ch.ID)
	}
}

// A step that only waits gives its place back: with one step at a time,
// a's process step waits for b's and b's for a's, which only works when
// the first to wait lets the other run.
func TestWaitingStepGivesItsPlaceBack(t *testing.T) {
	e := newEnv(t)
	e.r.Parallel = 1
	e.r.Drivers[plan.KindProcess] = &waitingProcess{Driver: e.r.Drivers[plan.KindProcess], made: map[string]chan struct{}{
		plan.ProcessID("a"): make(chan struct{}), plan.ProcessID("b"): make(chan struct{}),
	}}
	e.mustApply(web("a").container(e.root), web("b").container(e.root))
	if n := len(e.host.objects()); n != 14 {
		t.Errorf("%d objects, want 14", n)
	}
}
