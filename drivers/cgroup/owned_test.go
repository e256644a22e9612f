//go:build linux

package cgroup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// Owned finds a container's cgroup under the parent, also when it exists
// in only one hierarchy (half made), and never a cgroup of the same name
// outside the parent; Delete accepts what it returns.
func TestOwnedFindsCgroupsUnderTheParentOnly(t *testing.T) {
	d := realDriver(t)
	ctx := context.Background()
	c, half := testutil.Name("oc"), testutil.Name("oh")
	if err := d.Apply(ctx, &plan.Change{Action: plan.Create, After: &plan.Cgroup{Container: c, Path: d.parent + "/" + c}}); err != nil {
		t.Fatal(err)
	}
	// A half-made cgroup: its folder in the first hierarchy only.
	m0 := d.mounts()[0]
	if err := os.MkdirAll(filepath.Join(m0, d.parent, half), 0o755); err != nil {
		t.Fatal(err)
	}
	// A cgroup called like a container, outside the parent.
	outside := filepath.Join(m0, c)
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Rmdir(outside) })

	for _, name := range []string{c, half} {
		got, err := d.Owned(ctx, name)
		if err != nil || len(got) != 1 || got[0].(*plan.Cgroup).Path != d.parent+"/"+name || got[0].Owner() != name {
			t.Fatalf("Owned(%s) = %v, %v", name, got, err)
		}
		if err := d.Delete(ctx, got[0]); err != nil {
			t.Fatalf("Delete %s: %v", name, err)
		}
		if n, _ := d.present(d.parent + "/" + name); n != 0 {
			t.Errorf("cgroup %s still in %d hierarchies after Delete", name, n)
		}
	}
	if fi, err := os.Stat(outside); err != nil || !fi.IsDir() {
		t.Errorf("cgroup %s outside the parent: %v", outside, err)
	}
	if got, err := d.Owned(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("Owned after Delete = %v, %v; want nothing", got, err)
	}
	if _, err := d.Owned(ctx, "../x"); err == nil {
		t.Error("Owned of ../x: no error")
	}

	other := testutil.Name("om")
	if err := os.MkdirAll(filepath.Join(m0, d.parent, other), 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := d.Marked(ctx)
	if err != nil || !slices.Equal(names, []string{other}) {
		t.Errorf("Marked = %q, %v; want [%s]", names, err, other)
	}
}
