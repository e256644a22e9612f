//go:build linux

package image

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"
)

// Folder is a folder of the image's merged tree, with the owner and mode
// its topmost layer gives it (what an overlay of the layers shows).
type Folder struct {
	Mode     uint32 // permission bits with setuid, setgid and sticky
	UID, GID int
}

// Folders returns every real folder (not a symlink to one) of the image's
// merged tree, by absolute path, as an overlay of its layers unpacked the
// way drivers/fs unpacks them shows it: layers bottom to top, a folder over
// a folder merges (the upper one's owner and mode win), anything else at a
// path replaces what the layers below had there and everything under it, a
// whiteout .wh.NAME deletes NAME, an opaque .wh..wh..opq empties its folder
// of what the layers below put in it, and the parents an entry implies
// without listing them are folders 0755 of root (the unpacker makes them
// so). "/" is left out. Each layer is read once, as a stream; nothing is
// written. Names with a ".." component are skipped: the unpack refuses them.
func (i *Image) Folders() (map[string]Folder, error) {
	merged := map[string]Folder{}
	for _, l := range i.Layers {
		if err := foldersOfLayer(l, merged); err != nil {
			return nil, err
		}
	}
	return merged, nil
}

// foldersOfLayer applies one layer to merged: first what it deletes or
// replaces (whiteouts, opaque folders, non-folders), then the folders it
// has, so that the order of the tar's entries does not matter.
func foldersOfLayer(l *Layer, merged map[string]Folder) error {
	rc, err := l.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	dirs := map[string]Folder{}
	var gone, emptied []string // deleted or replaced paths; opaque folders
	implied := func(p string) {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := dirs[d]; ok {
				return // its parents are there too
			}
			dirs[d] = Folder{Mode: 0o755}
		}
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %s: read: %w", l.DiffID, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader || hasDotDot(h.Name) {
			continue
		}
		p := path.Clean("/" + h.Name)
		if p == "/" {
			continue
		}
		dir, base := path.Split(p)
		dir = path.Clean(dir)
		switch {
		case base == ".wh..wh..opq":
			emptied = append(emptied, dir)
			implied(p)
			continue
		case strings.HasPrefix(base, ".wh."):
			if name := strings.TrimPrefix(base, ".wh."); name != "" && name != "." && name != ".." && !strings.HasPrefix(name, ".wh.") {
				gone = append(gone, path.Join(dir, name))
			}
			implied(p)
			continue
		}
		implied(p)
		if h.Typeflag == tar.TypeDir {
			dirs[p] = Folder{Mode: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid}
			continue
		}
		delete(dirs, p)
		gone = append(gone, p)
	}
	for _, d := range emptied {
		removeUnder(merged, d)
	}
	for _, p := range gone {
		delete(merged, p)
		removeUnder(merged, p)
	}
	for p, f := range dirs {
		merged[p] = f
	}
	return nil
}

// removeUnder deletes the paths strictly below dir.
func removeUnder(m map[string]Folder, dir string) {
	for p := range m {
		if strings.HasPrefix(p, dir+"/") {
			delete(m, p)
		}
	}
}

func hasDotDot(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}
