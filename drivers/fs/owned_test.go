//go:build linux

package fs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// mountOverlay mounts an overlay at dir/rootfs whose lowerdir is a layer of
// root/layers, as the driver does, and unmounts it in Cleanup.
func mountOverlay(t *testing.T, root, dir string) {
	t.Helper()
	lower := filepath.Join(root, "layers", "0123")
	up, work, mp := filepath.Join(dir, "overlay", "upper"), filepath.Join(dir, "overlay", "work"), filepath.Join(dir, "rootfs")
	for _, p := range []string{lower, up, work, mp} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", mp, "overlay", 0, "lowerdir="+lower+",upperdir="+up+",workdir="+work); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
}

// Owned finds a container's rootfs by a mount at its rootfs folder under
// the state root, after the rest of the folder was removed; a mount under
// another folder is never found; Elsewhere names another state root with
// an overlay of the same container name.
func TestOwnedFindsMountsUnderTheStateRootOnly(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root, otherRoot := t.TempDir(), t.TempDir()
	c := testutil.Name("oc")
	bundle := filepath.Join(root, "containers", c)
	mountOverlay(t, root, bundle)
	// The folder as rm -rf leaves it: everything but the busy mount point.
	if err := os.RemoveAll(filepath.Join(bundle, "overlay")); err != nil {
		t.Fatal(err)
	}
	// A mount called like a container, not under containers/.
	stray := filepath.Join(root, "elsewhere", c, "rootfs")
	if err := os.MkdirAll(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", stray, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(stray, unix.MNT_DETACH) })

	d := New(root)
	got, err := d.Owned(ctx, c)
	want := &plan.Rootfs{Container: c, Bundle: bundle}
	if err != nil || len(got) != 1 || got[0].(*plan.Rootfs).Container != c || got[0].(*plan.Rootfs).Bundle != bundle {
		t.Fatalf("Owned = %v, %v; want %+v", got, err, want)
	}
	if names, err := d.Marked(ctx); err != nil || !slices.Equal(names, []string{c}) {
		t.Errorf("Marked = %q, %v; want [%s]", names, err, c)
	}
	if roots, err := New(otherRoot).Elsewhere(c); err != nil || !slices.Equal(roots, []string{root}) {
		t.Errorf("Elsewhere from another root = %q, %v; want [%s]", roots, err, root)
	}
	if roots, err := d.Elsewhere(c); err != nil || len(roots) != 0 {
		t.Errorf("Elsewhere from its own root = %q, %v; want none", roots, err)
	}
	if got, err := New(otherRoot).Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned from another root = %v, %v; want nothing", got, err)
	}

	if err := d.Delete(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), bundle) {
		t.Errorf("mountinfo still names %s", bundle)
	}
	if !strings.Contains(string(mi), stray) {
		t.Errorf("the mount at %s, not hutch's, is gone", stray)
	}
	if got, err := d.Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned after Delete = %v, %v; want nothing", got, err)
	}
}
