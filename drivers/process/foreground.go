//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// Running a container in the foreground (`hutch run`). The container's
// init is a child of the calling hutch process: no spawn stage, no
// supervisor, no log file; the workload gets hutch's standard streams. The
// hutch process takes the supervisor's place in the bundle's files for as
// long as it waits: process.json names it as the supervisor (pid and start
// time) and supervisor.json holds the process and its cgroup, so everything
// that deals with a supervised container deals with this one too. Observe
// reports it running (an apply of the same manifest starts no second copy);
// Stop and Delete ask hutch to stop it as they ask a supervisor (a stop
// file, SIGTERM); and when hutch is killed with SIGKILL, Stop kills the init
// by its recorded pid and start time and every process left in the cgroup
// named in supervisor.json.

// endingSignals are the forwarded signals that ask a process to end. The
// kernel discards a signal sent to the first process of a pid namespace
// when that process keeps the default action (pid_namespaces(7)), so a
// Ctrl-C would never end `sleep` or a server that does not catch SIGINT:
// Foreground then ends the container with SIGKILL in the signal's place.
var endingSignals = []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// Foreground starts the container of p with the given standard streams as
// a child of the calling process, records it in the bundle (process.json,
// supervisor.json), calls started (if not nil), forwards every signal that
// arrives on signals to the container's first process, waits for it to end,
// records how, and returns its exit status: its exit code, or 128+N when
// signal N ended it, as a shell says.
//
// A forwarded SIGINT, SIGTERM, SIGHUP or SIGQUIT that the first process
// has no handler for would be discarded by the kernel; the process is then
// killed with SIGKILL and the status is 128 plus the forwarded signal, what
// the signal's default action would have given. A SIGTERM that comes with
// a stop request (hutch stop, delete, or an apply replacing the process)
// is a stop: the container's stop signal, and after its timeout SIGKILL to
// every process of the cgroup, as the supervisor does.
//
// It fails without starting anything when a supervisor (or another
// foreground hutch) runs the bundle's container. What an earlier run left
// (a process whose hutch was killed) is killed first.
func (d *Driver) Foreground(ctx context.Context, p *plan.Process, stdin io.Reader, stdout, stderr io.Writer,
	signals <-chan os.Signal, started func() error) (int, error) {
	f, err := d.newForeground(ctx, p)
	if err != nil {
		return -1, err
	}
	r, err := f.start(stdin, stdout, stderr)
	if err != nil {
		return -1, err
	}
	if started != nil {
		if err := started(); err != nil {
			r.cmd.Process.Kill()
			<-r.done
			f.exited(r, 0, false)
			return -1, err
		}
	}
	return f.wait(r, signals), nil
}

// newForeground checks that nothing runs the bundle's container, kills
// what an earlier run left, and records this process in the bundle as the
// container's supervisor (supervisor.json, then process.json).
func (d *Driver) newForeground(ctx context.Context, p *plan.Process) (*foreground, error) {
	st, err := d.State(p.Bundle)
	if err != nil {
		return nil, err
	}
	if st.SupervisorAlive() {
		return nil, fmt.Errorf("container %s: already running (pid %d runs it: hutch apply's supervisor or another hutch run); stop or delete it first", p.Container, st.SupervisorPID)
	}
	if st.Status != StatusAbsent {
		if err := d.Stop(ctx, p.Bundle, 0); err != nil {
			return nil, err
		}
	}
	spec, err := loadSpec(p.Bundle)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", p.Container, err)
	}
	if err := CheckRlimits(spec); err != nil {
		return nil, fmt.Errorf("container %s: %w", p.Container, err)
	}
	f := &foreground{d: d, p: p, cgPath: cgroupPath(spec)}
	if f.cgPath != "" && d.cg == nil {
		return nil, fmt.Errorf("container %s: cgroup %s: the process driver has no cgroup driver", p.Container, f.cgPath)
	}
	if err := os.Remove(filepath.Join(p.Bundle, stopFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", p.Container, err)
	}
	self, err := startTime(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", p.Container, err)
	}
	// supervisor.json first: from the moment process.json names this
	// process, Stop must find the cgroup to empty.
	if err := writeJSON(filepath.Join(p.Bundle, configFile), &supervisorConfig{Process: *p, Cgroup: f.cgPath}); err != nil {
		return nil, fmt.Errorf("container %s: %w", p.Container, err)
	}
	f.state = State{Container: p.Container, Status: StatusCreated, Digest: p.Digest, SupervisorPID: os.Getpid(), SupervisorStart: self, Foreground: true}
	if err := f.save(); err != nil {
		return nil, err
	}
	return f, nil
}

// foregroundRun is the container's first process, a child of this one.
type foregroundRun struct {
	cmd       *exec.Cmd
	pid       int
	done      chan struct{} // closed once it is reaped
	oomBefore uint64        // the cgroup's OOM kill count before it started
}

// start starts the container's init with the given streams and records
// it running.
func (f *foreground) start(stdin io.Reader, stdout, stderr io.Writer) (*foregroundRun, error) {
	r := &foregroundRun{done: make(chan struct{})}
	var err error
	if f.cgPath != "" {
		if r.oomBefore, err = f.d.cg.OOMKills(f.cgPath); err != nil {
			return nil, f.fail(err)
		}
	}
	if r.cmd, err = startInit(f.p.Bundle, f.d.cg, f.cgPath, stdin, stdout, stderr); err != nil {
		return nil, f.fail(err)
	}
	r.pid = r.cmd.Process.Pid
	// Read before the wait: until then the process, even ended, is a
	// zombie whose /proc/PID/stat stays.
	pidStart, err := startTime(r.pid)
	go func() { r.cmd.Wait(); close(r.done) }()
	if err != nil {
		r.cmd.Process.Kill()
		<-r.done
		return nil, f.fail(fmt.Errorf("container %s: %w", f.p.Container, err))
	}
	f.state.Status, f.state.Started = StatusRunning, time.Now()
	f.state.PID, f.state.PIDStart = r.pid, pidStart
	if err := f.save(); err != nil {
		r.cmd.Process.Kill()
		<-r.done
		return nil, err
	}
	return r, nil
}

