//go:build linux

package fs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	imgdrv "hutch/drivers/image"
	"hutch/plan"
)

// An image's layers are unpacked into the same cache as recipe layers,
// each once, in a folder named by its diff ID (the sha256 of its
// uncompressed tar, which the unpack hashes and compares: a layer whose
// stream does not hash to its diff ID is refused and nothing of it is
// kept). A folder is an overlay lower layer as it is: a whiteout is a
// character device 0/0, an opaque folder has trusted.overlay.opaque=y
// (Documentation/filesystems/overlayfs.rst), which is the form overlayfs
// reads in any lower layer.
//
// No entry may reach outside the layer's folder. Every name is checked
// (no absolute name, no ".." component) and every parent folder is opened
// one component at a time with openat2(2) RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS relative to the one before: a symlink the layer made
// earlier (evil -> /etc) is never followed, so `evil/passwd` is refused,
// not written to the host. The entry itself is made relative to its
// parent's descriptor without following it (O_CREAT|O_EXCL|O_NOFOLLOW,
// mkdirat, symlinkat, mknodat, linkat without AT_SYMLINK_FOLLOW).

// ociWhiteout and ociOpaque are the OCI image-spec's whiteout names
// (image-spec layer.md, "Whiteouts").
const (
	ociWhiteout = ".wh."
	ociOpaque   = ".wh..wh..opq"
)

// entryError names the entry a refusal is about; ensure adds the layer's
// digest ("layer sha256:...: entry "../x": ...").
func entryError(entry string, err error) error {
	if entry == "" {
		return err
	}
	return fmt.Errorf("entry %q: %w", entry, err)
}

// ensureImageLayer returns the folder of the image layer diffID, unpacking
// it from open when the cache lacks it. lowers are the folders of the
// layers below it, bottom first: a hard link to one of their files is
// copied up. The caller holds the cache lock shared.
func (d *Driver) ensureImageLayer(ctx context.Context, diffID string, open func() (io.ReadCloser, error), lowers []string) (string, error) {
	return d.ensure(diffID, func(tmp string) error {
		rc, err := open()
		if err != nil {
			return entryError("", err)
		}
		defer rc.Close()
		return unpackLayer(ctx, tmp, rc, diffID, lowers)
	})
}

// unpackLayer writes the tar stream r into the folder dir (which exists and
// is empty), then checks that the whole stream hashes to diffID.
func unpackLayer(ctx context.Context, dir string, r io.Reader, diffID string, lowers []string) error {
	want, ok := strings.CutPrefix(diffID, "sha256:")
	if !ok {
		return entryError("", errors.New("the diff ID is not sha256:<hex>"))
	}
	h := sha256.New()
	u, err := newUnpacker(dir, diffID, lowers)
	if err != nil {
		return err
	}
	defer u.close()
	tr := tar.NewReader(io.TeeReader(r, h))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return entryError("", fmt.Errorf("read the tar: %w", err))
		}
		if err := u.entry(hdr, tr); err != nil {
			return entryError(hdr.Name, err)
		}
	}
	// The tar's end-of-archive blocks and any padding after them are part
	// of the hashed stream.
	if _, err := io.Copy(io.Discard, io.TeeReader(r, h)); err != nil {
		return entryError("", fmt.Errorf("read the tar: %w", err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return entryError("", fmt.Errorf("the layer's content hashes to sha256:%s, not to its diff ID: refused", got))
	}
	return u.finish()
}

// unpacker makes the entries of one layer under its root descriptor.
type unpacker struct {
	root   int
	diffID string
	lowers []string
	// dirs are the folders made, with their headers: their modes, owners
	// and times are set last, once nothing is written into them.
	dirs []madeDir
	// made are the paths this layer made, for hard links to them.
	made map[string]bool
}

func newUnpacker(dir, diffID string, lowers []string) (*unpacker, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, entryError("", err)
	}
	return &unpacker{root: fd, diffID: diffID, lowers: lowers, made: map[string]bool{}}, nil
}

