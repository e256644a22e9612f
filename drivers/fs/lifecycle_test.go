//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"hutch/internal/testutil"
	"hutch/plan"
)

// TestMain runs the build child of TestKillDuringBuild when the test binary
// is re-executed as one.
func TestMain(m *testing.M) {
	if os.Getenv("HUTCH_FS_CHILD") == "build" {
		sr, name := os.Getenv("HUTCH_FS_ROOT"), os.Getenv("HUTCH_FS_NAME")
		marker := filepath.Join(sr, "child-stopped")
		testHookFileWritten = func(n int64) {
			if n == 100 {
				os.WriteFile(marker, nil, 0o644)
				select {} // wait here for the SIGKILL
			}
		}
		rf := webserver(sr, name)
		err := New(sr).Apply(context.Background(), &plan.Change{After: rf})
		fmt.Fprintln(os.Stderr, "child: build ended:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func layerNames(t *testing.T, sr string) (layers, temps []string) {
	ents, err := os.ReadDir(filepath.Join(sr, "layers"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), tmpPrefix):
			temps = append(temps, e.Name())
		case e.Name() != ".lock":
			layers = append(layers, e.Name())
		}
	}
	return layers, temps
}

func TestKillDuringBuild(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	name := testutil.Name("fskill")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HUTCH_FS_CHILD=build", "HUTCH_FS_ROOT="+sr, "HUTCH_FS_NAME="+name)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait (bounded) for the child to be midway through writing files.
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(sr, "child-stopped")); err == nil {
			break
		}
		if i == 6000 {
			t.Fatal("the build child never reached its 100th file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, temps := layerNames(t, sr); len(temps) != 2 {
		t.Fatalf("midway through a build: temporary files %v, want a folder and its lock file", temps)
	}
	// A delete (or another build) now must leave the living build alone.
	if err := New(sr).Delete(context.Background(), webserver(sr, testutil.Name("fsother"))); err != nil {
		t.Fatal(err)
	}
	if _, temps := layerNames(t, sr); len(temps) != 2 {
		t.Fatalf("a delete during a living build removed its files: left %v", temps)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if layers, _ := layerNames(t, sr); len(layers) != 0 {
		t.Fatalf("a killed build left a layer that looks complete: %v", layers)
	}

	d := New(sr)
	rf := webserver(sr, name)
	if err := d.Delete(context.Background(), rf); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(rf.Bundle, "rootfs")
	if m, err := mountAt(root); err != nil || m != nil {
		t.Fatalf("after delete: mount %+v at %s (%v)", m, root, err)
	}
	if _, temps := layerNames(t, sr); len(temps) != 0 {
		t.Fatalf("after delete: temporary folders %v left", temps)
	}
	// And the next apply builds a complete layer.
	apply(t, d, rf)
	chroot(t, root, "/bin/ls", "/server.py")
}

// du is the disk space the files under dir use, each inode counted once.
func du(t *testing.T, dir string, seen map[uint64]bool) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !seen[st.Ino] {
			seen[st.Ino] = true
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

func TestTwentyOverlaysShareOneLayer(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	var rfs []*plan.Rootfs
	for i := 0; i < 20; i++ {
		rf := webserver(sr, testutil.Name(fmt.Sprintf("fs20x%02d", i)))
		if _, err := d.Observe(context.Background(), rf); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Delete(context.Background(), rf) })
		rfs = append(rfs, rf)
	}
	// Applied at once, as the reconciler does: one build, not twenty.
	var written atomic.Int64
	testHookFileWritten = func(int64) { written.Add(1) }
	t.Cleanup(func() { testHookFileWritten = nil })
	errs := make([]error, len(rfs))
	var wg sync.WaitGroup
	for i, rf := range rfs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Apply(context.Background(), &plan.Change{After: rf})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range d.trees[rfs[0].Layer].entries {
		if e.Kind == kFile || e.Kind == kInline {
			files++
		}
	}
	if written.Load() != int64(files) {
		t.Errorf("20 applies at once wrote %d files; one build writes %d", written.Load(), files)
	}
	layers, _ := layerNames(t, sr)
	if len(layers) != 1 {
		t.Fatalf("20 containers of one recipe: layers %v, want one", layers)
	}
	layer := filepath.Join(sr, "layers", layers[0])
	layerSize := du(t, layer, map[uint64]bool{})
	// Each container writes 1 MiB into its rootfs.
	for i, rf := range rfs {
		m, err := mountAt(filepath.Join(rf.Bundle, "rootfs"))
		if err != nil || m == nil || lowerOf(m) != layer {
			t.Fatalf("container %d: mount %+v, want an overlay over %s (%v)", i, m, layer, err)
		}
		p := filepath.Join(rf.Bundle, "rootfs", "tmp", "data")
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(layer, "tmp", "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a container's write reached the layer: %v", err)
	}
	if err := os.Remove(filepath.Join(rfs[0].Bundle, "rootfs", "tmp", "data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rfs[1].Bundle, "rootfs", "tmp", "data")); err != nil {
		t.Fatalf("container 0's delete reached container 1: %v", err)
	}
	seen := map[uint64]bool{}
	total := du(t, sr, seen)
	var uppers int64
	for _, rf := range rfs {
		uppers += du(t, filepath.Join(rf.Bundle, "overlay"), map[uint64]bool{})
	}
	if after := du(t, layer, map[uint64]bool{}); after != layerSize {
		t.Errorf("the layer grew from %d to %d bytes", layerSize, after)
	}
	t.Logf("layer %d KiB once; 20 upper+work folders %d KiB (19 MiB written); state root %d KiB", layerSize>>10, uppers>>10, total>>10)
	// Everything but the layer is the upper folders (and mount points).
	if rest := total - layerSize - uppers; rest > 64<<10*20 {
		t.Errorf("state root holds %d KiB beyond the layer and the upper folders", rest>>10)
	}
	if uppers > 19<<20+20*(64<<10) {
		t.Errorf("upper folders hold %d KiB for 19 MiB written", uppers>>10)
	}
}

func TestReadOnlyRootfs(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	rf := webserver(sr, testutil.Name("fsro"))
	rf.ReadOnly = true
	apply(t, d, rf)
	root := filepath.Join(rf.Bundle, "rootfs")
	err := os.WriteFile(filepath.Join(root, "tmp", "x"), nil, 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write into a read-only rootfs: %v, want EROFS", err)
	}
	got, err := d.Observe(context.Background(), rf)
	if err != nil || got == nil || !got.(*plan.Rootfs).ReadOnly {
		t.Fatalf("observe: %+v %v, want read-only", got, err)
	}
	rw := *rf
	rw.ReadOnly = false
	if f, force := d.Diff(got, &rw); len(f) != 1 || f[0] != "readOnly" || len(force) != 1 {
		t.Fatalf("diff ro -> rw: %v %v", f, force)
	}
}

func TestSourceChangeGivesNewLayer(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	src := filepath.Join(t.TempDir(), "conf")
	os.WriteFile(src, []byte("one"), 0o644)
	rf := &plan.Rootfs{Container: testutil.Name("fssrc"), Binaries: []string{"/bin/ls"},
		Copies: []plan.Copy{{From: src, To: "/etc/conf"}}}
	rf.Bundle = filepath.Join(sr, "containers", rf.Container)
	apply(t, d, rf)
	old := rf.Layer
	// Same size, new modification time.
	os.WriteFile(src, []byte("two"), 0o644)
	os.Chtimes(src, time.Now(), time.Now().Add(time.Second))
	got, err := New(sr).Observe(context.Background(), rf)
	if err != nil || got == nil {
		t.Fatalf("observe: %v %v", got, err)
	}
	if rf.Layer == old {
		t.Fatal("a changed source file gave the same digest")
	}
	if f, _ := d.Diff(got, rf); len(f) != 1 || f[0] != "layer" {
		t.Fatalf("diff after a source change: %v", f)
	}
	// Replace, as the reconciler does: delete, then create.
	if err := d.Delete(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(context.Background(), &plan.Change{Action: plan.Replace, Before: got, After: rf}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(rf.Bundle, "rootfs", "etc", "conf"))
	if err != nil || string(b) != "two" {
		t.Fatalf("rootfs /etc/conf: %q %v, want the new content", b, err)
	}
	removed, err := d.GC(nil)
	if err != nil || len(removed) != 1 || removed[0] != old {
		t.Fatalf("gc: removed %v (%v), want only the old layer %s", removed, err, old)
	}
	if layers, _ := layerNames(t, sr); len(layers) != 1 || "sha256:"+layers[0] != rf.Layer {
		t.Fatalf("after gc: layers %v, want only %s", layers, rf.Layer)
	}
	// Unmounted but recorded, the layer stays: the upper folder needs it.
	if err := unmountAll(filepath.Join(rf.Bundle, "rootfs")); err != nil {
		t.Fatal(err)
	}
	if removed, err := d.GC(nil); err != nil || len(removed) != 0 {
		t.Fatalf("gc of a stopped container's layer: removed %v (%v)", removed, err)
	}
}

func TestDeleteIdempotent(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	ctx := context.Background()
	rf := &plan.Rootfs{Container: testutil.Name("fsdel"), Binaries: []string{"/bin/ls"}}
	rf.Bundle = filepath.Join(sr, "containers", rf.Container)
	for _, half := range []string{"nothing", "upper gone", "unmounted", "twice"} {
		if err := d.Apply(ctx, &plan.Change{After: rf}); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(rf.Bundle, "rootfs")
		switch half {
		case "upper gone":
			os.RemoveAll(filepath.Join(rf.Bundle, "overlay"))
		case "unmounted":
			unmountAll(root)
		case "twice":
			if err := d.Delete(ctx, rf); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Delete(ctx, rf); err != nil {
			t.Fatalf("%s: delete: %v", half, err)
		}
		if m, _ := mountAt(root); m != nil {
			t.Fatalf("%s: still mounted", half)
		}
		for _, p := range []string{root, filepath.Join(rf.Bundle, "overlay")} {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Fatalf("%s: %s left (%v)", half, p, err)
			}
		}
	}
	if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(sr)); len(ms) != 0 {
		t.Fatalf("mounts left under %s: %d", sr, len(ms))
	}
}

// TestPythonOfPyenvVersion gives the python field an interpreter of pyenv
// (where pyenv keeps its versions on this machine): hutch reads where its
// standard library is, and the copy runs in the rootfs.
func TestPythonOfPyenvVersion(t *testing.T) {
	testutil.RequireRoot(t)
	const py = "/root/.pyenv/versions/3.11.7/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no pyenv python 3.11.7 on this host")
	}
	rf := &plan.Rootfs{Container: "t", Bundle: "/x", Python: py, Binaries: []string{"/bin/bash"},
		Dirs: []plan.Dir{{Path: "/proc", Mode: 0o555}}}
	tr, err := newResolver().resolve(context.Background(), rf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeTree(context.Background(), dir, tr); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(dir, "usr/bin/python3"))
	if err != nil || target != py {
		t.Fatalf("/usr/bin/python3 -> %q (%v), want %s", target, err, py)
	}
	out := chroot(t, dir, "python3", "-c", "import sys, json, http.server, ssl; print(sys.executable, sys.prefix)")
	if !strings.Contains(out, "/root/.pyenv/versions/3.11.7") {
		t.Fatalf("python in the rootfs says %q", out)
	}
}
