//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"hutch/internal/slot"
	"hutch/plan"
)

// CgroupJoiner is what the driver needs of the cgroup driver
// (*cgroupdrv.Driver has these methods): put a process in a cgroup, list and
// kill its processes, and read its OOM kill count. The C supervisor does
// the joining and the reading itself, in the files OOMFile ("" without a
// memory controller) and ProcsFiles name. Paths are relative to each
// hierarchy's root ("hutch/web").
type CgroupJoiner interface {
	AddProcess(path string, pid int) error
	KillAll(path string) error
	OOMKills(path string) (uint64, error)
	OOMFile(path string) (string, error)
	Procs(path string) ([]int, error)
	ProcsFiles(path string) ([]string, error)
}

// Driver starts, observes, stops and execs into containers whose bundles
// live under its state root. It is the reconcile driver of plan.KindProcess.
type Driver struct {
	stateRoot string
	cg        CgroupJoiner
	// exe is the hutch binary that runs the supervisor: /proc/self/exe, or
	// another build of it in tests.
	exe string
}

// New returns a driver for bundles under stateRoot, using cg for the
// containers' cgroups (nil: no cgroup placement, for tests only).
func New(stateRoot string, cg CgroupJoiner) *Driver {
	return &Driver{stateRoot: stateRoot, cg: cg, exe: "/proc/self/exe"}
}

// Kind is plan.KindProcess.
func (d *Driver) Kind() plan.Kind { return plan.KindProcess }

func asProcess(r plan.Resource) (*plan.Process, error) {
	p, ok := r.(*plan.Process)
	if !ok || p == nil {
		return nil, fmt.Errorf("process driver: resource %T is not a *plan.Process", r)
	}
	return p, nil
}

// Observe returns the running process of want's bundle as its supervisor
// was configured (digest, policies), or nil when no supervisor runs there
// (never started, exited for good, stopped, or dead), or when it is
// stopping (a delete killed mid-way asked for it: the process is on its
// way out, and Start waits for it before starting again): the kernel, by
// pid and start time, is the judge, not the state file alone.
func (d *Driver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asProcess(want)
	if err != nil {
		return nil, err
	}
	st, err := d.State(w.Bundle)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case StatusCreated, StatusRunning, StatusRestarting:
	default:
		return nil, nil
	}
	var c supervisorConfig
	if err := readJSON(filepath.Join(w.Bundle, configFile), &c); err != nil {
		return nil, fmt.Errorf("container %s: %w", w.Container, err)
	}
	got := c.Process
	got.Digest = st.Digest
	got.Needs = w.Needs
	return &got, nil
}

// Diff compares a running process with the desired one. A different digest
// (the OCI config or the rootfs changed) forces a replace: the process must
// start again. The restart policy, the stop signal and timeout and the log
// policy, the health check, the start window and dependsOn are the
// supervisor's own settings (or the driver's) and change in place (the driver
// rewrites supervisor.json and the supervisor rereads it on SIGHUP).
func (d *Driver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, err1 := asProcess(got)
	w, err2 := asProcess(want)
	if err1 != nil || err2 != nil {
		return []string{"process"}, []string{"process"}
	}
	if g.Digest != w.Digest {
		fields = append(fields, "digest")
		forceReplace = append(forceReplace, "digest")
	}
	if g.Bundle != w.Bundle {
		fields = append(fields, "bundle")
		forceReplace = append(forceReplace, "bundle")
	}
	if g.Restart != w.Restart {
		fields = append(fields, "restart")
	}
	if g.StopSignal != w.StopSignal {
		fields = append(fields, "stopSignal")
	}
	if g.StopTimeout != w.StopTimeout {
		fields = append(fields, "stopTimeout")
	}
	if g.Logs != w.Logs {
		fields = append(fields, "logs")
	}
	if !reflect.DeepEqual(g.Health, w.Health) {
		fields = append(fields, "health")
	}
	if g.StartWindow != w.StartWindow {
		fields = append(fields, "startWindow")
	}
	if !slices.Equal(g.After, w.After) {
		fields = append(fields, "after")
	}
	return fields, forceReplace
}

// Apply starts the process (create, replace) or updates its supervisor's
// policies in place (update).
func (d *Driver) Apply(ctx context.Context, ch *plan.Change) error {
	p, err := asProcess(ch.After)
	if err != nil {
		return err
	}
	if ch.Action == plan.Update && slices.Equal(ch.ForceReplace, nil) {
		st, err := d.State(p.Bundle)
		if err != nil {
			return err
		}
		if st.SupervisorAlive() {
			return d.update(p, st)
		}
	}
	return d.Start(ctx, p)
}

func (d *Driver) update(p *plan.Process, st *State) error {
	var c supervisorConfig
	if err := readJSON(filepath.Join(p.Bundle, configFile), &c); err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	c.Process.Restart, c.Process.StopSignal, c.Process.StopTimeout, c.Process.Logs = p.Restart, p.StopSignal, p.StopTimeout, p.Logs
	c.Process.Health, c.Process.StartWindow, c.Process.After = p.Health, p.StartWindow, p.After
	if err := writeJSON(filepath.Join(p.Bundle, configFile), &c); err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	spec, err := loadSpec(p.Bundle)
	if err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	l, err := newLaunch(spec, d.cg, c.Cgroup)
	if err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	if err := writeConf(p.Bundle, &c.Process, l); err != nil {
		return err
	}
	if st.Foreground {
		// A `hutch run` has no restarts or logs to reload, reads the stop
		// policy from supervisor.json when it stops, and forwards a SIGHUP
		// to the container, which would end it.
		return nil
	}
	if err := unix.Kill(st.SupervisorPID, unix.SIGHUP); err != nil {
		return fmt.Errorf("container %s: signal supervisor %d: %w", p.Container, st.SupervisorPID, err)
	}
	return nil
}

