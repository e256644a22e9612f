//go:build linux

package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"hutch/internal/slot"
	"hutch/plan"
)

// StartError says that a container's process ended within its start
// window: it was started, but it is not running. Apply reports it as a
// failed step; what the reconciler made stays, and the next apply starts
// the process again.
type StartError struct {
	Container string
	Window    time.Duration
	ExitCode  int
	Signal    string // the signal that ended it, "" for an exit
	OOMKilled bool
	// Restarting says the supervisor starts it again (its restart policy).
	Restarting bool
	// LogTail is the last lines of its log (stdout and stderr, in order).
	LogTail []string
}

// startLogLines is how many log lines a StartError keeps.
const startLogLines = 10

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "container %s: process %s within its start window of %s", e.Container, e.How(), e.Window)
	if e.Restarting {
		b.WriteString(" (its restart policy starts it again)")
	}
	if len(e.LogTail) == 0 {
		b.WriteString("; its log is empty")
		return b.String()
	}
	fmt.Fprintf(&b, "; the last %d lines of its log (hutch logs %s):", len(e.LogTail), e.Container)
	for _, l := range e.LogTail {
		b.WriteString("\n    ")
		b.WriteString(l)
	}
	return b.String()
}

// How says how the process ended: "exited with status 1", "was killed by
// SIGSEGV", "was killed by the OOM killer".
func (e *StartError) How() string {
	switch {
	case e.OOMKilled:
		return "was killed by the OOM killer (spec.resources.memory)"
	case e.Signal != "":
		return "was killed by " + e.Signal
	}
	return fmt.Sprintf("exited with status %d", e.ExitCode)
}

// healthPoll is how often the start watch and the wait for a healthy
// dependency read the supervisor's record of the health check.
const healthPoll = 20 * time.Millisecond

// watchStart watches the process pid that the supervisor of p has just
// started, for p's start window: it returns nil when the window passes
// with the process running, or as soon as its health check passes, and a
// *StartError when it ends first. The end is seen through a pidfd
// (poll(2) says readable the moment the process exits); the health state
// is the supervisor's record in process.json.
func (d *Driver) watchStart(ctx context.Context, p *plan.Process, pid int) error {
	if p.StartWindow <= 0 {
		return nil
	}
	deadline := time.Now().Add(p.StartWindow)
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return d.startFailure(ctx, p)
	}
	if err != nil {
		return fmt.Errorf("container %s: watch process %d: pidfd_open: %w", p.Container, pid, err)
	}
	defer unix.Close(fd)
	// The pid is the process the supervisor started only if the record
	// still names it: a pid reused after a very early end is not.
	if st, err := d.State(p.Bundle); err != nil {
		return err
	} else if st.PID != pid {
		return d.startFailure(ctx, p)
	}
	// The watch only waits: other steps run meanwhile (slot.Idle). It is
	// the step's last work, so the place is not taken back.
	slot.Idle(ctx)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if p.Health != nil && left > healthPoll {
			left = healthPoll
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("container %s: watch process %d: poll pidfd: %w", p.Container, pid, err)
		}
		if n > 0 {
			return d.startFailure(ctx, p)
		}
		if p.Health != nil {
			if st, err := readState(p.Bundle); err == nil && st.Health != nil && st.Health.Status == HealthHealthy {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("container %s: watch the start: %w", p.Container, err)
		}
	}
}

// startFailure describes the end of a process that ended in its start
// window, once the supervisor has recorded it (it reaps the process and
// writes process.json right after; a second is plenty).
func (d *Driver) startFailure(ctx context.Context, p *plan.Process) error {
	e := &StartError{Container: p.Container, Window: p.StartWindow}
	var st *State
	for wait := time.Now().Add(time.Second); ; {
		s, err := d.State(p.Bundle)
		if err != nil {
			return err
		}
		st = s
		if !s.Finished.IsZero() || time.Now().After(wait) || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.ExitCode, e.Signal, e.OOMKilled = st.ExitCode, st.Signal, st.OOMKilled
	e.Restarting = st.Status == StatusRestarting || (st.Status == StatusRunning && st.Restarts > 0)
	e.LogTail = d.logTailSince(ctx, p.Bundle, st.Started)
	return e
}

// logTailSince returns the last startLogLines lines of the bundle's log
// written at or after since (the process's start: an earlier run's lines
// would mislead), stdout and stderr in order.
func (d *Driver) logTailSince(ctx context.Context, bundle string, since time.Time) []string {
	var out bytes.Buffer
	if d.Logs(ctx, bundle, LogOptions{Tail: startLogLines, Timestamps: true}, &out, &out) != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		ts, text, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && !since.IsZero() && t.Before(since) {
			continue
		}
		lines = append(lines, text)
	}
	return lines
}

