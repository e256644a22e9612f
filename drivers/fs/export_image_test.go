//go:build linux

package fs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// viewOf describes every path below root (root itself as ".") as a
// container sees it: type, mode, owner, size, content hash, symlink
// target, device numbers, extended attributes, the other names of its
// inode in the tree, and, with times set, its mtime.
func viewOf(t *testing.T, root string, times bool) map[string]string {
	t.Helper()
	view := map[string]string{}
	inodes := map[uint64][]string{}
	ino := map[string]uint64{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("%s %04o %d:%d size %d", typeName(st.Mode), st.Mode&0o7777, st.Uid, st.Gid, st.Size)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			s += " sha256 " + hex.EncodeToString(sum[:])
			ino[rel] = st.Ino
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			s += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			s += fmt.Sprintf(" device %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			s += " xattrs" + xattrsOf(t, p)
		}
		if times {
			s += " mtime " + time.Unix(0, st.Mtim.Nano()).UTC().Format(time.RFC3339Nano)
		}
		view[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, i := range ino {
		if names := inodes[i]; len(names) > 1 {
			sort.Strings(names)
			view[p] += " names " + strings.Join(names, ",")
		}
	}
	return view
}

// xattrsOf lists p's extended attributes, name=hex of value, sorted.
func xattrsOf(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || name == "security.selinux" {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, name+"="+hex.EncodeToString(v[:m]))
	}
	sort.Strings(out)
	return " [" + strings.Join(out, " ") + "]"
}

// diffViews lists the paths where two views differ.
func diffViews(want, got map[string]string) []string {
	var out []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			out = append(out, fmt.Sprintf("%s: only in the overlay: %s", p, w))
		} else if g != w {
			out = append(out, fmt.Sprintf("%s: overlay %s, export %s", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			out = append(out, fmt.Sprintf("%s: only in the export: %s", p, g))
		}
	}
	sort.Strings(out)
	return out
}

// twoLayerImage is an image of two layers in an OCI layout: the upper one
// deletes files and a folder of the lower one with whiteouts, makes a
// folder opaque, turns a folder into a file and a file into a folder,
// gives a folder another owner, mode and attribute, replaces one name of
// a hard-linked pair and links a lower file (a copy-up); and a rootfs of a
// recipe over it that replaces a file of the image and the mode of its
// /tmp.
func twoLayerImage(t *testing.T, sr, name string) *plan.Rootfs {
	t.Helper()
	t1, t2 := time.Unix(1600000000, 5000), time.Unix(1650000000, 7000)
	lower := []testutil.Entry{
		{Name: "etc/"}, {Name: "etc/gone", Body: "a"}, {Name: "etc/kept", Body: "b"},
		{Name: "data/"}, {Name: "data/old", Body: "c"}, {Name: "data/sub/"}, {Name: "data/sub/deep", Body: "d"},
		{Name: "bin/"}, {Name: "bin/tool", Mode: 0o4755, UID: 7, GID: 8, Body: "tool", ModTime: t1,
			Xattrs: map[string]string{"security.capability": capNetBindService(), "user.note": "hi"}},
		{Name: "lib/"}, {Name: "lib/a", Body: "shared"}, {Name: "lib/b", Type: tar.TypeLink, Link: "lib/a"},
		{Name: "lib/x", Body: "pair"}, {Name: "lib/y", Type: tar.TypeLink, Link: "lib/x"},
		{Name: "opt/", Mode: 0o700, UID: 5, ModTime: t1}, {Name: "opt/file", Body: "o"},
		{Name: "replaced/"}, {Name: "replaced/inner", Body: "e"},
		{Name: "file2dir", Body: "f"},
		{Name: "link", Type: tar.TypeSymlink, Link: "etc/kept", UID: 3, GID: 4, ModTime: t1},
		{Name: "dev/"}, {Name: "dev/null0", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		{Name: "run/"}, {Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o620, UID: 9},
		{Name: "tmp/"},
		{Name: "gone-dir/"}, {Name: "gone-dir/x", Body: "g"},
	}
	upper := []testutil.Entry{
		{Name: "etc/"}, {Name: "etc/.wh.gone"},
		{Name: "data/"}, {Name: "data/.wh..wh..opq"}, {Name: "data/new", Body: "h"},
		{Name: "replaced", Body: "now a file"},
		{Name: "file2dir/"}, {Name: "file2dir/in", Body: "i"},
		{Name: "opt/", Mode: 0o750, UID: 6, ModTime: t2, Xattrs: map[string]string{"user.dir": "v"}},
		{Name: "usr/"}, {Name: "usr/tool", Type: tar.TypeLink, Link: "bin/tool"},
		{Name: "lib/"}, {Name: "lib/y", Body: "replaced"},
		{Name: ".wh.gone-dir"}, {Name: ".wh.nothing"},
		{Name: "bin2", Type: tar.TypeSymlink, Link: "bin"},
	}
	img := testutil.Image(t, v1.Config{Cmd: []string{"/bin/tool"}}, "",
		testutil.Layer(t, testutil.LayerTar(t, lower), testutil.Gzip), testutil.Layer(t, testutil.LayerTar(t, upper), testutil.Uncompressed))
	dir := filepath.Join(t.TempDir(), "img")
	testutil.WriteLayout(t, dir, []string{"v1"}, img)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	kept := "from the recipe\n"
	sum := sha256.Sum256([]byte(kept))
	rf := &plan.Rootfs{Container: name, Bundle: filepath.Join(sr, "containers", name),
		Files: []plan.InlineFile{{Path: "/etc/kept", Mode: 0o600, Content: kept, Digest: "sha256:" + hex.EncodeToString(sum[:])}},
		Dirs:  []plan.Dir{{Path: "/dev", Mode: 0o755}, {Path: "/proc", Mode: 0o555}, {Path: "/sys", Mode: 0o555}, {Path: "/tmp", Mode: 0o1777}},
		Image: &plan.RootfsImage{Ref: "oci-layout:" + dir + ":v1"}}
	for _, h := range cf.RootFS.DiffIDs {
		rf.Image.Layers = append(rf.Image.Layers, h.String())
	}
	return rf
}

// TestExportImageRootfsIsTheOverlaysView: the export of a rootfs over a
// two-layer image is the tree its overlay shows, path for path (type,
// mode, owner, size, content, symlink target, device numbers, extended
// attributes, hard links, times): the image's files are in it, what a
// layer deletes is not, the recipe's layer is on top. Exported again from
// a cache gc emptied (the layers unpacked and built anew), it is the same
// but for times of folders the recipe made. ExportLayer writes the
// recipe's layer alone.
func TestExportImageRootfsIsTheOverlaysView(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	ctx := context.Background()
	rf := twoLayerImage(t, sr, testutil.Name("fsexp"))
	apply(t, d, rf)
	merged := viewOf(t, filepath.Join(rf.Bundle, "rootfs"), true)
	out := filepath.Join(t.TempDir(), "rootfs")
	if err := d.Export(ctx, rf, out); err != nil {
		t.Fatal(err)
	}
	exported := viewOf(t, out, true)
	// The root the overlay shows is the container's upper folder
	// (overlay/upper), not a layer's: its time is when apply made it.
	for _, v := range []map[string]string{merged, exported} {
		v["."], _, _ = strings.Cut(v["."], " mtime")
	}
	if diff := diffViews(merged, exported); len(diff) > 0 {
		t.Errorf("the export differs from the overlay:\n%s", strings.Join(diff, "\n"))
	}
	// What the overlay must show, so that the two agree on the right tree.
	for p, want := range map[string]string{
		"etc/kept": "from the recipe\n", "data/new": "h", "replaced": "now a file", "file2dir/in": "i",
		"usr/tool": "tool", "lib/a": "shared", "lib/b": "shared", "lib/x": "pair", "lib/y": "replaced", "opt/file": "o",
	} {
		if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != want {
			t.Errorf("export %s: %q, %v; want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"etc/gone", "data/old", "data/sub", "replaced/inner", "gone-dir", "nothing"} {
		if _, err := os.Lstat(filepath.Join(out, p)); err == nil {
			t.Errorf("export %s: %v; a layer deleted it", p, err)
		}
	}
	for p, want := range map[string]string{
		"opt":      "folder 0750 6:0",
		"tmp":      "folder 1777 0:0",
		"bin/tool": "file 4755 7:8",
		"lib/a":    "names lib/a,lib/b",
		"run/fifo": "fifo 0620 9:0",
		"link":     "symlink 0777 3:4",
	} {
		if !strings.Contains(exported[p], want) {
			t.Errorf("export %s: %s; want %s", p, exported[p], want)
		}
	}
	if !strings.Contains(exported["bin/tool"], "security.capability=") || !strings.Contains(exported["opt"], "user.dir=") ||
		strings.Contains(exported["data"], "trusted.overlay") {
		t.Errorf("extended attributes: bin/tool %s, opt %s, data %s", exported["bin/tool"], exported["opt"], exported["data"])
	}
	// ExportLayer: the recipe's layer, without the image.
	recipe := filepath.Join(t.TempDir(), "recipe")
	if err := d.ExportLayer(ctx, rf, recipe); err != nil {
		t.Fatal(err)
	}
	var names []string
	for p := range viewOf(t, recipe, false) {
		names = append(names, p)
	}
	sort.Strings(names)
	if want := []string{".", "dev", "etc", "etc/kept", "proc", "sys", "tmp"}; !slices.Equal(names, want) {
		t.Errorf("ExportLayer wrote %v, want %v", names, want)
	}
	// From an empty cache: the export unpacks and builds what it needs.
	if err := d.Delete(ctx, rf); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GC(nil); err != nil {
		t.Fatal(err)
	}
	if layers, _ := layerNames(t, sr); len(layers) > 0 {
		t.Fatalf("gc left %v", layers)
	}
	again := filepath.Join(t.TempDir(), "rootfs")
	if err := New(sr).Export(ctx, rf, again); err != nil {
		t.Fatal(err)
	}
	if diff := diffViews(viewOf(t, out, false), viewOf(t, again, false)); len(diff) > 0 {
		t.Errorf("exported from an empty cache, the rootfs differs:\n%s", strings.Join(diff, "\n"))
	}
}
