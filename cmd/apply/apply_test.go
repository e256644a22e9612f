package main

import (
	"os"
	"path/filepath"
	"testing"
)

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