// waitDependencies waits until every dependency of p with condition
// healthy is healthy. One that is unhealthy, or whose process is not
// running, fails the start at once with why: waiting on would only end at
// the timeout. (Condition started needs no wait here: the dependency's
// process step comes first, in Needs.)
func (d *Driver) waitDependencies(ctx context.Context, p *plan.Process) error {
	waited := false
	for _, dep := range p.After {
		if dep.Condition != "healthy" {
			continue
		}
		if !waited {
			// Other steps run while this one waits (slot.Idle).
			defer slot.Idle(ctx)()
			waited = true
		}
		for {
			st, err := d.State(dep.Bundle)
			if err != nil {
				return err
			}
			if err := dependencyDown(p.Container, dep.Container, st); err != nil {
				return err
			}
			if st.Health != nil && st.Health.Status == HealthHealthy {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("container %s: waiting for %s to be healthy: %w", p.Container, dep.Container, ctx.Err())
			case <-time.After(healthPoll):
			}
		}
	}
	return nil
}

// dependencyDown says why container c cannot start after dep, whose state
// is st, or nil when dep may still become healthy.
func dependencyDown(c, dep string, st *State) error {
	switch st.Status {
	case StatusCreated, StatusRunning:
	case StatusRestarting:
		return nil
	default:
		how := "is " + st.Status
		if st.Status == StatusExited {
			how = (&StartError{ExitCode: st.ExitCode, Signal: st.Signal, OOMKilled: st.OOMKilled}).How()
		}
		return fmt.Errorf("container %s: depends on %s being healthy, and its process %s", c, dep, how)
	}
	if st.Health == nil {
		return fmt.Errorf("container %s: depends on %s being healthy, and it runs without a health check (apply it again with its healthCheck)", c, dep)
	}
	if st.Health.Status == HealthUnhealthy {
		msg := ""
		if n := len(st.Health.Log); n > 0 {
			msg = ": " + strings.TrimSpace(st.Health.Log[n-1].Output)
		}
		return fmt.Errorf("container %s: depends on %s being healthy, and it is unhealthy after %d failed checks%s", c, dep, st.Health.FailingStreak, msg)
	}
	return nil
}

// Readiness of a container's process, as Ready reports it.
type Readiness struct {
	// Ready: running, and healthy if it has a health check.
	Ready bool
	// Failed says it will not become ready without a new start: its
	// process ended for good, or its health check failed Retries times.
	Failed bool
	// Why is the state in a few words: "healthy", "running",
	// "starting (2 checks failed)", "exited with status 1".
	Why string
	// LogTail is the last lines of the log since the process started,
	// when it failed.
	LogTail []string
}

// Ready says whether the container of bundle is ready: its process runs
// and, with a health check, the check passed. A process the supervisor is
// about to start again (restarting) may still become ready.
func (d *Driver) Ready(ctx context.Context, bundle string) (Readiness, error) {
	st, err := d.State(bundle)
	if err != nil {
		return Readiness{}, err
	}
	switch st.Status {
	case StatusRunning:
	case StatusCreated, StatusRestarting:
		return Readiness{Why: st.Status}, nil
	case StatusExited:
		return Readiness{Failed: true, Why: (&StartError{ExitCode: st.ExitCode, Signal: st.Signal, OOMKilled: st.OOMKilled}).How(),
			LogTail: d.logTailSince(ctx, bundle, st.Started)}, nil
	default:
		return Readiness{Failed: true, Why: st.Status, LogTail: d.logTailSince(ctx, bundle, st.Started)}, nil
	}
	h := st.Health
	if h == nil {
		var c supervisorConfig
		if readJSON(filepath.Join(bundle, configFile), &c) == nil && c.Process.Health != nil {
			// The supervisor has not recorded a check yet.
			return Readiness{Why: HealthStarting}, nil
		}
		return Readiness{Ready: true, Why: "running"}, nil
	}
	switch h.Status {
	case HealthHealthy:
		return Readiness{Ready: true, Why: HealthHealthy}, nil
	case HealthUnhealthy:
		r := Readiness{Failed: true, Why: fmt.Sprintf("unhealthy after %d failed checks", h.FailingStreak)}
		if n := len(h.Log); n > 0 && strings.TrimSpace(h.Log[n-1].Output) != "" {
			r.Why += ": " + strings.TrimSpace(h.Log[n-1].Output)
		}
		r.LogTail = d.logTailSince(ctx, bundle, st.Started)
		return r, nil
	}
	why := HealthStarting
	if h.FailingStreak > 0 {
		why = fmt.Sprintf("starting (%d checks failed)", h.FailingStreak)
	}
	return Readiness{Why: why}, nil
}
