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
	l.apply()
	l.serving()
	before := l.leftovers()

	other := *l
	other.root = t.TempDir()
	other.name = testutil.Name("hw")
	other.port = 0
	other.manifest = filepath.Join(t.TempDir(), "other.yaml")
	other.write(other.manifest, nil)
	t.Cleanup(other.cleanup)

	code, out := other.hutch(nil, "apply", "-f", other.manifest)
	if code == 0 {
		t.Fatalf("apply of %s over %s's objects succeeded:\n%s", other.name, l.name, out)
	}
	for _, want := range []string{
		"netns " + l.netns + ": marked for another container: it is container " + l.name + "'s",
		"host end " + l.hostIf + ": marked for another container: it is container " + l.name + "'s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if after := l.leftovers(); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("host changed:\nbefore %q\nafter %q", before, after)
	}
	var mounts []string // the netns is the first container's
	for _, m := range other.mounts() {
		if strings.Contains(m, other.bundle()) {
			mounts = append(mounts, m)
		}
	}
	if len(other.cgroupDirs())+len(other.procs())+len(mounts) != 0 {
		t.Errorf("the refused apply made: cgroups %q, processes %q, mounts %q", other.cgroupDirs(), other.procs(), mounts)
	}
	l.serving()

	if code, out := other.hutch(nil, "delete", other.name); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("delete of %s: exit %d, want not found\n%s", other.name, code, out)
	}
	if after := l.leftovers(); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("host changed by the other delete:\nbefore %q\nafter %q", before, after)
	}
	l.serving()
	l.must("delete", l.name)
	l.gone()
}
