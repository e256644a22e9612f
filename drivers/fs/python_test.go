//go:build linux

package fs

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hutch/plan"
)

// hostPythons are the interpreters of this machine the tests compare with:
// Debian's, and pyenv's versions where pyenv is installed.
func hostPythons(t *testing.T) []string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("/usr/bin/python3 is needed (scripts/deps.sh installs python3)")
		}
		t.Skip("no /usr/bin/python3")
	}
	out := []string{"/usr/bin/python3"}
	for _, pat := range []string{"/root/.pyenv/versions/*/bin/python3", "/root/.pyenv/versions/*/bin/python"} {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}

// The folders hutch reads are the ones the interpreter reports when it is
// asked (the test asks it; hutch never does).
func TestPythonFoundByReadingMatchesItsAnswer(t *testing.T) {
	const query = `import sys, sysconfig, json
p = sysconfig.get_paths()
print(json.dumps({"executable": sys.executable, "stdlib": p["stdlib"], "platstdlib": p["platstdlib"],
 "dynload": [x for x in sys.path if x.endswith("lib-dynload")], "version": "%d.%d" % sys.version_info[:2]}))`
	for _, py := range hostPythons(t) {
		out, err := exec.Command(py, "-E", "-s", "-c", query).Output()
		if err != nil {
			t.Fatalf("%s: %v", py, err)
		}
		var want struct {
			Executable, Stdlib, Platstdlib, Version string
			Dynload                                 []string
		}
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatalf("%s: %v: %s", py, err, out)
		}
		got, err := newResolver().findPython(py)
		if err != nil {
			t.Fatalf("%s: %v", py, err)
		}
		if got.Executable != want.Executable || got.Stdlib != want.Stdlib || got.PlatStdlib != want.Platstdlib ||
			got.Version != want.Version || !slices.Equal(got.Dynload, want.Dynload) {
			t.Errorf("%s: read %+v, the interpreter says %+v", py, *got, want)
		}
	}
}

// A venv whose interpreter is a copy finds its base installation through
// pyvenv.cfg, as python does; a copy without one has no standard library.
func TestPythonVenvCopy(t *testing.T) {
	hostPythons(t)
	real, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := newResolver().findPython("/usr/bin/python3")
	venv := t.TempDir()
	bin := filepath.Join(venv, "bin")
	os.Mkdir(bin, 0o755)
	b, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(bin, filepath.Base(real))
	if err := os.WriteFile(py, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := newResolver().findPython(py); err == nil || !strings.Contains(err.Error(), "no standard library") {
		t.Fatalf("a copied interpreter without its library: %v, want no standard library", err)
	}
	// A pyvenv.cfg cannot make / or /etc the standard library.
	for _, home := range []string{"/", "/etc"} {
		os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = "+home+"\n"), 0o644)
		if pi, err := newResolver().findPython(py); err == nil {
			t.Fatalf("home = %s: standard library %s, want none", home, pi.Stdlib)
		}
	}
	os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = /usr/bin\ninclude-system-site-packages = false\n"), 0o644)
	got, err := newResolver().findPython(py)
	if err != nil {
		t.Fatal(err)
	}
	if got.Executable != py || got.Stdlib != base.Stdlib || !slices.Equal(got.Dynload, base.Dynload) {
		t.Fatalf("venv copy: %+v, want %s with the folders of %+v", *got, py, *base)
	}
}

// markerScript writes an executable script at p that, when run, makes the
// file marker.
func markerScript(t *testing.T, p, marker string) {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\ntouch %s\nexec /usr/bin/python3 \"$@\"\n", strconv.Quote(marker))
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every path under dir with its type, size and mtime
// (nothing when dir does not exist).
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	return out
}

