//go:build linux

package fs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// The benchmarks build the webserver rootfs of manifests/webserver.yaml.
// Run them together, on one machine:
//
//	go test -run '^$' -bench . -benchtime 5x ./drivers/fs
//
// ColdApply is what a first `hutch apply` pays: resolve the recipe (ELF
// closures, python's folders read, every source stat'ed), write the
// layer, syncfs, rename, mount. WriteTree and CpA copy the same files the
// same way (no sync): hutch's parallel copy against `cp -a`.

func BenchmarkColdApply(b *testing.B) {
	testutil.RequireRoot(b)
	sr := stateRoot(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(sr, "cold", testutil.Name("c"))
		rf := webserver(dir, "cold")
		d := New(dir)
		b.StartTimer()
		if err := d.Apply(context.Background(), &plan.Change{After: rf}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Delete(context.Background(), rf); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

func webserverTree(b *testing.B) *tree {
	t, err := newResolver().resolve(context.Background(), webserver("/x", "w"))
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkWriteTree(b *testing.B) {
	testutil.RequireRoot(b)
	t := webserverTree(b)
	base := b.TempDir()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(base, testutil.Name("w"))
		os.Mkdir(dir, 0o755)
		b.StartTimer()
		if err := writeTree(context.Background(), dir, t); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// BenchmarkCpA copies the files and symlinks of the same tree with one
// `cd / && cp -a --parents` (it makes the parent folders).
func BenchmarkCpA(b *testing.B) {
	testutil.RequireRoot(b)
	t := webserverTree(b)
	var srcs []string
	for _, e := range t.entries {
		if e.Src != "" && e.Kind != kDir {
			srcs = append(srcs, e.Src[1:])
		}
	}
	b.Logf("cp -a of %d files and symlinks", len(srcs))
	base := b.TempDir()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(base, testutil.Name("c"))
		os.Mkdir(dir, 0o755)
		b.StartTimer()
		cmd := exec.Command("cp", append([]string{"-a", "--parents", "-t", dir}, srcs...)...)
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cp -a: %v\n%s", err, out)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// BenchmarkWarmApply mounts a container's rootfs whose layer is cached, as
// Apply does after Observe has set the recipe's digest: the goal is under 5
// ms.
func BenchmarkWarmApply(b *testing.B) {
	testutil.RequireRoot(b)
	sr := stateRoot(b)
	d := New(sr)
	rf := webserver(sr, testutil.Name("warm"))
	if _, err := d.Observe(context.Background(), rf); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ch := &plan.Change{After: rf}
	if err := d.Apply(ctx, ch); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Delete(ctx, rf) })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := d.Delete(ctx, rf); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := d.Apply(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserve is the cost of finding the digest again on every apply:
// closures, python's folders and a stat of every source file (or the kept
// resolution's check).
func BenchmarkObserve(b *testing.B) {
	testutil.RequireRoot(b)
	sr := stateRoot(b)
	d := New(sr)
	rf := webserver(sr, "observe")
	for i := 0; i < b.N; i++ {
		if _, err := d.Observe(context.Background(), rf); err != nil {
			b.Fatal(err)
		}
	}
}
