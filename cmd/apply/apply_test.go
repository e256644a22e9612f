package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/reconcile"
)

func TestSourcesExpandFoldersAsLoadDoes(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"b.yml": "b", "a.yaml": "a", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	got, err := sources([]string{dir, "-"})
	if err != nil {
		t.Fatal(err)
	}
	want := []reconcile.Source{
		{Path: filepath.Join(dir, "a.yaml"), Digest: digest("a")},
		{Path: filepath.Join(dir, "b.yml"), Digest: digest("b")},
		{Path: "<stdin>"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if _, err := sources([]string{filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Error("a missing file is not an error")
	}
}

func TestApplyRefusesABadManifestBeforeTouchingTheStore(t *testing.T) {
	root := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: hutch/v1alpha1\nkind: Container\nmetadata: {name: Bad_Name}\nspec: {}\n"), 0o644)
	code, _ := runCmd(t, "--root", root, "apply", "-f", bad)
	if code != 1 {
		t.Errorf("apply of a bad manifest: exit %d, want 1", code)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("apply of a bad manifest wrote %v", ents)
	}
}