// Start starts the container of p under a new supervisor, after the
// dependencies that must be healthy are, and returns once its first
// process has run through its start window (or its health check passed):
// one that ended in it is a *StartError. A supervisor still running in the
// bundle is stopped first.
func (d *Driver) Start(ctx context.Context, p *plan.Process) error {
	if !withC {
		return fmt.Errorf("container %s: start: this hutch was built without cgo, and its supervisor is C (supervisor.c)", p.Container)
	}
	st, err := d.State(p.Bundle)
	if err != nil {
		return err
	}
	// A supervisor still running is stopped; after one that died (killed,
	// or the host's OOM killer), its container may live on without it:
	// Stop then kills what is left in the cgroup.
	if st.Status != StatusAbsent {
		if err := d.Stop(ctx, p.Bundle, p.StopTimeout); err != nil {
			return err
		}
	}
	if err := d.waitDependencies(ctx, p); err != nil {
		return err
	}
	spec, err := loadSpec(p.Bundle)
	if err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	if err := CheckRlimits(spec); err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	c := supervisorConfig{Process: *p, Cgroup: cgroupPath(spec)}
	if c.Cgroup != "" && d.cg == nil {
		return fmt.Errorf("container %s: cgroup %s: the process driver has no cgroup driver", p.Container, c.Cgroup)
	}
	for _, f := range []string{stateFile, stopFile} {
		if err := os.Remove(filepath.Join(p.Bundle, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("container %s: %w", p.Container, err)
		}
	}
	if err := writeJSON(filepath.Join(p.Bundle, configFile), &c); err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	// The namespaces, the maps and the cgroup files of the init's launch
	// are checked here, before any supervisor starts.
	l, err := newLaunch(spec, d.cg, c.Cgroup)
	if err != nil {
		return fmt.Errorf("container %s: %w", p.Container, err)
	}
	if err := writeConf(p.Bundle, p, l); err != nil {
		return err
	}
	pid, err := d.spawn(p)
	if err != nil {
		return err
	}
	return d.watchStart(ctx, p, pid)
}

// Delete stops the container (its stop signal, the timeout, then SIGKILL of
// the whole cgroup), waits for the supervisor to end and removes the
// driver's files from the bundle: the state, the supervisor config, the
// logs. It succeeds when nothing runs.
func (d *Driver) Delete(ctx context.Context, r plan.Resource) error {
	p, err := asProcess(r)
	if err != nil {
		return err
	}
	if err := d.Stop(ctx, p.Bundle, p.StopTimeout); err != nil {
		return err
	}
	// A supervisor that lost its process.json (the bundle folder was
	// removed under it) is found through /proc (owned.go).
	if err := d.killStrays(ctx, p.Bundle); err != nil {
		return fmt.Errorf("container %s: delete: %w", p.Container, err)
	}
	var errs []error
	// The events files stay: a replace deletes the process and starts it
	// again, and `hutch events --since` should still show what happened
	// before; a delete of the container removes its whole folder.
	for _, f := range []string{stateFile, configFile, confFile, stopFile, supervisorLog, logDir} {
		if err := os.RemoveAll(filepath.Join(p.Bundle, f)); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", p.Container, err))
		}
	}
	return errors.Join(errs...)
}

// Stop asks the supervisor to stop the container: the stop signal, then
// after timeout SIGKILL to every process of the cgroup (a negative timeout:
// the container's own stop timeout). It waits until the
// supervisor has recorded the end and exited. When the supervisor is gone
// but processes remain in the cgroup, it kills them itself; when ctx ends
// first, it kills the cgroup and the supervisor.
func (d *Driver) Stop(ctx context.Context, bundle string, timeout time.Duration) error {
	name := filepath.Base(bundle)
	st, err := d.State(bundle)
	if err != nil {
		return err
	}
	var c supervisorConfig
	cerr := readJSON(filepath.Join(bundle, configFile), &c)
	if timeout < 0 {
		timeout = 10 * time.Second
		if cerr == nil && c.Process.StopTimeout > 0 {
			timeout = c.Process.StopTimeout
		}
	}
	killCgroup := func() error {
		if cerr != nil || c.Cgroup == "" || d.cg == nil {
			return nil
		}
		pids, err := d.cg.Procs(c.Cgroup)
		if err != nil || len(pids) == 0 {
			return nil // the cgroup is gone or empty
		}
		if err := d.cg.KillAll(c.Cgroup); err != nil {
			return fmt.Errorf("container %s: %w", name, err)
		}
		return nil
	}
	if !st.SupervisorAlive() {
		if st.Alive() {
			unix.Kill(st.PID, unix.SIGKILL)
		}
		return killCgroup()
	}
	if err := writeAtomic(filepath.Join(bundle, stopFile), []byte(strconv.FormatInt(int64(timeout), 10)+"\n")); err != nil {
		return fmt.Errorf("container %s: stop: %w", name, err)
	}
	if err := unix.Kill(st.SupervisorPID, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("container %s: stop: signal supervisor %d: %w", name, st.SupervisorPID, err)
	}
	// The supervisor ends the process within its stop timeout: other
	// steps may run while this one waits (slot.Idle).
	resume := slot.Idle(ctx)
	err = waitExit(ctx, st.SupervisorPID, st.SupervisorStart)
	resume()
	if err != nil {
		kerr := killCgroup()
		unix.Kill(st.SupervisorPID, unix.SIGKILL)
		return errors.Join(fmt.Errorf("container %s: stop: %w", name, err), kerr)
	}
	return killCgroup()
}
