//go:build linux

package process

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"hutch/plan"
)

// A process that exits within its start window fails the start, with its
// exit status and the last lines of its log (only those of this start).
func TestStartWindowExit(t *testing.T) {
	c := newContainer(t, []string{"sh", "-c", "echo first line; echo bind failed >&2; sleep 0.2; exit 3"}, containerOpts{})
	c.proc.StartWindow = 3 * time.Second
	begin := time.Now()
	err := c.d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: c.proc})
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("start: %v, want a *StartError", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("the start took %s: the exit at 0.2s should end the window", took)
	}
	if se.ExitCode != 3 || se.Signal != "" || se.OOMKilled || se.Restarting {
		t.Errorf("StartError %+v, want exit status 3", se)
	}
	if !slices.Equal(se.LogTail, []string{"first line", "bind failed"}) {
		t.Errorf("log tail %q", se.LogTail)
	}
	for _, want := range []string{"exited with status 3 within its start window of 3s", "\n    bind failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The next start is watched afresh, and shows only its own lines; an
	// exit 0 ended it as well. Then one killed from outside (as an init,
	// it ignores its own SIGKILL).
	c.spec.Process.Args = []string{"sh", "-c", "echo second; exit 0"}
	c.writeSpec()
	err = c.d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: c.proc})
	if !errors.As(err, &se) || se.ExitCode != 0 || !slices.Equal(se.LogTail, []string{"second"}) {
		t.Fatalf("second start: %v (%+v), want exit status 0 with only its own log line", err, se)
	}
	c.spec.Process.Args = []string{"sh", "-c", "echo third; exec sleep 100"}
	c.writeSpec()
	begin = time.Now()
	go func() {
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if st, err := readState(c.bundle); err == nil && st.PID > 0 && st.Started.After(begin) {
				syscallKill(st.PID)
				return
			}
		}
	}()
	err = c.d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: c.proc})
	if !errors.As(err, &se) || se.Signal != "SIGKILL" || !strings.Contains(err.Error(), "was killed by SIGKILL") {
		t.Fatalf("third start: %v (%+v), want killed by SIGKILL", err, se)
	}
}

// A process that runs through its window started; without a window, one
// that ends at once is not watched.
func TestStartWindowRunning(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.StartWindow = 300 * time.Millisecond
	begin := time.Now()
	c.start()
	if took := time.Since(begin); took < 300*time.Millisecond {
		t.Errorf("start returned after %s, before the window of 300ms passed", took)
	}
	if st := c.state(); st.Status != StatusRunning || !st.Alive() {
		t.Errorf("state %+v", st)
	}

	q := newContainer(t, []string{"false"}, containerOpts{})
	q.start() // StartWindow 0
}

// A restart policy that starts the process again does not hide the failed
// start.
func TestStartWindowRestarting(t *testing.T) {
	c := newContainer(t, []string{"sh", "-c", "exit 7"}, containerOpts{})
	c.proc.StartWindow = 2 * time.Second
	c.proc.Restart = plan.RestartPolicy{Policy: "always"}
	err := c.d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: c.proc})
	var se *StartError
	if !errors.As(err, &se) || se.ExitCode != 7 || !se.Restarting {
		t.Fatalf("start: %v (%+v), want exit status 7, restarting", err, se)
	}
	if !strings.Contains(err.Error(), "its restart policy starts it again") {
		t.Errorf("error %q", err)
	}
}

// A dependency with condition healthy that is down fails the start at
// once, saying why.
func TestWaitDependenciesDown(t *testing.T) {
	dep := newContainer(t, []string{"sh", "-c", "exit 4"}, containerOpts{})
	dep.start()
	dep.waitEnd()
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.After = []plan.Dependency{{Container: dep.name, Bundle: dep.bundle, Condition: "healthy"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.d.Apply(ctx, &plan.Change{Action: plan.Create, After: c.proc})
	if err == nil || !strings.Contains(err.Error(), "depends on "+dep.name+" being healthy, and its process exited with status 4") {
		t.Fatalf("start: %v", err)
	}
	if st := c.state(); st.Status != StatusAbsent {
		t.Errorf("the dependent started: %+v", st)
	}
}
