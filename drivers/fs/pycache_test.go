//go:build linux

package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The second command reads python's answer from the cache: a doctored answer
// in the cache file is what it gets, so no interpreter ran.
func TestPythonAnswerKept(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	dir := t.TempDir()
	r := newResolver()
	r.cacheDir = dir
	pi, err := r.queryPython(context.Background(), py)
	if err != nil {
		t.Fatal(err)
	}
	key := pythonKey(py)
	if key == "" {
		t.Fatalf("%s leads to an ELF file, yet has no cache key", py)
	}
	if _, err := os.Stat(r.pythonCacheFile(key)); err != nil {
		t.Fatalf("answer not kept: %v", err)
	}
	doctored := *pi
	doctored.Version = "0.0-from-cache"
	r.keepPython(key, &doctored)

	r2 := newResolver()
	r2.cacheDir = dir
	got, err := r2.queryPython(context.Background(), py)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "0.0-from-cache" {
		t.Fatalf("python was asked again: version %q", got.Version)
	}
}

// A script (such as a pyenv shim) has no key: its answer follows files
// elsewhere (.python-version), so it is asked every time.
func TestPythonScriptNotKept(t *testing.T) {
	p := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if k := pythonKey(p); k != "" {
		t.Fatalf("script got cache key %q", k)
	}
}
