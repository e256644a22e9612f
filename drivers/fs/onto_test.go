//go:build linux

package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	imgdrv "hutch/drivers/image"
	"hutch/internal/testutil"
)

// TestHostBinaryOntoImageFolders: `binaries: [/bin/true]` on a host whose
// /bin, /lib and /lib64 are symlinks into /usr (Debian), over an image
// whose /bin, /lib and /lib64 are real folders: the container's overlay
// shows the image's folders with their files (the markers, busybox) AND
// the host's /bin/true, which runs inside (its ELF interpreter
// /lib64/ld-linux-x86-64.so.2 and libc under /lib/x86_64-linux-gnu
// resolve); the merged /bin keeps the image's owner and mode. plan's
// read-only driver, resolving anew, gives apply's digest; the export of
// the merged tree and of the recipe's layer agree.
func TestHostBinaryOntoImageFolders(t *testing.T) {
	testutil.RequireRoot(t)
	// On a host whose /bin is a folder (no merged /usr) the recipe has
	// no symlink to turn into a folder, and the rest must hold as well.
	fi, err := os.Lstat("/bin")
	merged := err == nil && fi.Mode()&os.ModeSymlink != 0
	sr := stateRoot(t)
	d := New(sr)
	ctx := context.Background()
	// An image of busybox whose upper layer gives its /bin another owner
	// and mode, a marker file, and real /lib and /lib64 folders.
	rf, _ := imageLayout(t, sr, testutil.Name("fsonto"), testutil.Entry{Name: "bin/", Mode: 0o751, UID: 2},
		testutil.Entry{Name: "bin/marker", Body: "image bin\n"}, testutil.Entry{Name: "lib/"}, testutil.Entry{Name: "lib/marker", Body: "image lib\n"},
		testutil.Entry{Name: "lib64/"}, testutil.Entry{Name: "lib64/marker", Body: "image lib64\n"})
	rf.Binaries = []string{"/bin/true"}
	apply(t, d, rf)
	root := filepath.Join(rf.Bundle, "rootfs")
	// The kernel's view: the overlay's merged folder, from the host.
	for p, want := range map[string]string{"bin/marker": "image bin\n", "lib/marker": "image lib\n", "lib64/marker": "image lib64\n"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s in the container: %q, %v; the image's folder is hidden", p, b, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "bin"), &st); err != nil || st.Mode != unix.S_IFDIR|0o751 || st.Uid != 2 {
		t.Errorf("/bin in the container: mode %o uid %d, %v; want the image's folder 0751 of uid 2", st.Mode, st.Uid, err)
	}
	if target, err := os.Readlink(filepath.Join(root, "bin/true")); merged && (err != nil || target != "/usr/bin/true") {
		t.Errorf("/bin/true: %q, %v; want a symlink to /usr/bin/true", target, err)
	}
	// Run inside: the image's busybox lists the merged /bin, and the
	// host's dynamic /bin/true runs through the container's own
	// /lib64/ld-linux-x86-64.so.2 and libc.
	out := chroot(t, root, "/bin/sh", "-c", "ls /bin; /bin/true && echo true ran; /lib64/ld-linux-x86-64.so.2 --list /bin/true")
	for _, want := range []string{"marker\n", "busybox\n", "true\n", "true ran\n", "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside the container, %q is missing:\n%s", want, out)
		}
	}
	// plan: a read-only driver with no kept resolution resolves anew and
	// gives the digest apply mounted.
	if err := os.RemoveAll(filepath.Join(sr, "cache", "resolved")); err != nil {
		t.Fatal(err)
	}
	want := *rf
	want.Layer = ""
	got, err := NewReadOnly(sr).Observe(ctx, &want)
	if err != nil {
		t.Fatal(err)
	}
	if fields, _ := d.Diff(got, &want); len(fields) > 0 || want.Layer != rf.Layer {
		t.Errorf("plan's observe: differs in %v, digest %s, apply's %s", fields, want.Layer, rf.Layer)
	}
	// The same recipe without the image keeps the /bin symlink: another
	// layer.
	bare := *rf
	bare.Image, bare.Layer = nil, ""
	if digest, err := New(sr).Digest(&bare); err != nil || digest == rf.Layer {
		t.Errorf("the recipe without the image: digest %s, %v; want one other than %s", digest, err, rf.Layer)
	}
	// The merged export is the overlay's view; the recipe's layer alone
	// has /bin as a folder of symlinks.
	out2 := filepath.Join(t.TempDir(), "rootfs")
	if err := d.Export(ctx, rf, out2); err != nil {
		t.Fatal(err)
	}
	if diff := diffViews(viewOf(t, root, false), viewOf(t, out2, false)); len(diff) > 0 {
		t.Errorf("the export differs from the overlay:\n%s", strings.Join(diff, "\n"))
	}
	layer := filepath.Join(t.TempDir(), "layer")
	if err := d.ExportLayer(ctx, rf, layer); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(layer, "bin"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"true"}) {
		t.Errorf("the recipe's layer's /bin holds %v, want [true]", names)
	}
}

