package slot

import (
	"context"
	"testing"
)

func TestIdleGivesThePlaceBack(t *testing.T) {
	sem := make(chan struct{}, 1)
	ctx, s := Take(context.Background(), sem)
	if len(sem) != 1 {
		t.Fatalf("after Take: %d places taken, want 1", len(sem))
	}
	resume := Idle(ctx)
	if len(sem) != 0 {
		t.Fatalf("while idle: %d places taken, want 0", len(sem))
	}
	// Another step can run meanwhile.
	_, other := Take(context.Background(), sem)
	other.Release()
	resume()
	if len(sem) != 1 {
		t.Fatalf("after resume: %d places taken, want 1", len(sem))
	}
	resume() // twice is once
	s.Release()
	s.Release() // twice is once
	if len(sem) != 0 {
		t.Fatalf("after Release: %d places taken, want 0", len(sem))
	}
}

func TestIdleOutsideARun(t *testing.T) {
	Idle(context.Background())() // no slot: nothing to give or take
}

func TestResumeAfterTheRunEnded(t *testing.T) {
	sem := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ctx, s := Take(ctx, sem)
	resume := Idle(ctx)
	sem <- struct{}{} // the place is taken by another step
	cancel()
	resume() // must not wait for a place
	s.Release()
	if len(sem) != 1 {
		t.Fatalf("%d places taken, want the other step's 1", len(sem))
	}
}
