//go:build linux

package process

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// fakeSupervisor starts bin (a sleep) through a symlink called
// hutch-supervisor (so /proc/PID/comm is "hutch-superviso", as a real
// supervisor's) with env as its whole environment, as uid (0: root);
// Cleanup kills and reaps it.
func fakeSupervisor(t *testing.T, bin string, uid uint32, env ...string) *exec.Cmd {
	t.Helper()
	// A folder the uid can enter, to exec the link in.
	dir, err := os.MkdirTemp("", "hutch-fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "hutch-supervisor")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "600")
	cmd.Env = env
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// sleepBin is the sleep binary, its symlinks resolved: the fake
// supervisors run it, and a driver whose exe it is takes it for hutch's
// binary.
func sleepBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// running says whether cmd's process still runs.
func running(cmd *exec.Cmd) bool {
	st, err := startTime(cmd.Process.Pid)
	return err == nil && alive(cmd.Process.Pid, st)
}

// Owned finds a supervisor whose process.json is gone by the bundle its
// environment names under the state root; a process of the same name whose
// environment names no bundle, or a bundle elsewhere, is never found; Delete
// of what Owned returns ends the supervisor.
func TestOwnedFindsSupervisorsByTheirBundle(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root, otherRoot := t.TempDir(), t.TempDir()
	c := testutil.Name("oc")
	bundle := filepath.Join(root, "containers", c)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	sleep := sleepBin(t)
	sup := fakeSupervisor(t, sleep, 0, envStage+"="+stageSupervisor, envBundle+"="+bundle)
	noEnv := fakeSupervisor(t, sleep, 0)
	elsewhere := fakeSupervisor(t, sleep, 0, envStage+"="+stageSupervisor, envBundle+"="+filepath.Join(root, "other", c))

	// The fakes run sleep: to these drivers, it is hutch's binary.
	newDriver := func(root string) *Driver {
		d := New(root, nil)
		d.exe = sleep
		return d
	}
	d := newDriver(root)
	got, err := d.Owned(ctx, c)
	if err != nil || len(got) != 1 {
		t.Fatalf("Owned = %v, %v; want one process", got, err)
	}
	if p := got[0].(*plan.Process); p.Container != c || p.Bundle != bundle {
		t.Fatalf("Owned = %+v", p)
	}
	if names, err := d.Marked(ctx); err != nil || !slices.Equal(names, []string{c}) {
		t.Errorf("Marked = %q, %v; want [%s]", names, err, c)
	}
	if roots, err := newDriver(otherRoot).Elsewhere(c); err != nil || !slices.Equal(roots, []string{root}) {
		t.Errorf("Elsewhere from another root = %q, %v; want [%s]", roots, err, root)
	}
	if got, err := newDriver(otherRoot).Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned from another root = %v, %v; want nothing", got, err)
	}

	if err := d.Delete(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if running(sup) {
		t.Errorf("supervisor %d still runs after Delete", sup.Process.Pid)
	}
	for _, cmd := range []*exec.Cmd{noEnv, elsewhere} {
		if !running(cmd) {
			t.Errorf("process %d, not this bundle's supervisor, was ended", cmd.Process.Pid)
		}
	}
	if got, err := d.Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned after Delete = %v, %v; want nothing", got, err)
	}
}

// A process with a supervisor's name and environment is not believed
// unless it runs as root and executes hutch's binary (by inode): one run
// by another user, and one of root running another binary (a copy of
// hutch's: same bytes, another inode), are neither found (Owned, Marked,
// Elsewhere) nor ended by Delete.
func TestSupervisorNotBelievedByNameAndEnvironment(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root, otherRoot := t.TempDir(), t.TempDir()
	c := testutil.Name("ob")
	bundle := filepath.Join(root, "containers", c)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	sleep := sleepBin(t)
	copied := filepath.Join(t.TempDir(), "sleep")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, b, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{envStage + "=" + stageSupervisor, envBundle + "=" + bundle}
	fakes := map[string]*exec.Cmd{
		"run by uid 65534":     fakeSupervisor(t, sleep, 65534, env...),
		"running another file": fakeSupervisor(t, copied, 0, env...),
	}
	d := New(root, nil)
	d.exe = sleep // to this driver, sleep is hutch's binary
	other := New(otherRoot, nil)
	other.exe = sleep
	waitFor(t, "the fakes to exec", func() bool {
		for _, f := range fakes {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", f.Process.Pid)); string(bytes.TrimSpace(b)) != supervisorComm {
				return false
			}
		}
		return true
	})
	if got, err := d.Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned = %v, %v; want nothing", got, err)
	}
	if names, err := d.Marked(ctx); err != nil || slices.Contains(names, c) {
		t.Errorf("Marked = %q, %v; want no %s", names, err, c)
	}
	if roots, err := other.Elsewhere(c); err != nil || len(roots) != 0 {
		t.Errorf("Elsewhere from another root = %q, %v; want nothing", roots, err)
	}
	if err := d.Delete(ctx, &plan.Process{Container: c, Bundle: bundle, StopTimeout: -1}); err != nil {
		t.Fatal(err)
	}
	for what, f := range fakes {
		if !running(f) {
			t.Errorf("the fake supervisor %s (pid %d) was ended by Delete", what, f.Process.Pid)
		}
	}
}