// TestOntoImageTree: how a recipe's tree changes over an image's folders,
// on a tree as Debian's /bin/true and its libraries give it. /bin, /lib
// and /lib64, real folders in the image, become folders of symlinks to
// what the recipe has under /usr; the image's /lib/x86_64-linux-gnu, a
// real folder too, makes the symlink put there a folder in turn; /sbin,
// which the image lacks, and /var/run, where the image has a symlink (not
// among its folders), stay symlinks; an entry the recipe put under /bin
// itself is kept; a symlink over an image folder that leads nowhere in
// the recipe is refused, naming both.
func TestOntoImageTree(t *testing.T) {
	t.Parallel()
	tr := newTree()
	for _, e := range []*entry{
		{Path: "/bin", Kind: kSymlink, Target: "usr/bin", Src: "/bin"},
		{Path: "/usr", Kind: kDir, Mode: 0o755}, {Path: "/usr/bin", Kind: kDir, Mode: 0o755},
		{Path: "/usr/bin/true", Kind: kFile, Mode: 0o755},
		{Path: "/lib64", Kind: kSymlink, Target: "usr/lib64"}, {Path: "/usr/lib64", Kind: kDir, Mode: 0o755},
		{Path: "/usr/lib64/ld-linux-x86-64.so.2", Kind: kSymlink, Target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{Path: "/lib", Kind: kSymlink, Target: "usr/lib"}, {Path: "/usr/lib", Kind: kDir, Mode: 0o755},
		{Path: "/usr/lib/x86_64-linux-gnu", Kind: kDir, Mode: 0o755},
		{Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Kind: kFile, Mode: 0o644},
		{Path: "/sbin", Kind: kSymlink, Target: "usr/sbin"},
		{Path: "/var/run", Kind: kSymlink, Target: "/run"},
		{Path: "/bin/own", Kind: kInline, Mode: 0o644},
	} {
		tr.add(e)
	}
	img := map[string]imgdrv.Folder{"/bin": {Mode: 0o751, UID: 2}, "/lib": {Mode: 0o755}, "/lib64": {Mode: 0o755},
		"/lib/x86_64-linux-gnu": {Mode: 0o750}, "/var": {Mode: 0o755}, "/etc": {Mode: 0o755}}
	read := 0
	var witnessed []string
	err := tr.ontoImage("oci-layout:img", func() (map[string]imgdrv.Folder, error) { read++; return img, nil },
		func(p string) { witnessed = append(witnessed, p) })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range tr.entries {
		switch e.Kind {
		case kSymlink:
			got[e.Path] = "-> " + e.Target
		case kDir:
			got[e.Path] = fmt.Sprintf("dir %04o %d", e.Mode, e.UID)
		default:
			got[e.Path] = e.Kind.String()
		}
	}
	want := map[string]string{
		"/bin": "dir 0751 2", "/bin/true": "-> /usr/bin/true", "/bin/own": "inline",
		"/usr": "dir 0755 0", "/usr/bin": "dir 0755 0", "/usr/bin/true": "file",
		"/lib64": "dir 0755 0", "/lib64/ld-linux-x86-64.so.2": "-> /usr/lib64/ld-linux-x86-64.so.2",
		"/usr/lib64": "dir 0755 0", "/usr/lib64/ld-linux-x86-64.so.2": "-> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/lib": "dir 0755 0", "/lib/x86_64-linux-gnu": "dir 0750 0",
		"/lib/x86_64-linux-gnu/libc.so.6": "-> /usr/lib/x86_64-linux-gnu/libc.so.6",
		"/usr/lib":                        "dir 0755 0", "/usr/lib/x86_64-linux-gnu": "dir 0755 0", "/usr/lib/x86_64-linux-gnu/libc.so.6": "file",
		"/sbin": "-> usr/sbin", "/var/run": "-> /run",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree over the image (-want +got):\n%s", diff)
	}
	if read != 1 || !slices.Equal(witnessed, []string{"/bin"}) {
		t.Errorf("the image was read %d times (want 1), witnesses %v (want [/bin])", read, witnessed)
	}
	// A symlink over an image folder that leads out of the recipe.
	bad := newTree()
	bad.add(&entry{Path: "/opt", Kind: kSymlink, Target: "/srv/opt", Src: "/data/opt"})
	err = bad.ontoImage("oci-layout:img", func() (map[string]imgdrv.Folder, error) { return map[string]imgdrv.Folder{"/opt": {}}, nil }, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "symlink /opt -> /srv/opt (host /data/opt): image oci-layout:img has a real folder at /opt") {
		t.Errorf("a symlink over an image folder leading out of the recipe: %v", err)
	}
	// A tree without symlinks does not read the image.
	plain := newTree()
	plain.add(&entry{Path: "/etc", Kind: kDir})
	if err := plain.ontoImage("x", func() (map[string]imgdrv.Folder, error) { t.Error("read"); return nil, nil }, nil); err != nil {
		t.Error(err)
	}
}
