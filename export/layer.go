//go:build linux

package export

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Epoch is the time an image records where the host would otherwise put
// the moment of the export: the config's created time, the history entry,
// and the mtime of every folder and of every file hutch wrote itself (an
// inline file, a folder of the recipe). The Unix epoch, as ko and bazel's
// rules_oci write, so that the same manifest and host files give the same
// digests on any day.
var Epoch = time.Unix(0, 0).UTC()

// capabilityXattr is the one extended attribute a layer carries: file
// capabilities (setcap's security.capability), which decide what a program
// such as ping may do without being root. The others describe the host the
// layer was read on (an ACL inherited from the output folder, an SELinux
// label) and would change the digest from one machine to the next.
const capabilityXattr = "security.capability"

// WriteLayer writes the folder root as an uncompressed layer tar to w:
// every entry below root (root itself is the image's /, not an entry), in
// lexical order, with its owner, mode (setuid, setgid and sticky bits
// included), symlink target, device numbers and file capabilities. A
// regular file with several names in the folder is written once and its
// other names as hard links to the first. keep says for a path ("/server.py")
// whether its mtime is the file's own; every other entry, and every folder,
// gets Epoch. No user or group name is written: they are the host's
// /etc/passwd, not the image's. A socket has no tar form and is left out,
// as docker does.
func WriteLayer(w io.Writer, root string, keep func(path string) bool) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := walkBelow(root, func(p, rel string) error {
		return writeEntry(tw, p, rel, keep, links)
	})
	if err != nil {
		return fmt.Errorf("layer of %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("layer of %s: %w", root, err)
	}
	return nil
}

// walkBelow calls fn for every path below root (not root itself), in
// lexical order, without following symlinks, with its path relative to
// root in slash form.
func walkBelow(root string, fn func(p, rel string) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		return fn(p, filepath.ToSlash(rel))
	})
}

// writeEntry writes the tar header (and content) of host path p, named rel
// in the layer.
func writeEntry(tw *tar.Writer, p, rel string, keep func(string) bool, links map[[2]uint64]string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("%s: lstat: %w", rel, err)
	}
	h := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: Epoch,
	}
	if keep != nil && keep("/"+rel) {
		h.ModTime = time.Unix(st.Mtim.Sec, 0).UTC()
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag, h.Name, h.ModTime = tar.TypeDir, rel+"/", Epoch
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("%s: readlink: %w", rel, err)
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil
	case unix.S_IFREG:
		id := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[id]; ok && st.Nlink > 1 {
			h.Typeflag, h.Linkname = tar.TypeLink, first
			break
		}
		if st.Nlink > 1 {
			links[id] = rel
		}
		h.Typeflag, h.Size = tar.TypeReg, st.Size
		if err := capabilityOf(p, h); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return writeFile(tw, p, h)
	default:
		return fmt.Errorf("%s: file of type %#o", rel, st.Mode&unix.S_IFMT)
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// capabilityOf puts the file's security.capability, if it has one, in the
// header as the PAX record GNU tar and docker use.
func capabilityOf(p string, h *tar.Header) error {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, capabilityXattr, buf)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", capabilityXattr, err)
	}
	h.PAXRecords = map[string]string{"SCHILY.xattr." + capabilityXattr: string(buf[:n])}
	h.Format = tar.FormatPAX
	return nil
}

// writeFile writes a regular file's header and exactly h.Size bytes of it:
// a file that changed size since its lstat fails the export rather than
// writing a tar whose header lies.
func writeFile(tw *tar.Writer, p string, h *tar.Header) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	defer f.Close()
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	n, err := io.Copy(tw, io.LimitReader(f, h.Size))
	if err == nil && n != h.Size {
		err = fmt.Errorf("changed while it was read (%d of %d bytes)", n, h.Size)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
}
