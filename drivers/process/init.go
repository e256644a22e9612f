//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initMain is the container's init stage. It was cloned by the supervisor in
// new pid, mount, uts, ipc (and user) namespaces and in the container's
// network namespace; it waits until the supervisor has put it in the
// container's cgroup, builds the container's mount tree, pivots into it,
// drops privileges and execs the workload. Any error goes to the
// supervisor through the error pipe.
func initMain() {
	errw := os.NewFile(initFdError, "error pipe")
	cfg := os.NewFile(initFdConfig, "config pipe")
	var spec specs.Spec
	if err := json.NewDecoder(cfg).Decode(&spec); err != nil {
		fail(errw, fmt.Errorf("container init: read config: %w", err))
	}
	cfg.Close()
	sync := os.NewFile(initFdSync, "sync pipe")
	var b [1]byte
	if n, err := sync.Read(b[:]); n != 1 {
		fail(errw, fmt.Errorf("container init: wait for the supervisor: %v", err))
	}
	sync.Close()
	bundle := os.Getenv(envBundle)
	if err := containerInit(bundle, &spec); err != nil {
		fail(errw, fmt.Errorf("container init: %w", err))
	}
	if err := finishAndExec(spec.Process, seccompOf(&spec)); err != nil {
		fail(errw, fmt.Errorf("container init: %w", err))
	}
}

// loadSpec reads the bundle's config.json.
func loadSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, specFile))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read config %s: %w", filepath.Join(bundle, specFile), err)
	}
	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, fmt.Errorf("config %s: process.args is empty", filepath.Join(bundle, specFile))
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("config %s: root.path is empty", filepath.Join(bundle, specFile))
	}
	return &s, nil
}

func seccompOf(s *specs.Spec) *specs.LinuxSeccomp {
	if s.Linux == nil {
		return nil
	}
	return s.Linux.Seccomp
}

func hasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	if s.Linux == nil {
		return false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

func rootfsOf(bundle string, s *specs.Spec) string {
	if filepath.IsAbs(s.Root.Path) {
		return s.Root.Path
	}
	return filepath.Join(bundle, s.Root.Path)
}

// containerInit does everything of the init stage up to the privilege drop.
func containerInit(bundle string, s *specs.Spec) error {
	// A new cgroup namespace takes the caller's current cgroup as its root.
	// unshare(2) it now that the supervisor has moved us into the
	// container's cgroup, so that /proc/self/cgroup inside shows "/". It
	// applies to this thread only, the one that will execve.
	if hasNamespace(s, specs.CgroupNamespace) {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	rootfs := rootfsOf(bundle, s)
	if err := prepareRoot(rootfs, s); err != nil {
		return err
	}
	// Every mount target is resolved inside this handle of the rootfs
	// (the bind mount prepareRoot made), never by a path from the host's /.
	root, err := openRoot(rootfs)
	if err != nil {
		return err
	}
	userns := hasNamespace(s, specs.UserNamespace)
	for _, m := range s.Mounts {
		if err := mountInto(root, rootfs, m, userns); err != nil {
			root.Close()
			return err
		}
	}
	err = makeDevices(root, s, userns)
	root.Close()
	if err != nil {
		return err
	}
	if err := pivotRoot(rootfs); err != nil {
		return err
	}
	if s.Root.Readonly {
		if err := remountReadonly("/"); err != nil {
			return err
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sethostname %s: %w", s.Hostname, err)
		}
	}
	if s.Linux != nil {
		for k, v := range s.Linux.Sysctl {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		if err := maskPaths(s.Linux.MaskedPaths); err != nil {
			return err
		}
		for _, p := range s.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepareRoot makes every mount private to the container's mount namespace
// (so nothing it mounts or unmounts reaches the host, and nothing the host
// mounts later appears inside), and bind-mounts the rootfs onto itself,
// because pivot_root(2) needs the new root to be a mount point.
func prepareRoot(rootfs string, s *specs.Spec) error {
	prop := uintptr(unix.MS_PRIVATE | unix.MS_REC)
	if s.Linux != nil {
		switch s.Linux.RootfsPropagation {
		case "slave", "rslave":
			prop = unix.MS_SLAVE | unix.MS_REC
		case "":
		case "private", "rprivate":
		default:
			return fmt.Errorf("rootfs propagation %q: hutch supports private and slave", s.Linux.RootfsPropagation)
		}
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", rootfs, err)
	}
	// nodev: a device node the container makes in its rootfs cannot be
	// opened (see makeDevices).
	if err := remountBind(rootfs, unix.MS_NODEV); err != nil {
		return fmt.Errorf("rootfs %s: %w", rootfs, err)
	}
	// CVE-2019-19921: /proc and /sys in the rootfs must be plain folders: a
	// symlink there could send the proc mount (and with it the masked paths
	// and /proc/self/attr writes) somewhere the image chose.
	for _, d := range []string{"proc", "sys"} {
		fi, err := os.Lstat(filepath.Join(rootfs, d))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rootfs /%s: %w", d, err)
		}
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("rootfs /%s: is a %s, must be a plain folder", d, fileType(fi.Mode()))
		}
	}
	return nil
}

func fileType(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "regular file"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	default:
		return "special file"
	}
}

// pivotRoot makes rootfs the root of the mount namespace with pivot_root(2)
// and detaches the old root. chroot(2) would only change this process's
// idea of "/", which a process with CAP_SYS_CHROOT can leave; after
// pivot_root and the detach, the host's tree is not in the namespace at all.
// pivot_root(".", ".") stacks the old root on top of the new one at "/", so
// no folder for it is needed inside the rootfs.
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open /: %w", err)
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open %s: %w", rootfs, err)
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return fmt.Errorf("pivot_root: chdir %s: %w", rootfs, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("pivot_root: chdir to the old root: %w", err)
	}
	// The old root may hold shared mounts: make them slaves first so the
	// detach below does not propagate to the host's mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("pivot_root: make the old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detach the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: chdir /: %w", err)
	}
	return nil
}