func (u *unpacker) close() { unix.Close(u.root) }

// madeDir is a folder an entry made: its path below the root and its
// header (whose Name is the entry's, for errors).
type madeDir struct {
	rel string
	h   *tar.Header
}

// cleanName is an entry's name as a path below the layer's root, without
// a leading "/": "./etc/passwd" gives "etc/passwd", "./" gives ".". An
// absolute name or one with a ".." component is refused: it could only
// be meant to leave the layer.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("the name holds a NUL byte")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New("the name has a .. component: it would leave the layer")
		}
	}
	c := path.Clean(name)
	if path.IsAbs(c) {
		return "", errors.New("the name is absolute: it would leave the layer")
	}
	return c, nil
}

// openBeneath opens the folder rel (clean, relative, "." for the root)
// below the layer's root, one component at a time with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS: a symlink anywhere on the way is an error (ELOOP),
// never followed. Missing folders are made (mode 0755, root's: a tar may
// leave out the entries of parent folders) when create is set.
func (u *unpacker) openBeneath(rel string, create bool) (int, error) {
	fd, err := unix.Dup(u.root)
	if err != nil {
		return -1, err
	}
	if rel == "." {
		return fd, nil
	}
	how := &unix.OpenHow{Flags: unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	for _, c := range strings.Split(rel, "/") {
		next, err := openat2(fd, c, how)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || err == unix.EEXIST {
				next, err = openat2(fd, c, how)
			}
		}
		if err == unix.ELOOP || err == unix.ENOTDIR {
			// O_DIRECTORY meets a symlink as ENOTDIR, RESOLVE_NO_SYMLINKS
			// as ELOOP: lstat tells which it was.
			var st unix.Stat_t
			if unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		unix.Close(fd)
		switch {
		case err == unix.ELOOP:
			return -1, fmt.Errorf("%s passes through a symlink, which is never followed while unpacking", rel)
		case err == unix.ENOTDIR:
			return -1, fmt.Errorf("%s passes through something that is not a folder", rel)
		case err != nil:
			return -1, fmt.Errorf("open %s: %w", rel, err)
		}
		fd = next
	}
	return fd, nil
}

func openat2(dirfd int, name string, how *unix.OpenHow) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, name, how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// entry makes one tar entry.
func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if h.Typeflag != tar.TypeDir {
			return errors.New("the layer's root must be a folder")
		}
		u.dirs = append(u.dirs, madeDir{".", h})
		return nil
	}
	dir, base := path.Split(rel)
	dir = path.Clean(dir)
	if strings.HasPrefix(base, ociWhiteout) {
		return u.whiteout(dir, base)
	}
	pfd, err := u.openBeneath(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := u.clear(pfd, base, h.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
			return fmt.Errorf("mkdir: %w", err)
		}
		u.dirs = append(u.dirs, madeDir{rel, h})
		u.made[rel] = true
		return nil
	case tar.TypeReg: // archive/tar reads the old TypeRegA as TypeReg
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	case tar.TypeSymlink:
		if h.Linkname == "" {
			return errors.New("a symlink without a target")
		}
		if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		if err := u.hardLink(pfd, base, h.Linkname); err != nil {
			return err
		}
		u.made[rel] = true
		// A hard link shares its target's inode: its metadata is the
		// target's, set when that entry was made.
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		if h.Typeflag == tar.TypeChar {
			mode = unix.S_IFCHR
		} else if h.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		// Device nodes are kept: the overlay is mounted nodev, so none
		// opens a host device through the container's rootfs.
		if err := unix.Mknodat(pfd, base, mode|0o600, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("entry type %q is not supported", h.Typeflag)
	}
	u.made[rel] = true
	return setEntryMeta(pfd, base, h)
}

