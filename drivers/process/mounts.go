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
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
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

// target opens the mount target dest inside the rootfs (root is a handle of
// it, opened by openRoot), creating it when missing: a folder, or an empty
// file when file is true. dest is first resolved inside the rootfs with
// SecureJoin (symlinks are followed as if the rootfs were /, a dangling one
// too, as runc does); every step after that works on descriptors, with
// filepath-securejoin's pathrs-lite (openat2(2) with RESOLVE_IN_ROOT where
// the kernel has it, a walk that checks every component otherwise), so no
// path is looked up again from the host's /. Creating the resolved path by
// its name (os.MkdirAll, open with O_CREAT) would follow a symlink the
// container swapped in meanwhile and create folders and files on the host
// (CVE-2024-45310). The caller mounts onto /proc/self/fd/N: that names
// exactly the object opened, so a symlink swapped in after the open cannot
// redirect the mount either (CVE-2021-30465).
func target(root *os.File, dest string, file bool) (*os.File, error) {
	rel, err := resolveIn(root, dest)
	if err != nil {
		return nil, err
	}
	h, err := pathrs.OpenatInRoot(root, rel)
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	if !file {
		h, err := pathrs.MkdirAllHandle(root, rel, 0o755)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", dest, err)
		}
		return h, nil
	}
	dir, base := filepath.Split(rel)
	parent, err := pathrs.MkdirAllHandle(root, dir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	// mknodat(2) of a regular file creates it in the folder the handle
	// names and, like mkdirat(2), never follows a symlink at its last
	// component; EEXIST is a file made meanwhile (or a symlink swapped in,
	// which the open below follows inside the rootfs only).
	err = unix.Mknodat(int(parent.Fd()), base, unix.S_IFREG|0o644, 0)
	parent.Close()
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	if h, err = pathrs.OpenatInRoot(root, rel); err != nil {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	return h, nil
}

// resolveIn resolves path inside the rootfs with SecureJoin and returns it
// relative to the rootfs, for pathrs-lite to walk again through handles.
func resolveIn(root *os.File, path string) (string, error) {
	res, err := securejoin.SecureJoin(root.Name(), path)
	if err != nil {
		return "", fmt.Errorf("resolve %s in the rootfs: %w", path, err)
	}
	rel, err := filepath.Rel(root.Name(), res)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("resolve %s in the rootfs: %s is outside it", path, res)
	}
	return rel, nil
}

