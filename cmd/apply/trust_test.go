package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
	"hutch/reconcile"
)

// tree lists every path below dir with its size and mode, to tell that a
// command touched nothing there.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := os.Lstat(p)
		if err == nil {
			out[p] = fmt.Sprint(fi.Mode(), fi.ModTime(), fi.Size())
		}
		return nil
	})
	return out
}

// A NAME that is no container's is refused by every verb that takes one,
// before any path is made of it: `hutch exec ../outside` and the rest
// exit 1 naming the rule, print nothing of the folder the name leads to
// (ROOT/containers/../outside, with logs and a process.json), and leave
// the state root and that folder as they were.
func TestVerbsRefuseNamesThatAreNoContainers(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "logs", "container.log"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "process.json"), []byte(`{"container":"x","status":"exited"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: hutch/v1alpha1\nkind: Container\nmetadata:\n  name: ../outside\nspec:\n  process:\n    args: [sh]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := tree(t, root)
	for _, args := range [][]string{
		{"exec", "../outside", "--", "true"},
		{"exec", "../../../tmp/x", "--", "true"},
		{"logs", "../outside"},
		{"stop", "../outside"},
		{"stop", "web", "../outside"},
		{"get", "../outside"},
		{"delete", "../outside"},
		{"delete", "--ignore-not-found", ".."},
		{"delete", "-f", manifest},
		{"inspect", "../outside"},
		{"stats", "../outside"},
	} {
		var code int
		var out string
		errs := captureStderr(t, func() { code, out = runCmd(t, append([]string{"--root", root}, args...)...) })
		if code == 0 || !strings.Contains(errs, "is not a container name") || strings.Contains(out+errs, "secret") {
			t.Errorf("hutch %s: exit %d, stdout %q, stderr %q; want a refusal naming the rule", strings.Join(args, " "), code, out, errs)
		}
	}
	after := tree(t, root)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %q, then %q", p, v, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was made", p)
		}
	}
}

// A record whose bundle folder is not the one worked out from the
// container's name (state.json edited to name another folder) is refused
// by delete: the folder it names keeps its rootfs/ and logs/.
func TestDeleteRefusesARecordPointingElsewhere(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	elsewhere := t.TempDir()
	markers := []string{filepath.Join(elsewhere, "rootfs", "marker"), filepath.Join(elsewhere, "logs", "marker")}
	for _, m := range markers {
		if err := os.MkdirAll(filepath.Dir(m), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := testutil.Name("tr")
	var recs []reconcile.Record
	for _, r := range []plan.Resource{
		&plan.Rootfs{Container: name, Bundle: elsewhere},
		&plan.Process{Container: name, Bundle: elsewhere, StopTimeout: -1},
	} {
		v, _ := json.Marshal(r)
		recs = append(recs, reconcile.Record{ID: r.ID(), Kind: r.Kind(), Status: reconcile.StatusDone, Value: v})
	}
	st, _ := json.Marshal(&reconcile.State{Version: reconcile.StateVersion, Container: name, Resources: recs})
	dir := filepath.Join(root, "containers", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), st, 0o600); err != nil {
		t.Fatal(err)
	}
	var code int
	errs := captureStderr(t, func() { code, _ = runCmd(t, "--root", root, "delete", name) })
	if code == 0 || !strings.Contains(errs, "refused") || !strings.Contains(errs, elsewhere) {
		t.Errorf("hutch delete %s: exit %d, stderr %q; want the record refused", name, code, errs)
	}
	for _, m := range markers {
		if _, err := os.Stat(m); err != nil {
			t.Errorf("the folder the record names lost %s: %v", m, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Errorf("the refused state.json: %v", err)
	}
}

// The state root is checked before any verb reads it: a symlink, a folder
// of another user and a folder anyone may write are refused; a missing
// one is made 0700, except by plan, which writes nothing.
func TestStateRootChecked(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	good := filepath.Join(base, "good")
	if err := os.Mkdir(good, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(base, "user")
	if err := os.Mkdir(user, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(user, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ root, want string }{
		{link, "is a symlink"},
		{user, "owned by uid 1000, not by root"},
		{open, "mode 0777 is writable by group or others"},
	} {
		for _, args := range [][]string{{"get"}, {"delete", "web"}, {"gc"}, {"plan", "-f", "../../manifests/webserver.yaml"}} {
			var code int
			errs := captureStderr(t, func() { code, _ = runCmd(t, append([]string{"--root", c.root}, args...)...) })
			if code == 0 || !strings.Contains(errs, c.want) {
				t.Errorf("hutch --root %s %s: exit %d, stderr %q; want %q", c.root, strings.Join(args, " "), code, errs, c.want)
			}
		}
	}
	if code, _ := runCmd(t, "--root", good, "get"); code != 0 {
		t.Errorf("hutch get with a good root: exit %d", code)
	}
	missing := filepath.Join(base, "missing", "root")
	if code, _ := runCmd(t, "--root", missing, "plan", "-f", "../../manifests/webserver.yaml"); code == 1 {
		t.Errorf("hutch plan with a missing root: exit 1")
	}
	if _, err := os.Lstat(filepath.Join(base, "missing")); err == nil {
		t.Error("hutch plan made the missing state root")
	}
	if code, _ := runCmd(t, "--root", missing, "get"); code != 0 {
		t.Errorf("hutch get with a missing root: exit %d", code)
	}
	if fi, err := os.Lstat(missing); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("the missing root made as %v, %v; want a folder 0700", fi, err)
	}
}
