//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// The export of a rootfs that starts from an image (rootfs.image) is the
// tree its overlay shows: the image's layers bottom to top, then the
// recipe's, each copied over the ones below as overlayfs stacks lower
// layers (Documentation/filesystems/overlayfs.rst), without mounting
// anything:
//
//   - a character device 0/0 is a whiteout: what the layers below have at
//     its path is removed, and nothing is made;
//   - a folder with trusted.overlay.opaque=y hides the contents the layers
//     below gave it (overlayfs ignores the attribute on a layer's root, and
//     so does the export);
//   - a folder over a folder merges with it and gives it its owner, mode,
//     extended attributes and time (the top layer's, as overlayfs shows a
//     merged folder); anything else replaces what is there, a whole folder
//     included;
//   - files keep their owner, mode, extended attributes (file capabilities
//     among them) and time, symlinks their owner and time, devices and fifos
//     their numbers, owner, mode and time; the names of one file within a
//     layer stay hard links of one another.
//
// Every folder of the output is opened one component at a time beneath it
// with RESOLVE_NO_SYMLINKS (the unpacker's openBeneath): a layer's symlink
// copied into the output is never followed by a later layer's path.

// exportMerged writes the merged tree of r's layers into dir (made when
// missing). The image's layers and the recipe's are taken from the layer
// cache, unpacked or built into it first when it lacks them, as apply
// would; the cache lock is held shared so that gc removes none of them
// while they are read.
func (d *Driver) exportMerged(ctx context.Context, r *plan.Rootfs, dir string) error {
	_, digest, err := d.resolve(ctx, r)
	if err != nil {
		return err
	}
	release, err := d.lockLayers(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer release()
	rc := *r
	rc.Layer = digest
	recipe, _, err := d.layerFor(ctx, &rc)
	if err != nil {
		return err
	}
	lowers, err := d.imageLowers(ctx, r)
	if err != nil {
		return err
	}
	var layers []string
	for i := len(lowers) - 1; i >= 0; i-- {
		layers = append(layers, lowers[i])
	}
	layers = append(layers, recipe)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("rootfs %s: export to %s: %w", r.Container, dir, err)
	}
	if err := mergeLayers(ctx, dir, layers); err != nil {
		return fmt.Errorf("rootfs %s: export to %s: %w", r.Container, dir, err)
	}
	return nil
}

// merger copies layer folders into the output folder.
type merger struct {
	out *unpacker // the output's root and openBeneath
	// dirs maps each folder of the output ("." the root) to the folder of
	// the topmost layer that has it so far, whose metadata it gets last.
	dirs map[string]string
	// links maps a multi-link file of the layer being copied (dev, ino) to
	// the first of its names copied.
	links map[[2]uint64]string
}

// mergeLayers copies the layer folders layers, bottom first, into dir.
func mergeLayers(ctx context.Context, dir string, layers []string) error {
	out, err := newUnpacker(dir, "", nil)
	if err != nil {
		return err
	}
	defer out.close()
	m := &merger{out: out, dirs: map[string]string{}}
	for _, l := range layers {
		m.links = map[[2]uint64]string{}
		err := filepath.WalkDir(l, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(l, p)
			if err != nil {
				return err
			}
			if err := m.entry(p, filepath.ToSlash(rel)); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("layer sha256:%s: %w", filepath.Base(l), err)
		}
	}
	return m.folderMeta()
}

// entry copies the layer's src to rel in the output.
func (m *merger) entry(src, rel string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	typ := st.Mode & unix.S_IFMT
	if rel == "." {
		if typ != unix.S_IFDIR {
			return errors.New("the layer's root is not a folder")
		}
		m.dirs["."] = src
		return nil
	}
	pfd, err := m.out.openBeneath(path.Dir(rel), false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	base := path.Base(rel)
	if typ == unix.S_IFDIR {
		return m.folder(pfd, src, rel, base)
	}
	if err := m.remove(pfd, rel, base); err != nil {
		return err
	}
	switch typ {
	case unix.S_IFCHR:
		if st.Rdev == 0 {
			return nil // a whiteout: what was below is gone, and that is all
		}
		return m.node(pfd, base, &st)
	case unix.S_IFBLK, unix.S_IFIFO:
		return m.node(pfd, base, &st)
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		return ownerTimes(pfd, base, &st)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := m.links[id]; ok {
				return m.link(first, pfd, base)
			}
			m.links[id] = rel
		}
		fd, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return copyFile(fd, pfd, base)
	}
	return fmt.Errorf("a %s has no place in a layer", typeName(st.Mode))
}

