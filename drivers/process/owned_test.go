//go:build linux

package process

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// fakeSupervisor starts `sleep` through a symlink called hutch-supervisor
// (so /proc/PID/comm is "hutch-superviso", as a real supervisor's) with env
// as its whole environment; Cleanup kills and reaps it.
func fakeSupervisor(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	link := filepath.Join(t.TempDir(), "hutch-supervisor")
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "600")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
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
	sup := fakeSupervisor(t, envStage+"="+stageSupervisor, envBundle+"="+bundle)
	noEnv := fakeSupervisor(t)
	elsewhere := fakeSupervisor(t, envStage+"="+stageSupervisor, envBundle+"="+filepath.Join(root, "other", c))

	d := New(root, nil)
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
	if roots, err := New(otherRoot, nil).Elsewhere(c); err != nil || !slices.Equal(roots, []string{root}) {
		t.Errorf("Elsewhere from another root = %q, %v; want [%s]", roots, err, root)
	}
	if got, err := New(otherRoot, nil).Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned from another root = %v, %v; want nothing", got, err)
	}

	if err := d.Delete(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	st, _ := startTime(sup.Process.Pid)
	if alive(sup.Process.Pid, st) {
		t.Errorf("supervisor %d still runs after Delete", sup.Process.Pid)
	}
	for _, cmd := range []*exec.Cmd{noEnv, elsewhere} {
		st, err := startTime(cmd.Process.Pid)
		if err != nil || !alive(cmd.Process.Pid, st) {
			t.Errorf("process %d, not this bundle's supervisor, was ended", cmd.Process.Pid)
		}
	}
	if got, err := d.Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned after Delete = %v, %v; want nothing", got, err)
	}
}
