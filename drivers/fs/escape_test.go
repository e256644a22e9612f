//go:build linux

package fs

import (
	"os"
	"path/filepath"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// outside is a folder outside the rootfs that no write may reach.
func outside(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			t.Errorf("a write escaped the rootfs: %s", filepath.Join(dir, e.Name()))
		}
	})
	return dir
}

func TestEscapeDotDot(t *testing.T) {
	testutil.RequireRoot(t)
	out := outside(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	up := "/../../../../../../../.." + out
	rf := &plan.Rootfs{Container: "t", Bundle: "/x",
		Files:  []plan.InlineFile{{Path: up + "/inline", Mode: 0o644, Content: "x"}},
		Copies: []plan.Copy{{From: filepath.Join(src, "f"), To: up + "/copied"}},
		Dirs:   []plan.Dir{{Path: up + "/dir", Mode: 0o755}}}
	dir, err := build(t, rf)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"inline", "copied", "dir"} {
		if _, err := os.Lstat(filepath.Join(dir, out, n)); err != nil {
			t.Errorf("%s: not inside the rootfs: %v", n, err)
		}
	}
}

// A copied tree brings symlinks that point out of the rootfs, absolute and
// relative; later writes through them land inside the root (or fail), never
// outside.
func TestEscapeThroughSymlinks(t *testing.T) {
	testutil.RequireRoot(t)
	out := outside(t)
	src := t.TempDir()
	os.Symlink(out, filepath.Join(src, "abs"))
	os.Symlink("../../../../../../../../.."+out, filepath.Join(src, "rel"))
	os.Symlink(out+"/f", filepath.Join(src, "absfile"))
	for _, p := range []string{"/abs/f", "/rel/f", "/absfile"} {
		rf := &plan.Rootfs{Container: "t", Bundle: "/x",
			Copies: []plan.Copy{{From: src, To: "/"}},
			Files:  []plan.InlineFile{{Path: p, Mode: 0o644, Content: "x"}}}
		dir, err := build(t, rf)
		t.Logf("%s: %v", p, err)
		if err == nil {
			if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
				t.Errorf("%s: built, but not inside the rootfs: %v", p, err)
			}
		}
	}
	// With the target folder present inside the root, the write goes there.
	rf := &plan.Rootfs{Container: "t", Bundle: "/x",
		Copies: []plan.Copy{{From: src, To: "/"}},
		Dirs:   []plan.Dir{{Path: out, Mode: 0o755}},
		Files:  []plan.InlineFile{{Path: "/abs/f2", Mode: 0o644, Content: "x"}}}
	dir, err := build(t, rf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, out, "f2")); err != nil {
		t.Errorf("/abs/f2 not at the symlink's target inside the root: %v", err)
	}
}

// A folder of the rootfs is swapped for a symlink to the outside while the
// build runs, between making folders and writing files, as a racing attacker
// would.
func TestEscapeSymlinkSwappedDuringBuild(t *testing.T) {
	testutil.RequireRoot(t)
	out := outside(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	for _, n := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(src, "d", n), []byte(n), 0o644)
	}
	for name, target := range map[string]string{"absolute": out, "relative": "../../../../../../../.." + out} {
		t.Run(name, func(t *testing.T) {
			testHookBeforeFiles = func(dir string) {
				d := filepath.Join(dir, "data", "d")
				if err := os.Rename(d, d+".moved"); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, d); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { testHookBeforeFiles = nil })
			rf := &plan.Rootfs{Container: "t", Bundle: "/x", Copies: []plan.Copy{{From: src, To: "/data"}}}
			_, err := build(t, rf)
			t.Logf("build with a swapped symlink: %v", err)
		})
	}
}
