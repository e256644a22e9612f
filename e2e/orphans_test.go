//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"hutch/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// supervisorPids lists the pids whose command line is the lab's supervisor.
func (l *lab) supervisorPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Equal(cmd, []byte("hutch-supervisor\x00"+l.Name+"\x00")) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

// running says whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}

// TestDeleteFindsWhatALostStateRootLeft removes the whole state root of a
// running container with rm -rf, as a person would (the overlay stays
// mounted: its mount point is busy), and checks that `hutch delete NAME`
// still removes the netns, the veth, the cgroup, the mount and the
// processes, as the kernel reports them, while a namespace of the same name
// without hutch's mark (`ip netns add`) is left alone.
func TestDeleteFindsWhatALostStateRootLeft(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	pid := l.get().PID
	sups := l.supervisorPids()
	if pid <= 0 || len(sups) != 1 {
		t.Fatalf("container pid %d, supervisors %v: want one of each", pid, sups)
	}
	if len(l.CgroupDirs()) == 0 || len(l.Mounts()) == 0 || !testutil.LinkExists(l.HostIf) || !slices.Contains(testutil.NetnsList(), l.Netns) {
		t.Fatalf("apply left out something: %q", l.Leftovers())
	}
	// A namespace hutch did not make, called like the container: no mark.
	other := l.Name
	mustRun(t, "ip", "netns", "add", other)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", other).Run() })

	out, err := exec.Command("rm", "-rf", l.Root).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "busy") {
		t.Logf("rm -rf %s: %v %s", l.Root, err, out)
	}
	if _, err := os.Stat(filepath.Join(l.Bundle(), "state.json")); !os.IsNotExist(err) {
		t.Fatalf("state.json still there: %v", err)
	}

	got := l.Must("delete", l.Name)
	t.Logf("hutch delete %s:\n%s", l.Name, got)
	if !strings.Contains(got, "found on the host without a record in the state store") {
		t.Errorf("delete does not say what it found:\n%s", got)
	}
	for _, want := range []string{"netns/" + l.Netns, "veth/" + l.HostIf, "cgroup/" + l.Name, "rootfs/" + l.Name, "process/" + l.Name} {
		if !strings.Contains(got, want) {
			t.Errorf("delete found no %s:\n%s", want, got)
		}
	}
	if left := l.Leftovers(); len(left) > 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
	if running(pid) {
		t.Errorf("container process %d still runs", pid)
	}
	for _, s := range sups {
		if running(s) {
			t.Errorf("supervisor %d still runs", s)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mi, []byte(l.Root)) {
		t.Errorf("mountinfo still names %s", l.Root)
	}
	if !slices.Contains(testutil.NetnsList(), other) {
		t.Errorf("netns %s, which has no mark, was removed", other)
	}
	// Nothing left to find: a second delete knows no such container.
	if code, out := l.Hutch("delete", l.Name); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("second delete: exit %d\n%s", code, out)
	}
}

// TestDeleteLeavesANamesakeOfAnotherStateRoot applies a container in one
// state root and deletes its name from another, empty one: the objects
// marked for the name belong to the running container, so nothing is
// removed and the error names the root that has it.
func TestDeleteLeavesANamesakeOfAnotherStateRoot(t *testing.T) {
	l := newLab(t)
	l.Apply()
	before := l.Leftovers()
	otherRoot := t.TempDir()
	cmd := exec.Command(hutchBin, "--root", otherRoot, "delete", l.Name)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), l.Root) {
		t.Errorf("delete from %s: %v, want an error naming %s\n%s", otherRoot, err, l.Root, out)
	}
	after := l.Leftovers()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("host changed:\nbefore %q\nafter %q", before, after)
	}
	for _, p := range l.supervisorPids() {
		if err := syscall.Kill(p, 0); err != nil {
			t.Errorf("supervisor %d: %v", p, err)
		}
	}
	l.Must("delete", l.Name)
	l.Gone()
}
