//go:build linux

package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// root writes inside one folder and never outside it. Every parent folder
// is opened with openat2(2) and RESOLVE_IN_ROOT, so the kernel resolves
// "..", absolute symlinks and symlinks made while hutch works as if the
// folder were "/": a path can name nothing outside it. The last component is
// then made relative to that parent's descriptor without following it
// (O_CREAT|O_EXCL|O_NOFOLLOW, mkdirat, symlinkat, linkat), and metadata is
// set through descriptors, never through a path the kernel would walk again.
type root struct {
	dir string
	fd  int
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &root{dir: dir, fd: fd}, nil
}

func (r *root) Close() error { return unix.Close(r.fd) }

// openat2 opens p (absolute, inside the root) resolved inside the root.
// EAGAIN means a rename raced the lookup; the kernel asks to retry.
func (r *root) openat2(p string, flags uint64) (int, error) {
	rel := "." + path.Clean("/"+p)
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	for {
		fd, err := unix.Openat2(r.fd, rel, how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// openDir opens folder p inside the root, making it and its missing parents
// (mode 0755, owned by the caller) when create is set.
func (r *root) openDir(p string, create bool) (int, error) {
	p = path.Clean("/" + p)
	fd, err := r.openat2(p, unix.O_DIRECTORY|unix.O_RDONLY)
	if err == nil || !create || err != unix.ENOENT || p == "/" {
		return fd, err
	}
	pfd, err := r.openDir(path.Dir(p), true)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, path.Base(p), 0o755); err != nil && err != unix.EEXIST {
		return -1, err
	}
	fd, err = r.openat2(p, unix.O_DIRECTORY|unix.O_RDONLY)
	if err == unix.ENOENT {
		// The name exists but leads nowhere: a symlink to a missing
		// folder (resolved inside the root, where its target is not).
		return -1, fmt.Errorf("a symlink on the way points to a folder missing in the rootfs: %w", err)
	}
	return fd, err
}

// parent opens the folder that holds p and returns p's last component.
func (r *root) parent(p string) (int, string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return -1, "", errors.New("the root itself has no parent")
	}
	fd, err := r.openDir(path.Dir(p), true)
	return fd, path.Base(p), err
}

// mkdir makes folder p. An existing folder is kept; a symlink or file in
// its place is an error: folders (mount points above all) must be plain.
func (r *root) mkdir(p string, mode uint32) error {
	if path.Clean("/"+p) == "/" {
		return nil
	}
	pfd, name, err := r.parent(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Mkdirat(pfd, name, mode&0o777)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("exists and is a %s, not a folder", typeName(st.Mode))
		}
		return nil
	}
	return err
}

func typeName(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "folder"
	}
	return fileType(m)
}

// replace removes a non-folder at name so that a later recipe entry can take
// its place.
func replace(pfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return errors.New("exists and is a folder")
	}
	return unix.Unlinkat(pfd, name, 0)
}

