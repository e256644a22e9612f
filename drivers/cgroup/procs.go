//go:build linux

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// AddProcess moves the process pid into the cgroup in every hierarchy hutch
// uses, by writing it to each folder's cgroup.procs, so that every
// controller counts it. Children it forks afterwards are born there.
func (d *Driver) AddProcess(path string, pid int) error {
	if err := d.own(path); err != nil {
		return err
	}
	for _, m := range d.mounts() {
		if err := writeFile(filepath.Join(m, path), "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup %s: add process %d: %w", path, pid, err)
		}
	}
	return nil
}

// ProcsFiles returns the absolute path of the cgroup.procs file AddProcess
// writes a process into, in each hierarchy hutch uses, in the order it
// does: for a starter that is not Go (the C supervisor writes the init's
// pid there itself). It only computes the paths; the folders may not exist.
func (d *Driver) ProcsFiles(path string) ([]string, error) {
	if err := d.own(path); err != nil {
		return nil, err
	}
	var fs []string
	for _, m := range d.mounts() {
		fs = append(fs, filepath.Join(m, path, "cgroup.procs"))
	}
	return fs, nil
}

// Procs lists the processes in the cgroup and its child cgroups, in any
// hierarchy hutch uses (the union of their cgroup.procs files), sorted. A
// cgroup that does not exist has none.
func (d *Driver) Procs(path string) ([]int, error) {
	if err := d.own(path); err != nil {
		return nil, err
	}
	pids, err := d.procs(path)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: list processes: %w", path, err)
	}
	return pids, nil
}

func (d *Driver) procs(path string) ([]int, error) {
	seen := map[int]bool{}
	var walk func(dir string) error
	walk = func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, "cgroup.procs"), bare(err))
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				seen[pid] = true
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s: %w", dir, bare(err))
		}
		for _, e := range ents {
			if e.IsDir() {
				if err := walk(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, m := range d.mounts() {
		if err := walk(filepath.Join(m, path)); err != nil {
			return nil, err
		}
	}
	pids := make([]int, 0, len(seen))
	for p := range seen {
		pids = append(pids, p)
	}
	slices.Sort(pids)
	return pids, nil
}

// killTimeout bounds how long KillAll waits for the cgroup to empty.
const killTimeout = 10 * time.Second

// KillAll kills every process in the cgroup and its child cgroups and waits
// until cgroup.procs is empty everywhere.
//
// Where the cgroup has a cgroup2 folder with cgroup.kill (kernel 5.14+; on a
// hybrid host too, in the cgroup2 mount), writing 1 there makes the kernel
// SIGKILL the whole subtree at once, forks in flight included. Otherwise (and
// for any process only in v1 folders) hutch freezes the v1 freezer cgroup
// so that nothing forks while it reads cgroup.procs, sends SIGKILL to each
// process, thaws (a frozen task cannot die), and repeats until none is left.
func (d *Driver) KillAll(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if err := d.own(path); err != nil {
		return err
	}
	if err := d.killAll(ctx, path); err != nil {
		return fmt.Errorf("cgroup %s: kill: %w", path, err)
	}
	return nil
}

func (d *Driver) killAll(ctx context.Context, path string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, killTimeout)
		defer cancel()
	}
	if d.unified != "" {
		dir := filepath.Join(d.unified, path)
		if exists(filepath.Join(dir, "cgroup.kill")) {
			if err := writeFile(dir, "cgroup.kill", "1"); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
	}
	freezer := ""
	if m, ok := d.v1["freezer"]; ok && exists(filepath.Join(m, path, "freezer.state")) {
		freezer = filepath.Join(m, path)
	}
	for {
		pids, err := d.procs(path)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if freezer != "" {
			if err := freeze(ctx, freezer); err != nil {
				return err
			}
			// Read again: a process may have forked before the freeze.
			if pids, err = d.procs(path); err != nil {
				return err
			}
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill %d: %w", pid, err)
			}
		}
		if freezer != "" {
			if err := writeFile(freezer, "freezer.state", "THAWED"); err != nil {
				return err
			}
		}
		// Wait for the killed processes to leave cgroup.procs (they leave
		// it as they exit, before their parent reaps them).
		for range 50 {
			if pids, err = d.procs(path); err != nil || len(pids) == 0 {
				break
			}
			if err := sleep(ctx, 2*time.Millisecond); err != nil {
				return fmt.Errorf("%d processes still in the cgroup after SIGKILL: %v: %w", len(pids), pids, err)
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("processes still in the cgroup after SIGKILL: %w", err)
		}
	}
}

// freeze writes FROZEN to freezer.state and waits until the kernel reports
// FROZEN (it says FREEZING while tasks are still being stopped).
func freeze(ctx context.Context, dir string) error {
	if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
		return err
	}
	for {
		s, err := readFile(dir, "freezer.state")
		if err != nil {
			return err
		}
		if s == "FROZEN" {
			return nil
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			// Kill anyway: a task that cannot be frozen can still be killed.
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
