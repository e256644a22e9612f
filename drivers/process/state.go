//go:build linux

package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// configFile is the driver's own file in a container's bundle folder
// (protocol.go lists those it shares with the supervisor): the Process
// resource and the cgroup path (supervisorConfig), which Observe, Stop,
// Exec, hutch run and the cgroup-kill stage read. supervisor.conf holds
// the same policies for the supervisor.
const configFile = "supervisor.json"

// Status of a container's process, as State reports it.
const (
	StatusCreated    = "created"    // the supervisor is starting the first process
	StatusRunning    = "running"    // the process lives
	StatusRestarting = "restarting" // waiting out the back-off before a restart
	StatusStopping   = "stopping"   // a stop was asked for, the process still lives
	StatusExited     = "exited"     // the process ended and no restart follows
	StatusStopped    = "stopped"    // ended because a stop was asked for
	StatusFailed     = "failed"     // could not be started
	StatusDead       = "dead"       // the supervisor vanished without recording an end
	StatusAbsent     = "absent"     // nothing was ever started in this bundle
)

// State is what the supervisor records about a container in the bundle's
// process.json, and what State returns after checking it against /proc.
type State struct {
	Container string `json:"container"`
	Status    string `json:"status"`
	Digest    string `json:"digest"`
	// SupervisorPID and SupervisorStart identify the supervisor; PID and
	// PIDStart the container's first process as the host sees it. The start
	// times are field 22 of /proc/PID/stat (clock ticks after boot): a pid
	// is reused, a pid with its start time is not.
	SupervisorPID   int       `json:"supervisorPid"`
	SupervisorStart uint64    `json:"supervisorStart"`
	PID             int       `json:"pid,omitempty"`
	PIDStart        uint64    `json:"pidStart,omitempty"`
	Started         time.Time `json:"started,omitzero"`
	Finished        time.Time `json:"finished,omitzero"`
	Restarts        int       `json:"restarts"`
	ExitCode        int       `json:"exitCode"`
	Signal          string    `json:"signal,omitempty"`
	OOMKilled       bool      `json:"oomKilled"`
	Error           string    `json:"error,omitempty"`
	// Health is the state of the health check, nil without one.
	Health *Health `json:"health,omitempty"`
	// Foreground says that the "supervisor" is a `hutch run` waiting for
	// its child (foreground.go): it has no restarts or logs to reload, and
	// a SIGHUP to it is forwarded to the container.
	Foreground bool `json:"foreground,omitempty"`
}

// Health states, as Health.Status holds them.
const (
	HealthStarting  = "starting"  // no check passed yet since the start, and not enough failed
	HealthHealthy   = "healthy"   // the last check passed
	HealthUnhealthy = "unhealthy" // Retries checks in a row failed (outside the start period)
)

// Health is what the supervisor records of the health check in
// process.json, after every check: the state, the failures in a row, and
// the last results (at most healthLogSize, oldest first). It starts again
// as starting at every start of the process.
type Health struct {
	Status        string         `json:"status"`
	FailingStreak int            `json:"failingStreak"`
	Log           []HealthResult `json:"log,omitempty"`
}

// HealthResult is one check: when it ran, whether it passed, and what it
// said (an exec check's output, an HTTP status line, a connect error),
// cut to healthOutputMax bytes.
type HealthResult struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Passed bool      `json:"passed"`
	// ExitCode is an exec check's exit status (-1 when it did not run or
	// was killed at its timeout); 0 or 1 for http and tcp.
	ExitCode int    `json:"exitCode"`
	Output   string `json:"output,omitempty"`
}

// Alive says whether the container's first process still runs: the pid
// exists and has the recorded start time.
func (s *State) Alive() bool { return s.PID > 0 && alive(s.PID, s.PIDStart) }

// SupervisorAlive says whether the supervisor still runs.
func (s *State) SupervisorAlive() bool {
	return s.SupervisorPID > 0 && alive(s.SupervisorPID, s.SupervisorStart)
}

// startTime reads field 22 of /proc/PID/stat, the time the process started
// in clock ticks after boot.
func startTime(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat reads the state (field 3) and the start time (field 22) of
// /proc/PID/stat in one read. The second field (comm) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no comm field", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	return f[0][0], start, err
}

// alive says whether pid runs and started at start. A zombie has exited.
func alive(pid int, start uint64) bool {
	state, st, err := procStat(pid)
	return err == nil && st == start && state != 'Z' && state != 'X'
}

// writeJSON writes v to path atomically (see writeAtomic).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic writes b to path atomically: a temporary file in the same
// folder, then rename(2) over the old one, so a reader sees either the old
// or the new content, never half of one. No fsync(2): the driver's files
// (process.json, supervisor.json and .conf, the stop file) describe
// processes, which do not outlive the machine; they must outlive a killed
// hutch or supervisor, which the page cache sees to.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// readState reads the bundle's process.json as the supervisor wrote it; a
// bundle where nothing was started has none (os.ErrNotExist).
func readState(bundle string) (*State, error) {
	var s State
	if err := readJSON(filepath.Join(bundle, stateFile), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// State reads the container's state in bundle and checks it against the
// kernel: a supervisor that no longer runs (by pid and start time) while the
// record says the process runs is reported dead, and a bundle where nothing
// was started is StatusAbsent.
func (d *Driver) State(bundle string) (*State, error) {
	s, err := readState(bundle)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Container: filepath.Base(bundle), Status: StatusAbsent}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: state: %w", filepath.Base(bundle), err)
	}
	switch s.Status {
	case StatusCreated, StatusRunning, StatusRestarting, StatusStopping:
		if !s.SupervisorAlive() {
			s.Status = StatusDead
		}
	}
	if !s.Alive() {
		s.PID, s.PIDStart = 0, 0
	}
	return s, nil
}

// waitExit waits until the process pid, started at start, has ended or ctx
// ends. It holds a pidfd (pidfd_open(2), Linux 5.3), which poll(2) reports
// readable the moment the process exits: no polling interval is added to a
// stop. The start time is checked after the pidfd is open, so a pid reused
// by another process is never waited on. Where pidfd_open is missing it
// looks every 2 ms.
func waitExit(ctx context.Context, pid int, start uint64) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		for alive(pid, start) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
		return nil
	}
	defer unix.Close(fd)
	if !alive(pid, start) {
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		// Wake every 50 ms only to see whether ctx has ended.
		n, err := unix.Poll(fds, 50)
		if n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for process %d: poll pidfd: %w", pid, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
