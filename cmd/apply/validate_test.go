package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runValidate runs `hutch validate` in-process with stdin and returns the
// exit code, stdout and stderr.
func runValidate(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	root := newRootCommand(newHost(defaultOptions()))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	code := execute(root, append([]string{"validate"}, args...))
	return code, out.String(), errOut.String()
}

func TestValidateVerbValid(t *testing.T) {
	code, out, errOut := runValidate(t, "", "-f", "../../manifests/webserver.yaml")
	if code != 0 || out != "valid: 1 container in 1 file (webserver)\n" || errOut != "" {
		t.Errorf("validate webserver.yaml: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A folder and a file, repeated -f.
	good, _ := filepath.Glob("../../spec/testdata/good/*.yaml")
	code, out, _ = runValidate(t, "", "-f", "../../spec/testdata/good", "-f", "../../manifests/webserver.yaml")
	if code != 0 || !strings.HasPrefix(out, "valid: ") || !strings.Contains(out, fmt.Sprintf("in %d files", len(good)+1)) {
		t.Errorf("validate good/ and webserver.yaml: exit %d, stdout %q", code, out)
	}
	// Standard input.
	web, err := os.ReadFile("../../manifests/webserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = runValidate(t, string(web), "-f", "-")
	if code != 0 || out != "valid: 1 container in 1 file (webserver)\n" {
		t.Errorf("validate -f -: exit %d, stdout %q", code, out)
	}
}

// TestValidateVerbBad: every bad manifest exits 1 with its golden message
// on stderr, then a count.
func TestValidateVerbBad(t *testing.T) {
	files, _ := filepath.Glob("../../spec/testdata/bad/*.yaml")
	if len(files) < 30 {
		t.Fatalf("found %d bad manifests", len(files))
	}
	for _, f := range files {
		golden, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		// The goldens name files as spec's tests open them.
		want := strings.ReplaceAll(string(golden), "testdata/bad/", "../../spec/testdata/bad/") + "1 error in 1 file\n"
		code, out, errOut := runValidate(t, "", "-f", f)
		if code != 1 || out != "" || errOut != want {
			t.Errorf("validate %s: exit %d, stdout %q\nstderr:\n%s\nwant:\n%s", f, code, out, errOut, want)
		}
	}
}

// TestValidateVerbAllAtOnce: errors of several files and documents come
// together, sorted by file and line.
func TestValidateVerbAllAtOnce(t *testing.T) {
	dir := t.TempDir()
	a := "apiVersion: hutch/v1alpha1\nkind: Container\nmetadata: {name: a}\nspec:\n  process: {args: [sh]}\n  resources: {memory: 1M}\n" +
		"---\napiVersion: hutch/v1alpha1\nkind: Container\nmetadata: {name: b}\nspec:\n  process: {args: [sh], cwd: tmp}\n"
	b := "apiVersion: hutch/v1alpha1\nkind: Container\nmetadata: {name: a}\nspec:\n  proces: {args: [sh]}\n"
	for name, body := range map[string]string{"a.yaml": a, "b.yml": b, "notes.txt": "not a manifest"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut := runValidate(t, "", "-f", dir)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	want := []string{
		dir + "/a.yaml:6:23: spec.resources.memory: 1M is 1048576 bytes, below the minimum (expected at least 4M (4194304 bytes), or 0 for no limit)",
		dir + "/a.yaml:12:30: spec.process.cwd: \"tmp\" is not absolute (expected a path starting with /, such as /tmp)",
		dir + "/b.yml:3:18: metadata.name: container \"a\" is defined twice, first at " + dir + "/a.yaml:3 (metadata.name of a) (expected a unique name)",
		dir + "/b.yml:5:3: spec.proces: unknown field \"proces\" (did you mean \"process\"?)",
		"4 errors in 2 files",
	}
	if code != 1 || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", code, errOut, strings.Join(want, "\n"))
	}
}

func TestValidateVerbUsage(t *testing.T) {
	if code, _, _ := runValidate(t, ""); code != 1 {
		t.Errorf("validate without -f: exit %d, want 1", code)
	}
	if code, _, errOut := runValidate(t, "", "-f", "does-not-exist.yaml"); code != 1 || !strings.Contains(errOut, "does-not-exist.yaml: stat does-not-exist.yaml: no such file or directory") {
		t.Errorf("validate of a missing file: exit %d, stderr %q", code, errOut)
	}
}

// TestValidateThenPlan: what `hutch validate` accepts, `hutch plan` plans.
// Every manifest of manifests/ and spec/testdata/good goes through both
// verbs, planned against an empty host under a temporary state root; a
// manifest naming a seccomp profile file this host lacks is left to plan's
// tests (plan reads the profile, validate does not).
func TestValidateThenPlan(t *testing.T) {
	var files []string
	for _, pat := range []string{"../../manifests/*.yaml", "../../spec/testdata/good/*.yaml"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	if len(files) < 12 {
		t.Fatalf("found %d manifests", len(files))
	}
	root := t.TempDir()
	planned := 0
	for _, f := range files {
		if code, _, errOut := runValidate(t, "", "-f", f); code != 0 {
			t.Errorf("validate %s: exit %d\n%s", f, code, errOut)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "seccomp: /") {
			continue
		}
		if code, out := runOn(t, emptyHost(), "--root", root, "plan", "-f", f); code != 2 {
			t.Errorf("plan %s after validate: exit %d, want 2 (changes against an empty host)\n%s", f, code, out)
		}
		planned++
	}
	if planned < len(files)-1 {
		t.Errorf("planned %d of %d manifests", planned, len(files))
	}
}
