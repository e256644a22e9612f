//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// watchOOM returns a channel that receives when the OOM kill count in the
// cgroup file (v1 memory.oom_control, v2 memory.events) may have risen, so
// that the Go supervisor reports an OOM kill of any of the container's
// processes when it happens, not only at the end of the run (sup_oom_watch
// in supervisor.c does the same for the C supervisor):
//   - cgroup v2: an inotify(7) watch of memory.events, whose changes the
//     kernel notifies as IN_MODIFY (cgroup_file_notify);
//   - cgroup v1: an eventfd(2) registered in the cgroup's
//     cgroup.event_control for memory.oom_control, which the kernel
//     signals when the cgroup is out of memory, before the OOM killer
//     counts its kill: recheck says to read the count again a little later.
//
// The descriptors are non-blocking and read through the runtime's poller:
// no thread waits on them. A nil channel: no notification (no memory
// controller, or the kernel refuses), the count is read at each exit only.
func watchOOM(file string) (ch <-chan struct{}, recheck bool) {
	if file == "" {
		return nil, false
	}
	var f *os.File
	if filepath.Base(file) == "memory.events" {
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			return nil, false
		}
		if _, err := unix.InotifyAddWatch(fd, file, unix.IN_MODIFY); err != nil {
			unix.Close(fd)
			return nil, false
		}
		f = os.NewFile(uintptr(fd), "inotify "+file)
	} else {
		efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return nil, false
		}
		ofd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			ctl := filepath.Join(filepath.Dir(file), "cgroup.event_control")
			err = os.WriteFile(ctl, []byte(strconv.Itoa(efd)+" "+strconv.Itoa(ofd)), 0)
			unix.Close(ofd) // the registration keeps what it needs
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "supervisor: watch OOM kills: %v\n", err)
			unix.Close(efd)
			return nil, false
		}
		f, recheck = os.NewFile(uintptr(efd), "eventfd "+file), true
	}
	c := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case c <- struct{}{}:
			default: // one pending is enough: the count is read then
			}
		}
	}()
	return c, recheck
}