// folder makes the folder rel (base in pfd) or merges with the one the
// layers below made; an opaque folder first loses what they put in it.
func (m *merger) folder(pfd int, src, rel, base string) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		sfd, err := unix.Open(src, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		hide := opaque(sfd)
		unix.Close(sfd)
		if hide {
			if err := removeBelow(pfd, base, false); err != nil {
				return fmt.Errorf("empty the opaque folder: %w", err)
			}
			m.forget(rel + "/")
		}
	case err == nil:
		if err := m.remove(pfd, rel, base); err != nil {
			return err
		}
		fallthrough
	case err == unix.ENOENT:
		// Private until folderMeta gives it its mode.
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	default:
		return err
	}
	m.dirs[rel] = src
	return nil
}

// remove removes what the output has at rel (base in pfd), a whole
// folder included; nothing there is fine.
func (m *merger) remove(pfd int, rel, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(pfd, base, 0)
	}
	if err := removeBelow(pfd, base, true); err != nil {
		return fmt.Errorf("remove the folder of a layer below: %w", err)
	}
	m.forget(rel)
	return nil
}

// forget drops the folders at prefix and below it from m.dirs: they are
// gone from the output.
func (m *merger) forget(prefix string) {
	for p := range m.dirs {
		if p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
			delete(m.dirs, p)
		}
	}
}

// removeBelow removes the contents of the folder name in pfd, and the
// folder itself when self is set, through descriptors: no symlink in it is
// followed.
func removeBelow(pfd int, name string, self bool) error {
	fd, err := unix.Openat(pfd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = removeBelow(fd, n, true)
		} else {
			err = unix.Unlinkat(fd, n, 0)
		}
		if err != nil {
			return err
		}
	}
	if !self {
		return nil
	}
	return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
}

// link makes base in pfd another name of the output's first, a file this
// layer copied.
func (m *merger) link(first string, pfd int, base string) error {
	ffd, err := m.out.openBeneath(path.Dir(first), false)
	if err != nil {
		return err
	}
	defer unix.Close(ffd)
	if err := unix.Linkat(ffd, path.Base(first), pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %s: %w", first, err)
	}
	return nil
}

// node makes a device or fifo like st at base in pfd. It is never opened:
// the output is no mount of hutch's, and a device there is a real one.
func (m *merger) node(pfd int, base string, st *unix.Stat_t) error {
	if err := unix.Mknodat(pfd, base, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := ownerTimes(pfd, base, st); err != nil {
		return err
	}
	// After the owner: chown(2) clears setuid and setgid. base is what
	// this call just made, never a symlink.
	if err := unix.Fchmodat(pfd, base, st.Mode&0o7777, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// ownerTimes gives base in pfd (not followed) st's owner and times.
func ownerTimes(pfd int, base string, st *unix.Stat_t) error {
	if err := unix.Fchownat(pfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// folderMeta gives every folder of the output the owner, mode, extended
// attributes and time of its topmost layer's, deepest first so that no
// later write changes a time set. trusted.overlay.opaque is not copied:
// it is the layer's instruction to overlayfs, which the copy has carried
// out, and overlayfs shows no trusted.overlay.* of a merged folder.
func (m *merger) folderMeta() error {
	rels := make([]string, 0, len(m.dirs))
	for rel := range m.dirs {
		rels = append(rels, rel)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(rels)))
	for _, rel := range rels {
		if err := m.folderMetaOf(rel, m.dirs[rel]); err != nil {
			return fmt.Errorf("folder %s: %w", rel, err)
		}
	}
	return nil
}

func (m *merger) folderMetaOf(rel, src string) error {
	sfd, err := unix.Open(src, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	fd, err := m.out.openBeneath(rel, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := setOwnerMode(fd, st.Mode, st.Uid, st.Gid); err != nil {
		return err
	}
	if err := copyXattrs(fd, sfd); err != nil {
		return err
	}
	if err := unix.Fremovexattr(fd, "trusted.overlay.opaque"); err != nil && err != unix.ENODATA {
		return fmt.Errorf("remove trusted.overlay.opaque: %w", err)
	}
	return setTimes(fd, st.Mtim.Nano())
}