// clear removes what an earlier entry of this layer made at base, as a
// later entry of the same name replaces it (tar's rule). A folder stays
// when the new entry is a folder too; a non-empty one is never replaced by
// something else.
func (u *unpacker) clear(pfd int, base string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if dir {
			return nil
		}
		if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
			return fmt.Errorf("replace the folder of an earlier entry: %w", err)
		}
		return nil
	}
	return unix.Unlinkat(pfd, base, 0)
}

// setEntryMeta sets owner, mode (setuid, setgid and sticky included), extended
// attributes and times of base in the folder pfd, in that order: chown(2)
// clears the setuid and setgid bits and security.capability, so both come
// after it. A symlink gets its owner and times only (Linux has no modes
// for symlinks).
func setEntryMeta(pfd int, base string, h *tar.Header) error {
	if err := unix.Fchownat(pfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", h.Uid, h.Gid, err)
	}
	if h.Typeflag != tar.TypeSymlink {
		// fchmodat without AT_SYMLINK_NOFOLLOW: base is what this entry
		// just made in a folder only hutch writes, never a symlink.
		if err := unix.Fchmodat(pfd, base, uint32(h.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %04o: %w", h.Mode&0o7777, err)
		}
	}
	if err := setXattrs(pfd, base, h); err != nil {
		return err
	}
	mtime := unix.NsecToTimespec(h.ModTime.UnixNano())
	atime := mtime
	if !h.AccessTime.IsZero() {
		atime = unix.NsecToTimespec(h.AccessTime.UnixNano())
	}
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// setXattrs sets the entry's PAX SCHILY.xattr.* records: security.*
// (security.capability: file capabilities), user.* and POSIX ACLs.
// trusted.* is refused: trusted.overlay.* would be read by overlayfs as its
// own (an opaque folder, a redirect to another path of the lower layers),
// and only this unpacker may say those.
func setXattrs(pfd int, base string, h *tar.Header) error {
	p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
	for k, v := range h.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, "security."), strings.HasPrefix(name, "user."),
			name == "system.posix_acl_access", name == "system.posix_acl_default":
		default:
			return fmt.Errorf("extended attribute %s is refused (only security.*, user.* and POSIX ACLs are kept)", name)
		}
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			return fmt.Errorf("set extended attribute %s: %w", name, err)
		}
	}
	return nil
}

// whiteout records a deletion of this layer: .wh..wh..opq makes the folder
// dir opaque (trusted.overlay.opaque=y: nothing of the lower layers shows
// through it), .wh.NAME hides NAME of the lower layers with a character
// device 0/0, overlayfs's whiteout. A whiteout of the root or of ".."
// (".wh.", ".wh..", ".wh...") is refused.
func (u *unpacker) whiteout(dir, base string) error {
	pfd, err := u.openBeneath(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if base == ociOpaque {
		if dir == "." || dir == "" || dir == "/" {
			// overlayfs reads trusted.overlay.opaque of a lower layer's
			// folders but not of its root: kept, the container would
			// still see every file the image says is gone.
			return fmt.Errorf("%s at the layer's root (hiding every layer below) cannot be kept: overlayfs ignores the opaque mark on a lower layer's root (squash the image, or rebuild it without the layers this one hides)", ociOpaque)
		}
		if err := unix.Fsetxattr(pfd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("make %s opaque: %w", dir, err)
		}
		return nil
	}
	name := strings.TrimPrefix(base, ociWhiteout)
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("a whiteout of %q would delete the root or leave the layer", path.Join(dir, name))
	case strings.HasPrefix(name, ociWhiteout):
		// .wh..wh.* other than .opq: aufs's own bookkeeping, which
		// means nothing to overlayfs.
		return nil
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		if err == unix.EEXIST {
			return fmt.Errorf("a whiteout of %s, which this layer also holds", path.Join(dir, name))
		}
		return fmt.Errorf("whiteout: %w", err)
	}
	return nil
}

