//go:build linux

package process

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
)

// listTree names every file and folder below dir (relative), sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// A mount target whose parent is a symlink (absolute, to a host folder) is
// made and mounted inside the rootfs, where the symlink leads when the
// rootfs is /: nothing appears in the host folder and no mount is made
// there, in the host's mount table or the container's.
func TestMountTargetThroughSymlinkStaysInRootfs(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("from the volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(srcFile, []byte("one file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{
		rootfs: func(rootfs string) {
			for _, l := range []string{"data", "etc2", "scratch"} {
				if err := os.Symlink(outside, filepath.Join(rootfs, l)); err != nil {
					t.Fatal(err)
				}
			}
		},
		spec: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/data/vol", Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/etc2/sub/file", Type: "bind", Source: srcFile, Options: []string{"bind"}},
				specs.Mount{Destination: "/scratch/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "size=1m"}},
			)
		},
	})
	c.start()
	if got := listTree(t, outside); len(got) != 0 {
		t.Errorf("the container's start made %v in the host folder %s", got, outside)
	}
	hostMounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(hostMounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], outside) {
			t.Errorf("a mount at the host folder: %s", line)
		}
	}
	inside := c.mustExec("cat", "/proc/1/mountinfo")
	// Inside, the symlinks lead to the same path in the rootfs, and the
	// mounts are there.
	for path, want := range map[string]string{"/data/vol/hello": "from the volume\n", "/etc2/sub/file": "one file\n"} {
		if out := c.mustExec("cat", path); out != want {
			t.Errorf("cat %s inside: %q, want %q", path, out, want)
		}
	}
	for _, mp := range []string{outside + "/vol", outside + "/sub/file", outside + "/tmp"} {
		if !strings.Contains(inside, " "+mp+" ") {
			t.Errorf("no mount at %s inside:\n%s", mp, inside)
		}
	}
	if got := listTree(t, outside); len(got) != 0 {
		t.Errorf("the host folder %s now holds %v", outside, got)
	}
}

// The race of CVE-2024-45310: while the targets are made, a folder on
// their way is swapped, again and again, with a symlink to a host folder
// (renameat2 RENAME_EXCHANGE, as a process of the container could). A
// target resolved to a path first and created by that path afterwards
// lands in the host folder in a few hundred tries; made through
// descriptors, never.
func TestMountTargetRaceStaysInRootfs(t *testing.T) {
	testutil.RequireRoot(t) // CI runs this package as root; the race needs none
	base := t.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(rootfs, "a"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(rootfs, "swap")); err != nil {
		t.Fatal(err)
	}
	root, err := openRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		a, s := filepath.Join(rootfs, "a"), filepath.Join(rootfs, "swap")
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, s, unix.RENAME_EXCHANGE)
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	tries := 0
	for ; time.Now().Before(deadline) && tries < 20000; tries++ {
		for _, tc := range []struct {
			dest string
			file bool
		}{{"/a/d1/d2", false}, {"/a/f1/file", true}} {
			if f, err := target(root, tc.dest, tc.file); err == nil {
				f.Close()
			}
		}
		if got := listTree(t, outside); len(got) != 0 {
			close(stop)
			<-done
			t.Fatalf("after %d tries the host folder holds %v", tries+1, got)
		}
		// Start again from an empty folder, whichever name it has now.
		for _, n := range []string{"a", "swap"} {
			p := filepath.Join(rootfs, n)
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				for _, e := range []string{"d1", "f1"} {
					os.RemoveAll(filepath.Join(p, e))
				}
			}
		}
	}
	close(stop)
	<-done
	t.Logf("%d tries, the host folder untouched", tries)
}

// The init marks every descriptor but 0-2 close-on-exec with close_range(2)
// and needs no /proc for it: a container whose config mounts no /proc
// starts, and its process holds only 0, 1 and 2, although hutch's own
// descriptors (the sealed binary, the error pipe) and one the caller
// holds without O_CLOEXEC, far up, were there.
func TestInitClosesDescriptorsWithoutProc(t *testing.T) {
	tmp, err := syscall.Open(t.TempDir(), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(tmp)
	const high = 900
	if err := syscall.Dup3(tmp, high, 0); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(high)
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{spec: func(s *specs.Spec) {
		var ms []specs.Mount
		for _, m := range s.Mounts {
			if m.Destination != "/proc" {
				ms = append(ms, m)
			}
		}
		s.Mounts = ms
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}})
	c.start()
	pid := c.state().PID
	ents, err := os.ReadDir("/proc/" + itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		fds = append(fds, e.Name())
	}
	if strings.Join(fds, " ") != "0 1 2" {
		t.Errorf("the container's process holds descriptors %v, want 0 1 2", fds)
	}
	if out := c.mustExec("ls", "/proc"); out != "" {
		t.Errorf("/proc inside is not the empty folder of the rootfs: %q", out)
	}
}
