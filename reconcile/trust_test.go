package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"hutch/plan"
)

// The state root is checked before it is trusted: a symlink, a folder
// another user owns, or one that group or others may write is refused; a
// missing one is made 0700 (or left missing, for plan).
func TestCheckRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the state root must be root's: run as root")
	}
	base := t.TempDir()
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk("good", 0o700, 0)
	link := filepath.Join(base, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, root string
		create     bool
		err        string // "" = accepted
	}{
		{"root's 0700", good, true, ""},
		{"root's 0755", mk("shared", 0o755, 0), true, ""},
		{"trailing slash", good + "/", true, ""},
		{"a symlink to a good root", link, true, "is a symlink"},
		{"a symlink, trailing slash", link + "/", true, "is a symlink"},
		{"owned by uid 1000", mk("user", 0o700, 1000), true, "owned by uid 1000, not by root"},
		{"0777", mk("open", 0o777, 0), true, "mode 0777 is writable by group or others"},
		{"group-writable", mk("group", 0o770, 0), true, "mode 0770 is writable by group or others"},
		{"sticky 1777", mk("sticky", 0o1777, 0), true, "writable by group or others"},
		{"a file", file, true, "not a folder"},
		{"missing, plan", filepath.Join(base, "none"), false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckRoot(c.root, c.create)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Errorf("CheckRoot(%s) = %v; want %q", c.root, err, c.err)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(base, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CheckRoot without create made the missing root: %v", err)
	}
	made := filepath.Join(base, "new", "root")
	if err := CheckRoot(made, true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(made); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the missing root made as %v, %v; want a folder 0700 of root", fi.Mode(), err)
	}
}

// writeState writes a container's state.json by hand, as someone editing
// the store would.
func writeState(t *testing.T, s *Store, st *State) {
	t.Helper()
	if err := os.MkdirAll(s.Dir(st.Container), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.statePath(st.Container), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func record(t *testing.T, r plan.Resource) Record {
	t.Helper()
	v, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return Record{ID: r.ID(), Kind: r.Kind(), Status: StatusDone, Value: v}
}

// A record whose paths are not the ones worked out from its container's
// name (a bundle folder elsewhere, a cgroup of another container), or
// that is owned by another container, makes the whole state refused: no
// driver is asked to delete anything, and the folder it names keeps its
// files.
func TestLoadRefusesRecordsThatDisagree(t *testing.T) {
	e := newEnv(t)
	elsewhere := t.TempDir()
	marker := filepath.Join(elsewhere, "rootfs", "marker")
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := e.r.Store.Dir("web")
	for _, c := range []struct {
		name string
		rec  plan.Resource
		want string
	}{
		{"rootfs bundle elsewhere", &plan.Rootfs{Container: "web", Bundle: elsewhere}, `names "` + elsewhere + `"`},
		{"process bundle elsewhere", &plan.Process{Container: "web", Bundle: elsewhere}, `names "` + elsewhere + `"`},
		{"process bundle with ..", &plan.Process{Container: "web", Bundle: good + "/../../x"}, "names"},
		{"cgroup of another", &plan.Cgroup{Container: "web", Path: "hutch/db"}, `names "hutch/db"`},
		{"cgroup outside hutch's", &plan.Cgroup{Container: "web", Path: "system.slice/web"}, "names"},
		{"owned by another", &plan.Netns{Container: "db", Name: "db_ns"}, `owned by "db"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			writeState(t, e.r.Store, &State{Version: StateVersion, Container: "web", Resources: []Record{record(t, c.rec)}})
			_, err := e.r.Store.Load("web")
			if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load = %v; want a refusal saying %q", err, c.want)
			}
			e.host.reset()
			if err := e.r.Delete(context.Background(), []string{"web"}, false); err == nil {
				t.Errorf("Delete of a refused state succeeded\n%s", e.out.String())
			}
			for _, call := range e.host.calls {
				if strings.HasPrefix(call, "delete ") {
					t.Errorf("Delete called the drivers: %s", call)
				}
			}
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("the marker in the folder the record names: %v", err)
			}
			if _, err := os.Stat(e.r.Store.statePath("web")); err != nil {
				t.Errorf("the refused state is gone: %v", err)
			}
		})
	}
	// The same state with the paths hutch works out is read.
	cg := &plan.Cgroup{Container: "web", Path: "hutch/web"}
	writeState(t, e.r.Store, &State{Version: StateVersion, Container: "web", Resources: []Record{
		record(t, &plan.Rootfs{Container: "web", Bundle: good}), record(t, &plan.Process{Container: "web", Bundle: good}), record(t, cg)}})
	if _, err := e.r.Store.Load("web"); err != nil {
		t.Fatal(err)
	}
}

// A name that is no container's never reaches a path: Load, Lock, Remove
// and Delete refuse it, and nothing is made under the state root or
// outside it.
func TestStoreRefusesBadNames(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(filepath.Dir(e.root), "outside")
	for _, name := range []string{"../outside", "..", ".", "", "a/b", "Web", "-web", strings.Repeat("a", 64), "web\x00"} {
		if _, err := e.r.Store.Load(name); err == nil || !strings.Contains(err.Error(), "not a container name") {
			t.Errorf("Load(%q) = %v", name, err)
		}
		if l, err := e.r.Store.Lock(name, true, nil); err == nil || !strings.Contains(err.Error(), "not a container name") {
			l.Unlock()
			t.Errorf("Lock(%q) = %v", name, err)
		}
		if err := e.r.Store.Remove(name); err == nil {
			t.Errorf("Remove(%q) succeeded", name)
		}
		if err := e.r.Delete(context.Background(), []string{name}, true); err == nil || !strings.Contains(err.Error(), "not a container name") {
			t.Errorf("Delete(%q) = %v", name, err)
		}
	}
	if ents, _ := os.ReadDir(e.root); len(ents) != 0 {
		t.Errorf("the state root holds %v", ents)
	}
	if _, err := os.Lstat(outside + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a lock file outside the state root: %v", err)
	}
}

// Symlinks planted in the state root are never followed: a lock file that
// is a symlink makes Lock fail without creating or opening its target,
// and a container folder that is a symlink is neither read nor emptied.
func TestStoreFollowsNoSymlink(t *testing.T) {
	e := newEnv(t)
	s := e.r.Store
	outside := t.TempDir()
	target := filepath.Join(outside, "target")
	if err := os.MkdirAll(filepath.Join(e.root, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, s.lockPath("web")); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Lock("web", true, nil); err == nil || !strings.Contains(err.Error(), "symlink") {
		l.Unlock()
		t.Errorf("Lock through a symlink = %v; want a refusal", err)
	}
	if err := e.r.Delete(context.Background(), []string{"web"}, true); err != nil && !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Delete: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock symlink's target was created: %v", err)
	}
	if err := os.Remove(s.lockPath("web")); err != nil {
		t.Fatal(err)
	}
	// The locks folder itself a symlink.
	if err := os.Remove(filepath.Join(e.root, "locks")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.root, "locks")); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Lock("web", true, nil); err == nil || !strings.Contains(err.Error(), "not a folder") {
		l.Unlock()
		t.Errorf("Lock in a symlinked locks folder = %v; want a refusal", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "web.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a lock file was made through the symlinked folder: %v", err)
	}

	// A container folder that is a symlink to a folder with a state.json.
	elsewhere := t.TempDir()
	marker := filepath.Join(elsewhere, "marker")
	if err := os.WriteFile(marker, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(&State{Version: StateVersion, Container: "db"})
	if err := os.WriteFile(filepath.Join(elsewhere, "state.json"), st, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.root, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, s.Dir("db")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("db"); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("Load through a symlinked folder = %v; want a refusal", err)
	}
	if err := s.Remove("db"); err == nil {
		t.Error("Remove through a symlinked folder succeeded")
	}
	if err := s.Save(&State{Version: StateVersion, Container: "db"}); err == nil {
		t.Error("Save through a symlinked folder succeeded")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the marker behind the symlink: %v", err)
	}
	if names, _ := s.Containers(); len(names) != 0 {
		t.Errorf("Containers = %q; a symlink is no container folder", names)
	}
	// state.json itself a symlink.
	if err := os.Remove(s.Dir("db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.Dir("db"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "state.json"), s.statePath("db")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("db"); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Load of a symlinked state.json = %v; want a refusal", err)
	}
}