// hardLink makes base in pfd a hard link to target, a path of this layer
// (checked as entry names are) or, when this layer lacks it, a regular
// file of the layers below, which is copied up: a hard link cannot span
// two layer folders. Anything else (a folder, a path outside, one no
// layer holds) is refused.
func (u *unpacker) hardLink(pfd int, base, target string) error {
	rel, err := cleanName(target)
	if err != nil || rel == "." {
		return fmt.Errorf("hard link to %q: refused: %v", target, err)
	}
	tdir, tbase := path.Split(rel)
	tfd, err := u.openBeneath(path.Clean(tdir), false)
	if err == nil {
		defer unix.Close(tfd)
		if u.made[rel] {
			if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
				return fmt.Errorf("hard link to %s: %w", rel, err)
			}
			return nil
		}
	}
	if err := copyUp(u.lowers, rel, pfd, base); err != nil {
		return fmt.Errorf("hard link to %s: %w", rel, err)
	}
	return nil
}

// copyUp copies the regular file rel of the merged lower layers (lowers
// bottom first) to base in pfd, with its owner, mode, extended attributes
// and times. The lookup goes from the top layer down and stops at a
// whiteout or an opaque folder, as overlayfs's does; it follows no
// symlink.
func copyUp(lowers []string, rel string, pfd int, base string) error {
	comps := strings.Split(rel, "/")
	for i := len(lowers) - 1; i >= 0; i-- {
		fd, found, stop, err := lookupLower(lowers[i], comps)
		if err != nil {
			return err
		}
		if found {
			defer unix.Close(fd)
			return copyFile(fd, pfd, base)
		}
		if stop {
			break
		}
	}
	return errors.New("no file of that name in this layer or the layers below it")
}

// lookupLower opens the regular file comps in one lower layer folder:
// found, or stop when the layer deletes it (a whiteout, an opaque folder
// on the way) so that the layers below must not be searched.
func lookupLower(layer string, comps []string) (fd int, found, stop bool, err error) {
	dfd, err := unix.Open(layer, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, false, false, err
	}
	defer func() { unix.Close(dfd) }()
	for n, c := range comps {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				return -1, false, opaque(dfd), nil
			}
			return -1, false, false, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev == 0 {
				return -1, false, true, nil // a whiteout
			}
			return -1, false, true, errors.New("it is a device in the layer below, not a regular file")
		case unix.S_IFDIR:
			if n == len(comps)-1 {
				return -1, false, true, errors.New("it is a folder in the layer below")
			}
			next, err := unix.Openat(dfd, c, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				return -1, false, false, err
			}
			unix.Close(dfd)
			dfd = next
		case unix.S_IFREG:
			if n != len(comps)-1 {
				return -1, false, true, nil
			}
			f, err := unix.Openat(dfd, c, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			return f, err == nil, false, err
		default:
			return -1, false, true, fmt.Errorf("it is a %s in the layer below, not a regular file", typeName(st.Mode))
		}
	}
	return -1, false, false, nil
}

// opaque reports whether the folder dfd hides the layers below it.
func opaque(dfd int) bool {
	b := make([]byte, 4)
	n, err := unix.Fgetxattr(dfd, "trusted.overlay.opaque", b)
	return err == nil && n == 1 && b[0] == 'y'
}

// copyFile copies the open regular file src to base in pfd, with its
// owner, mode, extended attributes and time.
func copyFile(src, pfd int, base string) error {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	out := os.NewFile(uintptr(fd), base)
	defer out.Close()
	// The caller owns src and closes it. An *os.File of src itself would
	// close it again from its finalizer, whenever the collector runs, by
	// then another file's descriptor: the copy reads through a duplicate.
	dup, err := unix.FcntlInt(uintptr(src), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy up: %w", err)
	}
	in := os.NewFile(uintptr(dup), "lower")
	defer in.Close()
	if err := copyData(out, in, st.Size); err != nil {
		return fmt.Errorf("copy up: %w", err)
	}
	if err := setOwnerMode(fd, st.Mode, st.Uid, st.Gid); err != nil {
		return err
	}
	if err := copyXattrs(fd, src); err != nil {
		return err
	}
	return setTimes(fd, unix.TimespecToNsec(st.Mtim))
}

