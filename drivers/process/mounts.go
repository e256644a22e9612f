//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountFlag is one OCI mount option that maps to a mount(2) flag; clear
// options ("rw", "suid", ...) remove it.
type mountFlag struct {
	clear bool
	flag  uintptr
}

var mountFlags = map[string]mountFlag{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"dirsync": {false, unix.MS_DIRSYNC},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits OCI mount options into mount(2) flags,
// propagation flags and the data string the filesystem reads.
func parseMountOptions(opts []string) (flags, prop uintptr, data string) {
	var d []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			prop |= p
			continue
		}
		d = append(d, o)
	}
	return flags, prop, strings.Join(d, ",")
}

// target resolves dest inside rootfs (symlinks are followed as if rootfs
// were /, so none can lead out), creates it when missing (a folder, or an
// empty file when file is true) and opens it with O_PATH. The caller mounts
// onto /proc/self/fd/N: that names exactly the object opened, so a symlink
// swapped in after the check cannot redirect the mount (CVE-2021-30465). The
// opened path is checked against the resolved one for the same reason.
func target(rootfs, dest string, file bool) (*os.File, string, error) {
	path, err := securejoin.SecureJoin(rootfs, dest)
	if err != nil {
		return nil, "", fmt.Errorf("resolve %s in the rootfs: %w", dest, err)
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		if file {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, "", fmt.Errorf("create %s: %w", dest, err)
			}
			fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o644)
			if err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, "", fmt.Errorf("create %s: %w", dest, err)
			}
			if err == nil {
				unix.Close(fd)
			}
		} else if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, "", fmt.Errorf("create %s: %w", dest, err)
		}
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w", dest, err)
	}
	f := os.NewFile(uintptr(fd), path)
	got, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("check %s: %w", dest, err)
	}
	if got != path {
		f.Close()
		return nil, "", fmt.Errorf("mount target %s: opened %s, not %s: the path changed while it was resolved", dest, got, path)
	}
	return f, path, nil
}

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// mountInto mounts one OCI mount below rootfs, before pivot_root.
func mountInto(rootfs string, m specs.Mount, userns bool) error {
	flags, prop, data := parseMountOptions(m.Options)
	typ := m.Type
	bind := flags&unix.MS_BIND != 0 || typ == "bind"
	if bind {
		typ = ""
		flags |= unix.MS_BIND
	}
	file := false
	if bind {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("mount %s at %s: source: %w", m.Source, m.Destination, err)
		}
		file = !fi.IsDir()
		// Binding a device node itself is how a manifest hands one in.
		if fi.Mode()&os.ModeDevice == 0 {
			flags |= unix.MS_NODEV
		}
	} else {
		// No device node made inside can be opened (see makeDevices).
		flags |= unix.MS_NODEV
	}
	if typ == "proc" || typ == "sysfs" {
		// The folder must be a plain folder at its literal place (no symlink
		// anywhere on the way), see prepareRoot.
		lit := filepath.Join(rootfs, m.Destination)
		if res, err := securejoin.SecureJoin(rootfs, m.Destination); err == nil && res != lit {
			return fmt.Errorf("mount %s at %s: the path goes through a symlink in the rootfs", typ, m.Destination)
		}
	}
	t, path, err := target(rootfs, m.Destination, file)
	if err != nil {
		return fmt.Errorf("mount %s at %s: %w", m.Source, m.Destination, err)
	}
	defer t.Close()
	dst := fdPath(t)
	// After the mount, the descriptor still names the folder under it; a
	// remount or a propagation change needs the new mount itself.
	var top *os.File
	defer func() {
		if top != nil {
			top.Close()
		}
	}()
	mounted := func() (string, error) {
		if top == nil {
			if top, _, err = target(rootfs, m.Destination, file); err != nil {
				return "", err
			}
			if top.Name() != path {
				return "", fmt.Errorf("%s moved to %s", path, top.Name())
			}
		}
		return fdPath(top), nil
	}
	switch {
	case bind:
		if err := unix.Mount(m.Source, dst, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", m.Source, m.Destination, err)
		}
		// A bind mount takes other flags (ro, nosuid, ...) only on a remount.
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			p, err := mounted()
			if err == nil {
				err = remountBind(p, rest)
			}
			if err != nil {
				return fmt.Errorf("bind %s at %s: %w", m.Source, m.Destination, err)
			}
		}
	case typ == "sysfs" && userns:
		// sysfs can be mounted only by the owner of the network namespace,
		// which a container with its own user namespace is not: bind the
		// host's /sys instead, read-only.
		if err := unix.Mount("sysfs", dst, "sysfs", flags, data); err != nil {
			if err := unix.Mount("/sys", dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind /sys at %s: %w", m.Destination, err)
			}
			p, err := mounted()
			if err == nil {
				err = remountBind(p, flags|unix.MS_RDONLY)
			}
			if err != nil {
				return fmt.Errorf("bind /sys at %s: %w", m.Destination, err)
			}
		}
	default:
		if err := unix.Mount(m.Source, dst, typ, flags, data); err != nil {
			return fmt.Errorf("mount %s at %s: %w", typ, m.Destination, err)
		}
	}
	if prop != 0 {
		p, err := mounted()
		if err == nil {
			err = unix.Mount("", p, "", prop, "")
		}
		if err != nil {
			return fmt.Errorf("mount %s: set propagation: %w", m.Destination, err)
		}
	}
	return nil
}

