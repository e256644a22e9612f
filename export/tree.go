//go:build linux

package export

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// TreeEntry is one object of a file tree, as a rootfs and an image layer
// can both be read: what a container sees at a path, times aside.
type TreeEntry struct {
	Type   byte   // a tar type: tar.TypeReg, TypeDir, TypeSymlink, TypeChar, TypeBlock, TypeFifo
	Mode   int64  // permission bits with setuid, setgid and sticky
	UID    int    //
	GID    int    //
	Link   string // a symlink's target
	SHA256 string // a regular file's content
	Dev    [2]int64
}

// Tree maps each path of a file tree ("usr/bin/python3", no leading slash)
// to what is there.
type Tree map[string]TreeEntry

// LayerTree reads a tar stream (a layer, or mutate.Extract of a whole
// image) into its Tree; a hard link is the file it names.
func LayerTree(r io.Reader) (Tree, error) {
	t := Tree{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			return nil, err
		}
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		e := TreeEntry{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid}
		switch h.Typeflag {
		case tar.TypeReg:
			sum := sha256.New()
			if _, err := io.Copy(sum, tr); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			e.SHA256 = hex.EncodeToString(sum.Sum(nil))
		case tar.TypeLink:
			first, ok := t[strings.TrimPrefix(h.Linkname, "./")]
			if !ok {
				return nil, fmt.Errorf("%s: hard link to %s, which comes later or not at all", p, h.Linkname)
			}
			e = first
		case tar.TypeSymlink:
			e.Link = h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			e.Dev = [2]int64{h.Devmajor, h.Devminor}
		}
		t[p] = e
	}
}

// FolderTree reads the folder root into its Tree (root itself is not in it).
func FolderTree(root string) (Tree, error) {
	t := Tree{}
	err := walkBelow(root, func(p, rel string) error {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := TreeEntry{Mode: int64(st.Mode & 0o7777), UID: int(st.Uid), GID: int(st.Gid)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.Type = tar.TypeDir
		case unix.S_IFREG:
			e.Type = tar.TypeReg
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.SHA256 = hex.EncodeToString(sum[:])
		case unix.S_IFLNK:
			e.Type = tar.TypeSymlink
			var err error
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			e.Type = tar.TypeChar
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				e.Type = tar.TypeBlock
			}
			e.Dev = [2]int64{int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))}
		case unix.S_IFIFO:
			e.Type = tar.TypeFifo
		default:
			return nil // a socket: no layer holds one
		}
		t[rel] = e
		return nil
	})
	return t, err
}

// Diff lists the paths where two trees differ, at most max of them.
func (t Tree) Diff(other Tree, max int) []string {
	var out []string
	add := func(s string) bool {
		out = append(out, s)
		return len(out) < max
	}
	for p, e := range t {
		o, ok := other[p]
		if !ok && !add(fmt.Sprintf("%s: only in the first", p)) {
			return out
		}
		if ok && o != e && !add(fmt.Sprintf("%s: %+v, then %+v", p, e, o)) {
			return out
		}
	}
	for p := range other {
		if _, ok := t[p]; !ok && !add(fmt.Sprintf("%s: only in the second", p)) {
			return out
		}
	}
	return out
}