// No recipe makes the driver run a program: a python field naming a
// script, a script reached by name on PATH before the real interpreter (a
// pyenv shim), and a script among the binaries whose name starts with
// python are refused, by the read-only driver of `hutch plan` and by the
// one of apply alike, and the script never runs. The read-only driver
// writes nothing under its state root.
func TestNoProgramOfTheRecipeRuns(t *testing.T) {
	hostPythons(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	pyenv := filepath.Join(dir, "pyenv")
	shims := filepath.Join(pyenv, "shims")
	version := filepath.Join(pyenv, "versions", "3.11.7", "bin")
	for _, d := range []string{shims, version} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	markerScript(t, filepath.Join(shims, "python3"), marker)
	markerScript(t, filepath.Join(dir, "python3"), marker)
	markerScript(t, filepath.Join(dir, "python-tool"), marker)
	os.Symlink("/usr/bin/python3", filepath.Join(version, "python3"))

	sr := filepath.Join(dir, "state")
	recipes := map[string]*plan.Rootfs{
		"python script": {Python: filepath.Join(dir, "python3")},
		"python shim":   {Python: "python3"},
		"binary script": {Binaries: []string{"/bin/ls", filepath.Join(dir, "python-tool")}},
	}
	wants := map[string][]string{
		"python script": {"is a script", "#!", "/usr/bin/python3", "never runs"},
		"python shim":   {"is a script", filepath.Join(version, "python3"), "pyenv which python3"},
		"binary script": {"is a script", "python field", "/usr/bin/python3"},
	}
	for name, rf := range recipes {
		rf.Container = "t"
		rf.Bundle = filepath.Join(sr, "containers", "t")
		for _, mode := range []string{"plan", "apply"} {
			d := New(sr)
			if mode == "plan" {
				d = NewReadOnly(sr)
			}
			d.res.pathEnv = shims + ":/usr/bin:/bin"
			before := snapshot(t, sr)
			want := *rf
			if _, err := d.Observe(context.Background(), &want); err != nil {
				t.Fatalf("%s, %s: observe: %v", name, mode, err)
			}
			if want.Layer != "" {
				t.Errorf("%s, %s: the recipe resolved to %s", name, mode, want.Layer)
			}
			_, err := d.Files(context.Background(), rf)
			if err == nil {
				t.Fatalf("%s, %s: Files resolved the recipe", name, mode)
			}
			for _, w := range wants[name] {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s, %s: %v: want it to say %q", name, mode, err, w)
				}
			}
			if mode == "plan" {
				if after := snapshot(t, sr); !slices.Equal(before, after) {
					t.Errorf("%s: the read-only driver wrote under the state root:\nbefore %q\nafter  %q", name, before, after)
				}
			} else if err := d.Apply(context.Background(), &plan.Change{After: &want}); err == nil {
				t.Errorf("%s: apply of a script recipe succeeded", name)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("%s, %s: the script ran", name, mode)
			}
		}
	}
}

// The driver package starts no program at all: no os/exec, no
// os.StartProcess, syscall.ForkExec or exec(2) in its code.
func TestDriverStartsNoProgram(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == `"os/exec"` {
				t.Errorf("%s imports os/exec", name)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				switch sel.Sel.Name {
				case "StartProcess", "ForkExec", "Exec", "Execve", "Execveat", "CommandContext", "Command":
					t.Errorf("%s calls %s", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
}

// The read-only driver gives the digest a writing one gives, from a kept
// resolution or by resolving again, and never writes the kept resolution;
// its writing methods refuse.
func TestReadOnlyDriverWritesNothing(t *testing.T) {
	hostPythons(t)
	sr := t.TempDir()
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	os.WriteFile(conf, []byte("one"), 0o644)
	rf := webserver(sr, "ro")
	rf.Copies = []plan.Copy{{From: conf, To: "/etc/conf"}}
	time.Sleep(2 * racyMargin) // the copied file must not be racily clean

	observe := func(d *Driver) string {
		t.Helper()
		want := *rf
		got, err := d.Observe(context.Background(), &want)
		if err != nil || got != nil {
			t.Fatalf("observe: %v %v, want absent", got, err)
		}
		return want.Layer
	}
	full := fullDigest(t, rf)
	if got := observe(NewReadOnly(sr)); got != full {
		t.Fatalf("read-only, nothing kept: %s, want %s", got, full)
	}
	if s := snapshot(t, sr); len(s) != 1 {
		t.Fatalf("the read-only driver wrote under the state root: %q", s)
	}
	if got := observe(New(sr)); got != full {
		t.Fatalf("writing driver: %s, want %s", got, full)
	}
	kept := newResolver().keptFileIn(sr, rf)
	if _, err := readKept(kept); err != nil {
		t.Fatalf("the writing driver kept nothing: %v", err)
	}
	before := snapshot(t, sr)
	if got := observe(NewReadOnly(sr)); got != full {
		t.Fatalf("read-only, kept: %s, want %s", got, full)
	}
	// A stale kept resolution: read-only resolves again and keeps nothing.
	os.Chtimes(conf, time.Now(), time.Now().Add(time.Second))
	time.Sleep(2 * racyMargin) // so that a writing driver would keep it
	full = fullDigest(t, rf)
	if got := observe(NewReadOnly(sr)); got != full {
		t.Fatalf("read-only, stale: %s, want %s", got, full)
	}
	if _, err := NewReadOnly(sr).Files(context.Background(), rf); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, sr); !slices.Equal(before, after) {
		t.Fatalf("the read-only driver wrote under the state root:\nbefore %q\nafter  %q", before, after)
	}
	ro := NewReadOnly(sr)
	want := *rf
	want.Layer = full
	for op, err := range map[string]error{
		"apply":  ro.Apply(context.Background(), &plan.Change{After: &want}),
		"delete": ro.Delete(context.Background(), rf),
		"export": ro.Export(context.Background(), rf, filepath.Join(dir, "export")),
	} {
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s on the read-only driver: %v", op, err)
		}
	}
	if _, err := ro.GC(nil); err == nil {
		t.Error("gc on the read-only driver: no error")
	}
	if after := snapshot(t, sr); !slices.Equal(before, after) {
		t.Fatalf("the read-only driver's refusals wrote:\nbefore %q\nafter  %q", before, after)
	}
}