// symlink makes p a symlink to target (never followed here).
func (r *root) symlink(p, target string, uid, gid uint32, mtime int64) error {
	pfd, name, err := r.parent(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Symlinkat(target, pfd, name)
	if err == unix.EEXIST {
		if err := replace(pfd, name); err != nil {
			return err
		}
		err = unix.Symlinkat(target, pfd, name)
	}
	if err != nil {
		return err
	}
	if err := unix.Fchownat(pfd, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if mtime != 0 {
		ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
		return unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// link makes p another name of the file at first (both inside the root).
func (r *root) link(first, p string) error {
	ofd, oname, err := r.parent(first)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	pfd, name, err := r.parent(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Linkat(ofd, oname, pfd, name, 0)
	if err == unix.EEXIST {
		if err := replace(pfd, name); err != nil {
			return err
		}
		err = unix.Linkat(ofd, oname, pfd, name, 0)
	}
	return err
}

// create makes p a new regular file and returns it open for writing.
func (r *root) create(p string) (*os.File, error) {
	pfd, name, err := r.parent(p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, name, flags, 0o600)
	if err == unix.EEXIST {
		if err := replace(pfd, name); err != nil {
			return nil, err
		}
		fd, err = unix.Openat(pfd, name, flags, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path.Join(r.dir, p)), nil
}

// copyXattrs copies the extended attributes of src to dst: file
// capabilities (security.capability, which a later chown would clear, so it
// comes after setMeta's chown), ACLs and user attributes. A target
// filesystem without xattrs (ENOTSUP) gets none; SELinux labels are left to
// the target's policy.
func copyXattrs(dst, src int) error {
	size, err := unix.Flistxattr(src, nil)
	if err == unix.ENOTSUP || size == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(src, buf); err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, name := range bytes.Split(buf[:size], []byte{0}) {
		n := string(name)
		if n == "" || n == "security.selinux" {
			continue
		}
		vsize, err := unix.Fgetxattr(src, n, nil)
		if err != nil {
			return fmt.Errorf("get xattr %s: %w", n, err)
		}
		val := make([]byte, vsize)
		if vsize, err = unix.Fgetxattr(src, n, val); err != nil {
			return fmt.Errorf("get xattr %s: %w", n, err)
		}
		if err := unix.Fsetxattr(dst, n, val[:vsize], 0); err != nil {
			if err == unix.ENOTSUP {
				return nil
			}
			return fmt.Errorf("set xattr %s: %w", n, err)
		}
	}
	return nil
}

// setMeta sets owner, mode (after chown, which clears setuid) and
// modification time through an open descriptor.
func setMeta(fd int, mode, uid, gid uint32, mtime int64) error {
	if err := setOwnerMode(fd, mode, uid, gid); err != nil {
		return err
	}
	return setTimes(fd, mtime)
}

func setOwnerMode(fd int, mode, uid, gid uint32) error {
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

func setTimes(fd int, mtime int64) error {
	if mtime == 0 {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// dirMeta sets a folder's owner, mode and time, opening it inside the root
// without following a symlink in its place.
func (r *root) dirMeta(p string, mode, uid, gid uint32, mtime int64) error {
	fd, err := r.openat2(p, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setMeta(fd, mode, uid, gid, mtime)
}

// copyData copies size bytes of src into dst, keeping holes: only the data
// extents (lseek SEEK_DATA/SEEK_HOLE) are copied, with copy_file_range(2),
// which lets the filesystem share blocks (reflink on btrfs and xfs) or copy
// inside the kernel; the file is then cut to its size. copy_file_range
// falls back to read and write where the kernel refuses it (EXDEV before
// 5.19 across filesystems, EINVAL on some special filesystems).
func copyData(dst, src *os.File, size int64) error {
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	off := int64(0)
	for off < size {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole is left
		}
		if err != nil {
			return plainCopy(dst, src, off, size)
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil {
			return plainCopy(dst, src, off, size)
		}
		if hole > size {
			hole = size
		}
		for in, out := data, data; in < hole; {
			n, err := unix.CopyFileRange(sfd, &in, dfd, &out, int(min(hole-in, 1<<30)), 0)
			if err != nil {
				if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
					if err := plainRange(dst, src, in, hole); err != nil {
						return err
					}
					break
				}
				return fmt.Errorf("copy_file_range: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("copy_file_range: source shrank at %d of %d bytes", in, size)
			}
		}
		off = hole
	}
	return dst.Truncate(size)
}

func plainRange(dst, src *os.File, from, to int64) error {
	_, err := io.Copy(io.NewOffsetWriter(dst, from), io.NewSectionReader(src, from, to-from))
	return err
}

func plainCopy(dst, src *os.File, from, size int64) error {
	if err := plainRange(dst, src, from, size); err != nil {
		return err
	}
	return dst.Truncate(size)
}