// remountBind adds flags to the bind mount at path with
// MS_REMOUNT|MS_BIND, keeping those it has (ro stays ro; and in a user
// namespace a remount that would clear nosuid, nodev, noexec or an atime
// flag the kernel locked fails with EPERM).
func remountBind(path string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	locked := uintptr(st.Flags) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := unix.Mount("", path, "", unix.MS_REMOUNT|unix.MS_BIND|flags|locked, ""); err != nil {
		return fmt.Errorf("remount with flags %#x: %w", flags|locked, err)
	}
	return nil
}

func remountReadonly(path string) error {
	if err := remountBind(path, unix.MS_RDONLY); err != nil {
		return fmt.Errorf("make %s read-only: %w", path, err)
	}
	return nil
}

// defaultDevices are the device nodes every container gets in its /dev, the
// ones the OCI runtime spec requires.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// makeDevices puts the device nodes and the usual /dev links in the
// rootfs's /dev. The container's own file systems are all mounted nodev
// (mountInto adds it where the config does not say it): a device node that
// the container makes itself, which CAP_MKNOD allows, cannot be opened, so
// it cannot reach the host's disks even though hutch has no device cgroup.
// The nodes it is meant to have are made with mknod(2) in a small staging
// tmpfs that allows devices, bind-mounted one by one into /dev, and the
// staging tmpfs is detached again: each bound node keeps it alive, nothing
// else of it is reachable. In a user namespace, where mknod of a device is
// refused, the host's node is bound instead, after checking it is the
// device the config names.
func makeDevices(rootfs string, s *specs.Spec, userns bool) error {
	devs := append([]specs.LinuxDevice(nil), defaultDevices...)
	if s.Linux != nil {
		for _, d := range s.Linux.Devices {
			dup := false
			for _, e := range devs {
				dup = dup || e.Path == d.Path
			}
			if !dup {
				devs = append(devs, d)
			}
		}
	}
	stage := ""
	if !userns {
		t, path, err := target(rootfs, "/dev/.hutch-nodes", false)
		if err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		err = unix.Mount("tmpfs", fdPath(t), "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0700")
		t.Close()
		if err != nil {
			return fmt.Errorf("devices: staging tmpfs: %w", err)
		}
		stage = path
		defer func() {
			unix.Unmount(path, unix.MNT_DETACH)
			os.Remove(path)
		}()
	}
	for _, d := range devs {
		if err := makeDevice(rootfs, stage, d); err != nil {
			return err
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "dev/pts/ptmx")); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		links = append(links, [2]string{"pts/ptmx", "/dev/ptmx"})
	}
	for _, l := range links {
		p, err := securejoin.SecureJoin(rootfs, l[1])
		if err != nil {
			return fmt.Errorf("link %s: %w", l[1], err)
		}
		if err := os.Symlink(l[0], p); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("link %s -> %s: %w", l[1], l[0], err)
		}
	}
	return nil
}

