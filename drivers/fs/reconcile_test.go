//go:build linux

package fs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	fsdrv "hutch/drivers/fs"
	"hutch/internal/testutil"
	"hutch/plan"
	"hutch/reconcile"
)

// TestThroughReconciler drives the fs driver with the real reconciler, as
// `hutch apply` and `hutch delete` do, each command with a new driver: apply
// mounts, a second plan finds nothing to do, a changed source file is a
// replace, delete leaves nothing.
func TestThroughReconciler(t *testing.T) {
	testutil.RequireRoot(t)
	sr := t.TempDir()
	t.Cleanup(func() {
		ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(sr))
		for _, m := range ms {
			unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
		}
	})
	o := plan.DefaultOptions()
	o.StateRoot = sr
	name := testutil.Name("fsrec")
	src := filepath.Join(t.TempDir(), "conf")
	os.WriteFile(src, []byte("one"), 0o644)
	want := func() []*reconcile.Container {
		rf := &plan.Rootfs{Container: name, Bundle: o.BundleDir(name), Binaries: []string{"ls"},
			Copies: []plan.Copy{{From: src, To: "/etc/conf"}}}
		return []*reconcile.Container{{Name: name, Resources: []plan.Resource{rf}, Config: []byte("{}\n")}}
	}
	rec := func() (*reconcile.Reconciler, *bytes.Buffer) {
		var out bytes.Buffer
		return &reconcile.Reconciler{Drivers: map[plan.Kind]reconcile.Driver{plan.KindRootfs: fsdrv.New(sr)},
			Store: reconcile.NewStore(o), Out: &out}, &out
	}
	ctx := context.Background()
	actions := func() []plan.Action {
		r, out := rec()
		res, err := r.Plan(ctx, want(), reconcile.ApplyOptions{})
		if err != nil {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		var as []plan.Action
		for _, c := range res.Plan.Changes {
			as = append(as, c.Action)
		}
		return as
	}
	root := filepath.Join(o.BundleDir(name), "rootfs")
	conf := func() string { b, _ := os.ReadFile(filepath.Join(root, "etc/conf")); return string(b) }

	r, out := rec()
	if err := r.Apply(ctx, want(), reconcile.ApplyOptions{}); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	t.Cleanup(func() { r, _ := rec(); r.Delete(ctx, []string{name}, true) })
	if conf() != "one" {
		t.Fatalf("after apply: /etc/conf %q", conf())
	}
	if as := actions(); len(as) != 1 || as[0] != plan.NoOp {
		t.Fatalf("second plan: %v, want one no-op", as)
	}
	os.WriteFile(src, []byte("two"), 0o644)
	os.Chtimes(src, time.Now(), time.Now().Add(time.Minute))
	// A replace is carried out in two halves (delete, then create).
	if as := actions(); len(as) == 0 || as[0] != plan.Replace || as[len(as)-1] != plan.Replace {
		t.Fatalf("plan after a source change: %v, want a replace", as)
	}
	r, out = rec()
	if err := r.Apply(ctx, want(), reconcile.ApplyOptions{}); err != nil {
		t.Fatalf("apply after a source change: %v\n%s", err, out)
	}
	if conf() != "two" {
		t.Fatalf("after the replace: /etc/conf %q\n%s", conf(), out)
	}
	r, out = rec()
	if err := r.Delete(ctx, []string{name}, false); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(sr)); len(ms) != 0 {
		t.Fatalf("after delete: %d mounts under the state root", len(ms))
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatalf("after delete: %s is still there (%v)", root, err)
	}
	removed, err := fsdrv.New(sr).GC(nil)
	if err != nil || len(removed) != 2 {
		t.Fatalf("gc after delete: removed %v (%v), want both layers", removed, err)
	}
}
