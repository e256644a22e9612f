package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// runCmd runs the CLI with args on a host of its own, as hutch would, and
// returns its exit code and stdout. Each run builds the command tree anew,
// so no flag value outlives it.
func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return runOn(t, newHost(defaultOptions()), args...)
}

// runOn is runCmd on the host h.
func runOn(t *testing.T, h *host, args ...string) (int, string) {
	t.Helper()
	root := newRootCommand(h)
	var out bytes.Buffer
	root.SetOut(&out)
	return execute(root, args), out.String()
}

// emptyHost is a host against which hutch plan finds none of the desired
// resources: every change is a create, and nothing of the machine the test
// runs on is observed.
func emptyHost() *host {
	h := newHost(defaultOptions())
	h.changes = func(ctx context.Context, d *plan.Desired) ([]*plan.Change, error) {
		return plan.Creates(d.Resources()), nil
	}
	return h
}

func TestPlanExitCodes(t *testing.T) {
	const manifest = "../../manifests/webserver.yaml"
	empty := emptyHost()
	code, out := runOn(t, empty, "plan", "-f", manifest)
	if code != 2 {
		t.Errorf("plan against an empty host: exit %d, want 2", code)
	}
	if !strings.Contains(out, "+ process/webserver") || strings.Contains(out, "\x1b[") {
		t.Errorf("plan output lacks the process create or has colour off a terminal:\n%s", out)
	}

	code, out = runOn(t, empty, "plan", "-f", manifest, "-o", "json")
	var doc struct {
		FormatVersion string
		Changes       []struct{ Action, ID string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 2 {
		t.Fatalf("plan -o json: exit %d, %v:\n%s", code, err, out)
	}
	if doc.FormatVersion != "1" || len(doc.Changes) != 13 {
		t.Errorf("plan -o json: version %q, %d changes, want 1 and 13 (7 and the published port's 6)", doc.FormatVersion, len(doc.Changes))
	}

	// A host that already matches: every change a no-op, exit 0.
	matching := newHost(defaultOptions())
	matching.changes = func(ctx context.Context, d *plan.Desired) ([]*plan.Change, error) {
		var cs []*plan.Change
		for _, r := range d.Resources() {
			cs = append(cs, &plan.Change{ID: r.ID(), Kind: r.Kind(), Action: plan.NoOp, Before: r, After: r})
		}
		return cs, nil
	}
	code, out = runOn(t, matching, "plan", "-f", manifest)
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan of a matching host: exit %d, want 0:\n%s", code, out)
	}

	if code, _ = runOn(t, emptyHost(), "plan", "-f", "testdata-does-not-exist.yaml"); code != 1 {
		t.Errorf("plan of a missing file: exit %d, want 1", code)
	}
	if code, _ = runOn(t, emptyHost(), "plan", "-f", manifest, "-o", "yaml"); code != 1 {
		t.Errorf("plan -o yaml: exit %d, want 1", code)
	}
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	// The state root is a temporary folder too: export must not write into
	// the real /var/lib/hutch (drivers/fs keeps its layer cache there).
	code, _ := runCmd(t, "--root", t.TempDir(), "export", "-f", "../../manifests/webserver.yaml", "--bundle", dir)
	if code != 0 {
		t.Fatalf("export: exit %d", code)
	}
	b, err := os.ReadFile(filepath.Join(dir, "webserver", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Root struct{ Path string }
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Root.Path != "rootfs" {
		t.Fatalf("config.json: root.path %q, %v", s.Root.Path, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "webserver", "rootfs", "tmp"))
	if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("rootfs/tmp: %v, %v; want drwxrwxrwt", fi.Mode(), err)
	}
}

// TestPlanRunsNothingAndWritesNothing reviews manifests someone else wrote:
// validate, plan, plan -o json and plan --explain (human, json, script) of
// a manifest whose python is a script, of one whose binaries hold a script
// named python-something (both scripts make a marker file when they run),
// and of the web server, against a state root that does not exist yet. No
// script runs and nothing appears under the state root.
func TestPlanRunsNothingAndWritesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := fmt.Sprintf("#!/bin/sh\ntouch %s\nexec /usr/bin/python3 \"$@\"\n", marker)
	for _, name := range []string{"python3", "python-tool"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(file, rootfs string) string {
		p := filepath.Join(dir, file)
		y := fmt.Sprintf(`apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: %s
spec:
  rootfs:
%s
  process:
    args: [python3, -c, "print(1)"]
`, testutil.Name("pr"), rootfs)
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	manifests := []string{
		manifest("python.yaml", "    python: "+filepath.Join(dir, "python3")),
		manifest("binary.yaml", "    binaries: [/bin/sh, "+filepath.Join(dir, "python-tool")+"]\n    python: /usr/bin/python3"),
		"../../manifests/webserver.yaml",
	}
	root := filepath.Join(t.TempDir(), "state")
	for _, m := range manifests {
		for _, args := range [][]string{
			{"validate", "-f", m},
			{"plan", "-f", m},
			{"plan", "-f", m, "-o", "json"},
			{"plan", "-f", m, "--explain"},
			{"plan", "-f", m, "--explain", "-o", "json"},
			{"plan", "-f", m, "--explain", "-o", "script"},
		} {
			code, _ := runCmd(t, append([]string{"--root", root}, args...)...)
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("hutch %s (exit %d) ran the manifest's script", strings.Join(args, " "), code)
			}
			if _, err := os.Lstat(root); !os.IsNotExist(err) {
				var made []string
				filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { made = append(made, p); return nil })
				t.Fatalf("hutch %s (exit %d) wrote under the state root: %v", strings.Join(args, " "), code, made)
			}
		}
	}
}