// makeDevice makes one node in the staging folder (or, without one, takes
// the host's) and binds it at its place in the rootfs.
func makeDevice(rootfs, stage string, d specs.LinuxDevice) error {
	var mode uint32
	switch d.Type {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		// A FIFO is no device: nodev does not apply to it.
		p, err := securejoin.SecureJoin(rootfs, d.Path)
		if err == nil {
			err = unix.Mkfifo(p, 0o666)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("fifo %s: %w", d.Path, err)
		}
		return nil
	default:
		return fmt.Errorf("device %s: unknown type %q", d.Path, d.Type)
	}
	src := d.Path
	if stage != "" {
		perm := uint32(0o666)
		if d.FileMode != nil {
			perm = uint32(*d.FileMode) & 0o7777
		}
		src = filepath.Join(stage, strings.ReplaceAll(strings.TrimPrefix(d.Path, "/"), "/", "_"))
		if err := unix.Mknod(src, mode|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("device %s: mknod: %w", d.Path, err)
		}
		// mknod applies the umask; chmod sets the mode asked for.
		if err := unix.Chmod(src, perm); err != nil {
			return fmt.Errorf("device %s: chmod: %w", d.Path, err)
		}
		uid, gid := 0, 0
		if d.UID != nil {
			uid = int(*d.UID)
		}
		if d.GID != nil {
			gid = int(*d.GID)
		}
		if err := unix.Lchown(src, uid, gid); err != nil {
			return fmt.Errorf("device %s: chown: %w", d.Path, err)
		}
	}
	hfd, err := unix.Open(src, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("device %s: open %s: %w", d.Path, src, err)
	}
	node := os.NewFile(uintptr(hfd), src)
	defer node.Close()
	var st unix.Stat_t
	if err := unix.Fstat(hfd, &st); err != nil {
		return fmt.Errorf("device %s: stat %s: %w", d.Path, src, err)
	}
	if st.Mode&unix.S_IFMT != mode || unix.Major(st.Rdev) != uint32(d.Major) || unix.Minor(st.Rdev) != uint32(d.Minor) {
		return fmt.Errorf("device %s: %s is %d:%d, not the %s device %d:%d", d.Path, src, unix.Major(st.Rdev), unix.Minor(st.Rdev), d.Type, d.Major, d.Minor)
	}
	t, _, err := target(rootfs, d.Path, true)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.Path, err)
	}
	defer t.Close()
	if err := unix.Mount(fdPath(node), fdPath(t), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("device %s: bind %s: %w", d.Path, src, err)
	}
	return nil
}

// maskPaths hides each path, after pivot_root: a file gets /dev/null bound
// over it, a folder an empty read-only tmpfs. /dev/null is first checked to
// be the character device 1:3 and then bound through its open descriptor, so
// a container that replaced its /dev/null cannot make a masked path writable
// or point the mount elsewhere.
func maskPaths(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	nfd, err := unix.Open("/dev/null", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("masked paths: open /dev/null: %w", err)
	}
	null := os.NewFile(uintptr(nfd), "/dev/null")
	defer null.Close()
	var st unix.Stat_t
	if err := unix.Fstat(nfd, &st); err != nil {
		return fmt.Errorf("masked paths: stat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		return fmt.Errorf("masked paths: /dev/null is not the character device 1:3")
	}
	for _, p := range paths {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mask %s: open: %w", p, err)
		}
		t := os.NewFile(uintptr(fd), p)
		var ts unix.Stat_t
		if err := unix.Fstat(fd, &ts); err != nil {
			t.Close()
			return fmt.Errorf("mask %s: stat: %w", p, err)
		}
		switch ts.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			// O_NOFOLLOW opened the link itself; nothing to hide there.
		case unix.S_IFDIR:
			err = unix.Mount("tmpfs", fdPath(t), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0555")
		default:
			err = unix.Mount(fdPath(null), fdPath(t), "", unix.MS_BIND, "")
		}
		t.Close()
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// readonlyPath bind-mounts p onto itself and remounts it read-only.
func readonlyPath(p string) error {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read-only %s: open: %w", p, err)
	}
	t := os.NewFile(uintptr(fd), p)
	defer t.Close()
	if err := unix.Mount(fdPath(t), fdPath(t), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("read-only %s: bind: %w", p, err)
	}
	// The descriptor names the folder under the new bind mount's parent;
	// remount through the path, which now resolves to the new mount.
	if err := remountBind(p, unix.MS_RDONLY); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return nil
}
