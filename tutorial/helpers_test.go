//go:build linux

package tutorial

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"hutch/internal/testutil"
)

var hutchBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunWithHutch(m, &hutchBin))
}

// lab is one test's copy of the seed's web server with unique names and a
// unique 172.16.x.0/24, and a temporary state root (testutil.Lab).
type lab struct {
	*testutil.Lab
}

func newLab(t *testing.T) *lab {
	t.Helper()
	return &lab{testutil.NewLab(t, testutil.LabOptions{Prefix: "t"})}
}

// cgroupFile reads one number-per-line cgroup file of the lab's container.
func (l *lab) cgroupFile(ctrl, file string) string {
	l.T.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, "hutch", l.Name, file))
	if err != nil {
		l.T.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (l *lab) cgroupInt(ctrl, file string) uint64 {
	l.T.Helper()
	n, err := strconv.ParseUint(l.cgroupFile(ctrl, file), 10, 64)
	if err != nil {
		l.T.Fatalf("%s/%s: %v", ctrl, file, err)
	}
	return n
}

// keyed reads a "key value" cgroup file (cpu.stat, memory.oom_control).
func (l *lab) keyed(ctrl, file, key string) uint64 {
	l.T.Helper()
	for _, line := range strings.Split(l.cgroupFile(ctrl, file), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	l.T.Fatalf("%s/%s: no %s", ctrl, file, key)
	return 0
}

// inode is a file's inode number.
func inode(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
