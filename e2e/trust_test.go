package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"hutch/internal/testutil"
)

// TestApplyRefusesObjectsMarkedForAnotherContainer applies the web server
// in one state root, then, from another state root, a container of another
// name that wants the same network namespace and veth names. The marks say
// whose they are: the second apply is a conflict naming the namespace, the
// veth and their container, and changes nothing (before, it rewrote the
// marks and took both over); the first container keeps serving, and a
// delete of the second from its root removes nothing.
func TestApplyRefusesObjectsMarkedForAnotherContainer(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	before := l.Leftovers()

	// A copy of the lab itself, not of the pointer to it: the first
	// container must keep its own name and root.
	ol := *l.Lab
	other := &lab{&ol}
	other.Root = t.TempDir()
	other.Name = testutil.Name("hw")
	other.Port = 0
	other.Manifest = filepath.Join(t.TempDir(), "other.yaml")
	other.Write(other.Manifest, nil)
	t.Cleanup(other.Cleanup)

	code, out := other.Hutch("apply", "-f", other.Manifest)
	if code == 0 {
		t.Fatalf("apply of %s over %s's objects succeeded:\n%s", other.Name, l.Name, out)
	}
	for _, want := range []string{
		"netns " + l.Netns + ": marked for another container: it is container " + l.Name + "'s",
		"host end " + l.HostIf + ": marked for another container: it is container " + l.Name + "'s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if after := l.Leftovers(); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("host changed:\nbefore %q\nafter %q", before, after)
	}
	var mounts []string // the netns is the first container's
	for _, m := range other.Mounts() {
		if strings.Contains(m, other.Bundle()) {
			mounts = append(mounts, m)
		}
	}
	if len(other.CgroupDirs())+len(other.Procs())+len(mounts) != 0 {
		t.Errorf("the refused apply made: cgroups %q, processes %q, mounts %q", other.CgroupDirs(), other.Procs(), mounts)
	}
	l.Serving()

	if code, out := other.Hutch("delete", other.Name); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("delete of %s: exit %d, want not found\n%s", other.Name, code, out)
	}
	if after := l.Leftovers(); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("host changed by the other delete:\nbefore %q\nafter %q", before, after)
	}
	l.Serving()
	l.Must("delete", l.Name)
	l.Gone()
}
