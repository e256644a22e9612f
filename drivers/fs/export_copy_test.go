//go:build linux

package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestExportCopyFileLeavesTheSourceToItsCaller: copyFile (the export's
// copy of every file, and the unpacker's copy-up of a hard link) never
// closes the source descriptor its caller owns, not even later from a
// finalizer: a descriptor closed twice is, the second time, whatever file
// took its number (here the merge failed with EBADF on a folder's
// descriptor once the garbage collector had run).
func TestExportCopyFileLeavesTheSourceToItsCaller(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	pfd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	for i := range 20 {
		fd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = copyFile(fd, pfd, fmt.Sprintf("copy%d", i))
		unix.Close(fd) // the caller's close
		if err != nil {
			t.Fatal(err)
		}
	}
	// The numbers the sources had are taken again, then the collector
	// and the finalizers run.
	var held []int
	for range 20 {
		fd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, fd)
	}
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	for _, fd := range held {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Errorf("descriptor %d, opened after the copies: %v: a copy closed it", fd, err)
			continue
		}
		unix.Close(fd)
	}
}