// finish sets the modes, owners and times of the folders, now that nothing
// more is written into them.
//
// Each folder is set through a descriptor of the folder itself, opened
// without following any symlink (openat2 RESOLVE_NO_SYMLINKS), and only the last entry of
// a name counts, as in tar: a later entry may have replaced the folder
// (`x/` with mode 04777, then `x -> /usr/bin/find`), and setting the first
// entry's mode by name then changed whatever the symlink named on the host.
// A folder replaced by a symlink or a file is skipped: its entry describes
// nothing that is left.
func (u *unpacker) finish() error {
	seen := map[string]bool{}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		rel, h := u.dirs[i].rel, u.dirs[i].h
		if seen[rel] {
			continue
		}
		seen[rel] = true
		fd, err := openat2(u.root, rel, &unix.OpenHow{Flags: unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
		if rel != "." && (err == unix.ELOOP || err == unix.ENOTDIR || err == unix.ENOENT) {
			continue
		}
		if err == nil {
			if rel == "." {
				err = setRootMeta(fd, h)
			} else {
				err = setEntryMeta(fd, ".", h)
			}
			unix.Close(fd)
		}
		if err != nil {
			return entryError(h.Name, err)
		}
	}
	return nil
}

func setRootMeta(fd int, h *tar.Header) error {
	if err := setOwnerMode(fd, uint32(h.Mode), uint32(h.Uid), uint32(h.Gid)); err != nil {
		return err
	}
	return setTimes(fd, h.ModTime.UnixNano())
}

// imageLowers returns the folders of the image's layers, top first (the
// order of an overlay's lowerdir), unpacking those the cache lacks. The
// image is opened only then: a cached image costs a stat per layer. Its
// layers must be the ones the plan recorded (a changed image between plan
// and apply is an error, not a different rootfs). The caller holds the
// cache lock shared.
func (d *Driver) imageLowers(ctx context.Context, rf *plan.Rootfs) ([]string, error) {
	ri := rf.Image
	dirs := make([]string, len(ri.Layers))
	missing := false
	for i, id := range ri.Layers {
		dir, err := d.layerDir(id)
		if err != nil {
			return nil, fmt.Errorf("rootfs %s: image %s: %w", rf.Container, ri.Ref, err)
		}
		dirs[i] = dir
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			missing = true
		}
	}
	if missing {
		img, err := imgdrv.Open(ri.Ref)
		if err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", rf.Container, err)
		}
		if len(img.Layers) != len(ri.Layers) {
			return nil, fmt.Errorf("rootfs %s: image %s has %d layers now, %d when planned", rf.Container, ri.Ref, len(img.Layers), len(ri.Layers))
		}
		for i, l := range img.Layers {
			if l.DiffID != ri.Layers[i] {
				return nil, fmt.Errorf("rootfs %s: image %s: layer %d is %s now, %s when planned", rf.Container, ri.Ref, i, l.DiffID, ri.Layers[i])
			}
			b := d.buildLock(l.DiffID)
			b.Lock()
			_, err := d.ensureImageLayer(ctx, l.DiffID, l.Open, dirs[:i])
			b.Unlock()
			if err != nil {
				return nil, fmt.Errorf("rootfs %s: image %s: %w", rf.Container, ri.Ref, err)
			}
		}
	}
	top := make([]string, len(dirs))
	for i, dir := range dirs {
		top[len(dirs)-1-i] = dir
	}
	return top, nil
}

// buildLock is the lock of one digest's build: containers of one recipe or
// image applied at once wait for one build instead of each making its own.
func (d *Driver) buildLock(digest string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.builds[digest]
	if b == nil {
		b = &sync.Mutex{}
		d.builds[digest] = b
	}
	return b
}