// wait forwards signals to the process until it ends, and records how: a
// stop request as the supervisor handles one, an ending signal it does not
// catch as SIGKILL (see endingSignals). It returns the exit status.
//
// Signals go through cmd.Process, which holds a pidfd of the init
// (pidfd_send_signal(2)): once the wait has reaped it, its pid may be
// another process's, and a signal then goes nowhere.
func (f *foreground) wait(r *foregroundRun, signals <-chan os.Signal) int {
	var (
		emulated  unix.Signal // an ending signal the init had no handler for
		stopping  bool
		killTimer <-chan time.Time
	)
	for {
		select {
		case <-r.done:
			return f.exited(r, emulated, stopping)
		case s := <-signals:
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			if timeout, ok := f.stopRequest(sig); ok {
				if !stopping {
					stopping = true
					killTimer = f.stop(r, timeout)
				}
				continue
			}
			r.cmd.Process.Signal(sig)
			if ending(sig) && !catches(r.pid, sig) {
				emulated = sig
				r.cmd.Process.Signal(unix.SIGKILL)
			}
		case <-killTimer:
			// The stop timeout passed: every process of the cgroup, then
			// the init itself (in case it has no cgroup).
			if f.cgPath != "" {
				f.d.cg.KillAll(f.cgPath)
			}
			r.cmd.Process.Signal(unix.SIGKILL)
		}
	}
}

// stop begins a stop that was asked for: the container's stop signal, and
// SIGKILL at once when the timeout is 0 or the init does not catch it;
// else the timer of the SIGKILL.
func (f *foreground) stop(r *foregroundRun, timeout time.Duration) <-chan time.Time {
	f.state.Status = StatusStopping
	f.save()
	sig := f.stopSignal()
	r.cmd.Process.Signal(sig)
	if timeout <= 0 || !catches(r.pid, sig) {
		r.cmd.Process.Signal(unix.SIGKILL)
		return nil
	}
	return time.After(timeout)
}

// foreground is one container run in the foreground.
type foreground struct {
	d      *Driver
	p      *plan.Process
	cgPath string
	state  State
}

func (f *foreground) save() error {
	if err := writeJSON(filepath.Join(f.p.Bundle, stateFile), &f.state); err != nil {
		return fmt.Errorf("container %s: %w", f.p.Container, err)
	}
	return nil
}

// fail records a start that failed.
func (f *foreground) fail(err error) error {
	f.state.Status, f.state.Error, f.state.Finished = StatusFailed, err.Error(), time.Now()
	f.state.SupervisorPID, f.state.SupervisorStart = 0, 0
	return errors.Join(err, f.save())
}

// stopSignal is the container's stop signal as supervisor.json has it now
// (an apply may have changed it in place since the start), else as p had
// it, else SIGTERM.
func (f *foreground) stopSignal() unix.Signal {
	name := f.p.StopSignal
	var c supervisorConfig
	if err := readJSON(filepath.Join(f.p.Bundle, configFile), &c); err == nil && c.Process.StopSignal != "" {
		name = c.Process.StopSignal
	}
	sig, err := parseSignal(name)
	if err != nil {
		return unix.SIGTERM
	}
	return sig
}

// stopRequest says whether sig is a stop request (SIGTERM with a stop file,
// as Stop sends it) and its timeout.
func (f *foreground) stopRequest(sig unix.Signal) (time.Duration, bool) {
	if sig != unix.SIGTERM {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(f.p.Bundle, stopFile))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(n), true
}

// exited records how the process ended and returns its exit status.
func (f *foreground) exited(r *foregroundRun, emulated unix.Signal, stopping bool) int {
	code := exitStatus(r.cmd.ProcessState, emulated)
	f.state.Status, f.state.Finished = StatusExited, time.Now()
	if stopping {
		f.state.Status = StatusStopped
	}
	// Nothing runs for this process any more, and this hutch, which may
	// live on a little (--rm), is no supervisor a stop should signal.
	f.state.PID, f.state.PIDStart = 0, 0
	f.state.SupervisorPID, f.state.SupervisorStart = 0, 0
	f.state.ExitCode, f.state.Signal = code, ""
	if code > 128 && code < 128+65 {
		f.state.Signal = unix.SignalName(unix.Signal(code - 128))
	}
	if f.cgPath != "" {
		// The kernel counts OOM kills per cgroup (v1 memory.oom_control
		// oom_kill, v2 memory.events).
		if n, err := f.d.cg.OOMKills(f.cgPath); err == nil && n > r.oomBefore {
			f.state.OOMKilled = true
		}
	}
	f.save()
	return code
}

// exitStatus is a shell's $? for a process that ended as ps says: its exit
// code, or 128+N when signal N killed it. emulated is the signal SIGKILL
// stood in for (see endingSignals).
func exitStatus(ps *os.ProcessState, emulated unix.Signal) int {
	if ps == nil {
		return -1
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return ps.ExitCode()
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled() && ws.Signal() == unix.SIGKILL && emulated != 0:
		return 128 + int(emulated)
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

func ending(sig unix.Signal) bool {
	for _, s := range endingSignals {
		if s == sig {
			return true
		}
	}
	return false
}