// mkdirIn makes the folder dir inside the rootfs (see target) and returns
// a handle of it.
func mkdirIn(root *os.File, dir string) (*os.File, error) {
	rel, err := resolveIn(root, dir)
	if err != nil {
		return nil, err
	}
	h, err := pathrs.MkdirAllHandle(root, rel, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return h, nil
}

// openRoot opens the rootfs folder the mount targets are resolved in.
func openRoot(rootfs string) (*os.File, error) {
	f, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	return f, nil
}

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// where is the place of a handle as the kernel names it (d_path(3) of the
// descriptor, through /proc/self/fd/N).
func where(f *os.File) string {
	p, err := os.Readlink(fdPath(f))
	if err != nil {
		return f.Name()
	}
	return p
}

// mountInto mounts one OCI mount below rootfs (root is a handle of it),
// before pivot_root.
func mountInto(root *os.File, rootfs string, m specs.Mount, userns bool) error {
	o, err := mountOptsOf(rootfs, m)
	if err != nil {
		return err
	}
	t, err := target(root, m.Destination, o.file)
	if err != nil {
		return fmt.Errorf("mount %s at %s: %w", m.Source, m.Destination, err)
	}
	mt := &mountTarget{root: root, dest: m.Destination, t: t}
	defer mt.close()
	if err := mt.mount(m, o, userns); err != nil {
		return err
	}
	if o.prop != 0 {
		p, err := mt.mounted()
		if err == nil {
			err = unix.Mount("", p, "", o.prop, "")
		}
		if err != nil {
			return fmt.Errorf("mount %s: set propagation: %w", m.Destination, err)
		}
	}
	return nil
}

// mountOpts is how an OCI mount is made.
type mountOpts struct {
	typ         string // the file system type, "" for a bind mount
	bind, file  bool   // a bind mount, of a file (not a folder)
	flags, prop uintptr
	data        string
}

// mountOptsOf works out how m is made: its flags (nodev but for devpts and
// the bind mount of a device node), propagation and data, and checks that
// a proc or sysfs destination is a plain folder at its literal place.
func mountOptsOf(rootfs string, m specs.Mount) (mountOpts, error) {
	o := mountOpts{typ: m.Type}
	o.flags, o.prop, o.data = parseMountOptions(m.Options)
	o.bind = o.flags&unix.MS_BIND != 0 || o.typ == "bind"
	if o.bind {
		o.typ = ""
		o.flags |= unix.MS_BIND
	}
	switch {
	case o.bind:
		fi, err := os.Stat(m.Source)
		if err != nil {
			return o, fmt.Errorf("mount %s at %s: source: %w", m.Source, m.Destination, err)
		}
		o.file = !fi.IsDir()
		// Binding a device node itself is how a manifest hands one in.
		if fi.Mode()&os.ModeDevice == 0 {
			o.flags |= unix.MS_NODEV
		}
	case o.typ == "devpts":
		// devpts holds only the ptys the kernel makes in it (it has no
		// mknod); nodev would make its ptmx unopenable, and with it every
		// pty inside (posix_openpt(3), script, sshd, a terminal).
	default:
		// No device node made inside can be opened (see makeDevices).
		o.flags |= unix.MS_NODEV
	}
	if o.typ == "proc" || o.typ == "sysfs" {
		// The folder must be a plain folder at its literal place (no symlink
		// anywhere on the way), see prepareRoot.
		lit := filepath.Join(rootfs, m.Destination)
		if res, err := securejoin.SecureJoin(rootfs, m.Destination); err == nil && res != lit {
			return o, fmt.Errorf("mount %s at %s: the path goes through a symlink in the rootfs", o.typ, m.Destination)
		}
	}
	return o, nil
}

// mountTarget is a mount's destination inside the rootfs: t the folder or
// file opened before the mount, top the mount made on it, opened when a
// remount or a propagation change needs it.
type mountTarget struct {
	root   *os.File
	dest   string
	t, top *os.File
}

func (mt *mountTarget) close() {
	mt.t.Close()
	if mt.top != nil {
		mt.top.Close()
	}
}

// mounted returns a path of the new mount. After the mount, t still names
// the folder under it; a remount or a propagation change needs the new
// mount itself, found again inside the rootfs and checked to be at the
// same place.
func (mt *mountTarget) mounted() (string, error) {
	if mt.top == nil {
		rel, err := resolveIn(mt.root, mt.dest)
		if err != nil {
			return "", err
		}
		if mt.top, err = pathrs.OpenatInRoot(mt.root, rel); err != nil {
			return "", fmt.Errorf("open %s: %w", mt.dest, err)
		}
		if was, is := where(mt.t), where(mt.top); was != is {
			return "", fmt.Errorf("%s moved to %s", was, is)
		}
	}
	return fdPath(mt.top), nil
}

// mount makes m onto the target: a bind mount (remounted for its other
// flags), sysfs (in a user namespace, the host's /sys bound read-only
// where sysfs is refused), or another file system.
func (mt *mountTarget) mount(m specs.Mount, o mountOpts, userns bool) error {
	dst := fdPath(mt.t)
	switch {
	case o.bind:
		if err := unix.Mount(m.Source, dst, "", o.flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", m.Source, m.Destination, err)
		}
		// A bind mount takes other flags (ro, nosuid, ...) only on a remount.
		if rest := o.flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			p, err := mt.mounted()
			if err == nil {
				err = remountBind(p, rest)
			}
			if err != nil {
				return fmt.Errorf("bind %s at %s: %w", m.Source, m.Destination, err)
			}
		}
	case o.typ == "sysfs" && userns:
		// sysfs can be mounted only by the owner of the network namespace,
		// which a container with its own user namespace is not: bind the
		// host's /sys instead, read-only.
		if err := unix.Mount("sysfs", dst, "sysfs", o.flags, o.data); err != nil {
			if err := unix.Mount("/sys", dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind /sys at %s: %w", m.Destination, err)
			}
			p, err := mt.mounted()
			if err == nil {
				err = remountBind(p, o.flags|unix.MS_RDONLY)
			}
			if err != nil {
				return fmt.Errorf("bind /sys at %s: %w", m.Destination, err)
			}
		}
	default:
		if err := unix.Mount(m.Source, dst, o.typ, o.flags, o.data); err != nil {
			return fmt.Errorf("mount %s at %s: %w", o.typ, m.Destination, err)
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
// rootfs's /dev (root is a handle of the rootfs). The container's own file
// systems are all mounted nodev (mountInto adds it where the config does not
// say it): a device node that the container makes itself, which CAP_MKNOD
// allows, cannot be opened, so it cannot reach the host's disks even though
// hutch has no device cgroup. devpts is the exception: it holds only the
// ptys of its own instance, and /dev/ptmx leads to its ptmx. The nodes the
// container is meant to have are made with mknod(2) in a small staging
// tmpfs that allows devices, bind-mounted one by one into /dev, and the
// staging tmpfs is detached again: each bound node keeps it alive, nothing
// else of it is reachable. In a user namespace, where mknod of a device is
// refused, the host's node is bound instead, after checking it is the
// device the config names.
func makeDevices(root *os.File, s *specs.Spec, userns bool) error {
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
	var stage *os.File
	if !userns {
		const name = "/dev/.hutch-nodes"
		t, err := target(root, name, false)
		if err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		err = unix.Mount("tmpfs", fdPath(t), "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0700")
		t.Close()
		if err != nil {
			return fmt.Errorf("devices: staging tmpfs: %w", err)
		}
		defer func() {
			if dev, err := pathrs.OpenatInRoot(root, "/dev"); err == nil {
				unix.Unlinkat(int(dev.Fd()), ".hutch-nodes", unix.AT_REMOVEDIR)
				dev.Close()
			}
		}()
		if stage, err = pathrs.OpenatInRoot(root, name); err != nil {
			return fmt.Errorf("devices: open the staging tmpfs: %w", err)
		}
		// umount2 through the handle of the tmpfs's root detaches exactly
		// that mount.
		defer func() {
			unix.Unmount(fdPath(stage), unix.MNT_DETACH)
			stage.Close()
		}()
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(stage.Fd()), &st); err != nil || st.Type != unix.TMPFS_MAGIC {
			return fmt.Errorf("devices: %s is not the staging tmpfs (statfs: %v)", name, err)
		}
	}
	for _, d := range devs {
		if err := makeDevice(root, stage, d); err != nil {
			return err
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
	}
	if ptmx, err := pathrs.OpenatInRoot(root, "/dev/pts/ptmx"); err == nil {
		var st unix.Stat_t
		if unix.Fstat(int(ptmx.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR {
			links = append(links, [2]string{"pts/ptmx", "/dev/ptmx"})
		}
		ptmx.Close()
	}
	for _, l := range links {
		if err := symlinkIn(root, l[1], l[0]); err != nil {
			return err
		}
	}
	return nil
}

// symlinkIn makes the symlink path -> to inside the rootfs, unless
// something is there already: symlinkat(2) in the handle of the folder.
func symlinkIn(root *os.File, path, to string) error {
	dir, base := filepath.Split(path)
	parent, err := mkdirIn(root, dir)
	if err != nil {
		return fmt.Errorf("link %s: %w", path, err)
	}
	defer parent.Close()
	if err := unix.Symlinkat(to, int(parent.Fd()), base); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("link %s -> %s: %w", path, to, err)
	}
	return nil
}

// makeDevice makes one node in the staging tmpfs (or, without one, takes
// the host's) and binds it at its place in the rootfs.
func makeDevice(root, stage *os.File, d specs.LinuxDevice) error {
	var mode uint32
	switch d.Type {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		// A FIFO is no device: nodev does not apply to it.
		dir, base := filepath.Split(filepath.Join("/", d.Path))
		parent, err := mkdirIn(root, dir)
		if err == nil {
			err = unix.Mkfifoat(int(parent.Fd()), base, 0o666)
			parent.Close()
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("fifo %s: %w", d.Path, err)
		}
		return nil
	default:
		return fmt.Errorf("device %s: unknown type %q", d.Path, d.Type)
	}
	var node *os.File
	if stage != nil {
		perm := uint32(0o666)
		if d.FileMode != nil {
			perm = uint32(*d.FileMode) & 0o7777
		}
		sfd := int(stage.Fd())
		name := strings.ReplaceAll(strings.TrimPrefix(d.Path, "/"), "/", "_")
		if err := unix.Mknodat(sfd, name, mode|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("device %s: mknod: %w", d.Path, err)
		}
		// mknod applies the umask; chmod sets the mode asked for.
		if err := unix.Fchmodat(sfd, name, perm, 0); err != nil {
			return fmt.Errorf("device %s: chmod: %w", d.Path, err)
		}
		uid, gid := 0, 0
		if d.UID != nil {
			uid = int(*d.UID)
		}
		if d.GID != nil {
			gid = int(*d.GID)
		}
		if err := unix.Fchownat(sfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("device %s: chown: %w", d.Path, err)
		}
		fd, err := unix.Openat(sfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("device %s: open the staged node: %w", d.Path, err)
		}
		node = os.NewFile(uintptr(fd), name)
	} else {
		// Before pivot_root, d.Path is the host's node.
		fd, err := unix.Open(d.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("device %s: open the host's %s: %w", d.Path, d.Path, err)
		}
		node = os.NewFile(uintptr(fd), d.Path)
	}
	defer node.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(node.Fd()), &st); err != nil {
		return fmt.Errorf("device %s: stat: %w", d.Path, err)
	}
	if st.Mode&unix.S_IFMT != mode || unix.Major(st.Rdev) != uint32(d.Major) || unix.Minor(st.Rdev) != uint32(d.Minor) {
		return fmt.Errorf("device %s: the node is %d:%d, not the %s device %d:%d", d.Path, unix.Major(st.Rdev), unix.Minor(st.Rdev), d.Type, d.Major, d.Minor)
	}
	t, err := target(root, d.Path, true)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.Path, err)
	}
	defer t.Close()
	if err := unix.Mount(fdPath(node), fdPath(t), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("device %s: bind: %w", d.Path, err)
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
