// Package slot lets a step of a reconcile run give back its place among
// the steps that run at once while it only waits. The reconciler bounds
// how many steps run together (Reconciler.Parallel) so that 200 containers
// do not make 200 namespaces at the same moment; a step that watches its
// process for a start window, or waits for a dependency to become
// healthy, uses no CPU and no kernel lock while it waits, and holding a
// place through that second made an apply of 200 containers take
// 200 / Parallel seconds whatever the machine could do.
package slot

import "context"

type key struct{}

// Slot is one step's place among the steps that run at once: a token in
// the run's semaphore, taken by Take, given back by Release. Only the
// step's own goroutine uses it.
type Slot struct {
	sem  chan struct{}
	held bool
}

// Take waits for a place in sem and returns the step's context, which
// carries it for Idle, and the Slot, which the step Releases when it ends.
func Take(ctx context.Context, sem chan struct{}) (context.Context, *Slot) {
	sem <- struct{}{}
	s := &Slot{sem: sem, held: true}
	return context.WithValue(ctx, key{}, s), s
}

// Release gives the place back, when the step holds it.
func (s *Slot) Release() {
	if s.held {
		s.held = false
		<-s.sem
	}
}

// Idle gives back the place of the step whose context is ctx while the
// step only waits, and returns the function that takes a place again,
// which the step calls before it does more work (or when it ends:
// Release then has nothing to give back). Outside a run it does nothing.
func Idle(ctx context.Context) (resume func()) {
	s, ok := ctx.Value(key{}).(*Slot)
	if !ok || !s.held {
		return func() {}
	}
	s.Release()
	return func() {
		if s.held {
			return
		}
		select {
		case s.sem <- struct{}{}:
			s.held = true
		case <-ctx.Done():
			// The run is over: the step ends without a place, and its
			// Release gives none back.
		}
	}
}
