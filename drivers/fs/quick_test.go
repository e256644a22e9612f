//go:build linux

package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hutch/internal/testutil"
	"hutch/plan"
)

// fullDigest resolves rf with a resolver of its own, never a kept one.
func fullDigest(t testing.TB, rf *plan.Rootfs) string {
	t.Helper()
	tr, err := newResolver().resolve(context.Background(), rf)
	if err != nil {
		t.Fatal(err)
	}
	return tr.digest(rf)
}

// TestKeptResolution checks that a kept resolution answers a new command's
// Observe, and that every change of what the recipe copies (content with
// the mtime set back, mtime, a file added to or removed from a copied
// folder) gives the digest a full resolution gives.
func TestKeptResolution(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	tree := filepath.Join(dir, "tree")
	os.WriteFile(conf, []byte("one"), 0o644)
	os.Mkdir(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "a"), []byte("a"), 0o644)
	rf := &plan.Rootfs{Container: testutil.Name("fskept"), Binaries: []string{"/bin/ls"},
		Copies: []plan.Copy{{From: conf, To: "/etc/conf"}, {From: tree, To: "/tree"}}}
	rf.Bundle = filepath.Join(sr, "containers", rf.Container)
	// Files changed less than racyMargin before a resolution are not kept.
	time.Sleep(2 * racyMargin)

	first, err := New(sr).Digest(rf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readKept(newResolver().keptFileIn(sr, rf)); err != nil {
		t.Fatalf("no kept resolution after a first Digest: %v", err)
	}
	if got, _ := New(sr).Digest(rf); got != first {
		t.Fatalf("kept digest %s, want %s", got, first)
	}
	d := New(sr)
	if got, ok := d.keptDigestOf(rf); !ok || got != first {
		t.Fatalf("keptDigestOf: %s %v, want %s true", got, ok, first)
	}

	orig, _ := os.Stat(conf)
	steps := []struct {
		name   string
		change func()
		same   bool // the digest stays (only the ctime changed)
	}{
		{"content rewritten, mtime set back", func() {
			os.WriteFile(conf, []byte("two"), 0o644)
			os.Chtimes(conf, orig.ModTime(), orig.ModTime())
		}, true},
		{"mtime", func() { os.Chtimes(conf, time.Now(), time.Now().Add(time.Second)) }, false},
		{"file added to a copied folder", func() { os.WriteFile(filepath.Join(tree, "b"), []byte("b"), 0o644) }, false},
		{"file removed from a copied folder", func() { os.Remove(filepath.Join(tree, "a")) }, false},
	}
	prev := first
	for _, s := range steps {
		s.change()
		if _, ok := New(sr).keptDigestOf(rf); ok {
			t.Errorf("%s: the kept resolution still holds", s.name)
		}
		got, err := New(sr).Digest(rf)
		if err != nil {
			t.Fatal(err)
		}
		if want := fullDigest(t, rf); got != want {
			t.Errorf("%s: digest %s, a full resolution gives %s", s.name, got, want)
		}
		if (got == prev) != s.same {
			t.Errorf("%s: digest %s after %s: same=%v, want %v", s.name, got, prev, got == prev, s.same)
		}
		prev = got
	}
}

// BenchmarkObserveNewDriver is a no-op apply's rootfs Observe: a new
// command (a new Driver) finding the recipe's digest, kept or resolved.
func BenchmarkObserveNewDriver(b *testing.B) {
	testutil.RequireRoot(b)
	sr := stateRoot(b)
	rf := webserver(sr, "observenew")
	if _, err := New(sr).Observe(context.Background(), rf); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * racyMargin)
	New(sr).Observe(context.Background(), rf)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := New(sr).Observe(context.Background(), rf); err != nil {
			b.Fatal(err)
		}
	}
}

// keptFileIn is the kept resolution's file of rf under stateRoot (tests).
func (r *resolver) keptFileIn(stateRoot string, rf *plan.Rootfs) string {
	r.cacheDir = filepath.Join(stateRoot, "cache")
	return r.keptFile(r.recipeKey(rf))
}
