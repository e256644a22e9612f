//go:build linux

package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// A bundle file is written, read back, rewritten in place (same inode, as a
// bind mount needs), refused through a symlink and removed.
func TestBundleFile(t *testing.T) {
	root := t.TempDir()
	d := NewFileDriver(root)
	ctx := context.Background()
	f := &plan.File{Container: "web", Name: "hosts", Content: "127.0.0.1\tlocalhost\n10.0.0.2\tweb\n"}
	if got, err := d.Observe(ctx, f); err != nil || got != nil {
		t.Fatalf("before apply: %v, %v", got, err)
	}
	if err := d.Apply(ctx, &plan.Change{After: f}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "containers", "web", "hosts")
	var st1, st2 unix.Stat_t
	if err := unix.Stat(path, &st1); err != nil {
		t.Fatal(err)
	}
	got, err := d.Observe(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if fields, _ := d.Diff(got, f); len(fields) != 0 {
		t.Errorf("after apply: diff %v", fields)
	}
	g := *f
	g.Content = "127.0.0.1\tlocalhost\n10.0.0.9\tweb\n"
	if fields, replace := d.Diff(got, &g); strings.Join(fields, ",") != "content" || len(replace) != 0 {
		t.Errorf("new content: fields %v replace %v", fields, replace)
	}
	if err := d.Apply(ctx, &plan.Change{After: &g}); err != nil {
		t.Fatal(err)
	}
	unix.Stat(path, &st2)
	if b, _ := os.ReadFile(path); string(b) != g.Content || st1.Ino != st2.Ino || st2.Mode&0o777 != 0o644 {
		t.Errorf("rewritten: %q, inode %d then %d, mode %o", b, st1.Ino, st2.Ino, st2.Mode&0o777)
	}
	// A symlink planted in the file's place is not followed.
	os.Remove(path)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("keep"), 0o600)
	os.Symlink(outside, path)
	if err := d.Apply(ctx, &plan.Change{After: &g}); err == nil {
		t.Errorf("wrote through a symlink")
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the symlink's target was changed: %q", b)
	}
	os.Remove(path)
	if err := d.Delete(ctx, f); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*plan.File{{Container: "../x", Name: "hosts"}, {Container: "web", Name: "passwd"}} {
		if err := d.Apply(ctx, &plan.Change{After: bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
