//go:build linux

package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hutch binary runs itself again for each stage of a container's life;
// the stage is named in the environment (protocol.go).

func init() {
	// The init and exec stages change per-thread kernel state (capabilities,
	// the bounding set, securebits, the seccomp filter, the cgroup namespace)
	// and then execve(2) from the same thread, which keeps only that thread.
	// Package init functions run on the main thread; locking here keeps the
	// main goroutine on it until the exec.
	switch os.Getenv(envStage) {
	case stageInit, stageExec, stageHealth:
		runtime.LockOSThread()
	}
}

// CgroupFactory returns the cgroup driver the supervisor uses to place a
// container's process in its cgroup, for cgroups made under parent (the
// container's cgroup path without its last element).
type CgroupFactory func(parent string) (CgroupJoiner, error)

// Reexec runs the stage of a container that this process was started for,
// when it was started as one, and then returns true; the stages that end in
// execve(2) of the workload never return. It returns false at once in an
// ordinary hutch command. Call it first thing in main, before any flag
// parsing:
//
//	if processdrv.Reexec(newCgroup) { return }
func Reexec(newCgroup CgroupFactory) bool {
	stage := os.Getenv(envStage)
	if stage == "" {
		return false
	}
	// Executed from /proc/self/fd/3 (the sealed copy), a stage would be
	// named "3" in ps; PR_SET_NAME names it after its stage.
	if name, err := unix.BytePtrFromString("hutch-" + stage); err == nil {
		unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0, 0)
	}
	switch stage {
	case stageSpawn, stageSupervisor:
		// supervisor.c's constructor runs these stages before the Go
		// runtime starts; only a binary built without cgo gets here, and
		// Start refuses in one.
		fmt.Fprintf(os.Stderr, "hutch: stage %s: this hutch was built without cgo, and its supervisor is C\n", stage)
		os.Exit(1)
	case stageCgroupKill:
		os.Exit(cgroupKillMain(newCgroup))
	case stageInit:
		initMain()
	case stageExec:
		execMain()
	case stageHealth:
		healthExecMain()
	default:
		fmt.Fprintf(os.Stderr, "hutch: unknown stage %q\n", stage)
		os.Exit(1)
	}
	return true
}

// sealedSelf copies the running binary into a sealed memfd. The container's
// init is executed from this copy, so /proc/PID/exe of a process inside the
// container never leads to the hutch binary on disk: the copy lives only in
// memory and its seals (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK,
// F_SEAL_SEAL) make every write fail, as runc does since CVE-2019-5736.
//
// First choice, as runc does since 1.2: no copy at all. The binary is
// opened through a private, read-only overlayfs mount that is never
// attached to any mount table (fsopen(2), fsconfig(2), fsmount(2)): its
// lower layers are the binary's folder and an empty tmpfs (an overlay
// without an upper layer needs two), it has no upper layer, so every write
// through it fails with EROFS, and as it is in no mount namespace no one
// can remount it. /proc/PID/exe of the init leads to that file. Copying the
// 12 MiB binary into a memfd cost 4-7 ms of every start (and 12 MiB of
// memory until the init execs); this costs a few system calls. On a
// kernel without the new mount API or overlayfs, or when the file at the
// binary's path is no longer the running binary, the sealed memfd copy is
// made as before.
func sealedSelf() (*os.File, error) {
	if f, err := overlaySelf(); err == nil {
		return f, nil
	}
	return memfdSelf()
}

// overlaySelf opens the running binary through a detached read-only
// overlay (see sealedSelf).
func overlaySelf() (*os.File, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return nil, err
	}
	dir, base := filepath.Split(exe)
	dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirfd)
	// The empty second lower layer: a detached tmpfs.
	tfs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(tfs)
	if err := unix.FsconfigCreate(tfs); err != nil {
		return nil, err
	}
	empty, err := unix.Fsmount(tfs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(empty)
	ofs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ofs)
	if err := unix.FsconfigSetFd(ofs, "lowerdir+", dirfd); err != nil {
		return nil, err
	}
	if err := unix.FsconfigSetFd(ofs, "lowerdir+", empty); err != nil {
		return nil, err
	}
	if err := unix.FsconfigCreate(ofs); err != nil {
		return nil, err
	}
	mnt, err := unix.Fsmount(ofs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return nil, err
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, base, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	// The file at the path must still be the running binary (a rebuild
	// renames a new one into place).
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil || got.Ino != self.Ino || got.Size != self.Size || got.Mtim != self.Mtim {
		unix.Close(fd)
		return nil, fmt.Errorf("sealed copy of hutch: %s is not the running binary", exe)
	}
	return os.NewFile(uintptr(fd), "overlay:"+exe), nil
}

// memfdSelf copies the running binary into a sealed memfd.
func memfdSelf() (*os.File, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("sealed copy of hutch: %w", err)
	}
	defer self.Close()
	fd, err := unix.MemfdCreate("hutch", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("sealed copy of hutch: memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "memfd:hutch")
	// A plain read/write copy: io.Copy would use sendfile(2), whose page
	// references can still be held when the seals go on, and F_SEAL_WRITE
	// then fails with EBUSY.
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(struct{ io.Writer }{mem}, struct{ io.Reader }{self}, buf); err != nil {
		mem.Close()
		return nil, fmt.Errorf("sealed copy of hutch: copy: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	for try := 0; ; try++ {
		_, err = unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, seals)
		if err == nil {
			return mem, nil
		}
		if !errors.Is(err, unix.EBUSY) || try == 50 {
			mem.Close()
			return nil, fmt.Errorf("sealed copy of hutch: add seals: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fail writes the error of a stage to w (the parent's error pipe) and to
// stderr when w is nil, and exits.
func fail(w io.Writer, err error) {
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "%v", err)
	os.Exit(1)
}
