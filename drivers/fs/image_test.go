//go:build linux

package fs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// unpackEntries unpacks a layer of entries into a fresh folder, with its
// true diff ID.
func unpackEntries(t *testing.T, entries []testutil.Entry, lowers ...string) (string, error) {
	t.Helper()
	b := testutil.LayerTar(t, entries)
	sum := sha256.Sum256(b)
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, unpackLayer(context.Background(), dir, bytes.NewReader(b), "sha256:"+hex.EncodeToString(sum[:]), lowers)
}

// emptyDir fails the test when dir holds anything.
func emptyDir(t *testing.T, dir, what string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		t.Errorf("%s: %s holds %v: the layer wrote outside its folder", what, dir, ents)
	}
}

// TestImageLayerRefusesEscapes: every entry that would reach outside the
// layer's folder is refused, named, and nothing is written outside.
func TestImageLayerRefusesEscapes(t *testing.T) {
	testutil.RequireRoot(t)
	outside := t.TempDir()
	var shadow unix.Stat_t
	if err := unix.Stat("/etc/shadow", &shadow); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		entries []testutil.Entry
		entry   string // the entry the error names
		want    string
	}{
		{"dotdot", []testutil.Entry{{Name: "../x", Body: "escaped"}}, "../x", ".. component"},
		{"dotdot deep", []testutil.Entry{{Name: "a/../../x", Body: "escaped"}}, "a/../../x", ".. component"},
		{"absolute", []testutil.Entry{{Name: outside + "/x", Body: "escaped"}}, outside + "/x", "absolute"},
		{"absolute symlink then a write through it", []testutil.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Link: outside},
			{Name: "evil/x", Body: "escaped"}}, "evil/x", "passes through a symlink"},
		{"relative symlink then a folder through it", []testutil.Entry{
			{Name: "up", Type: tar.TypeSymlink, Link: "../../../../../../../../" + outside},
			{Name: "up/d/", Mode: 0o755}}, "up/d/", "passes through a symlink"},
		{"symlink then a whiteout through it", []testutil.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Link: outside},
			{Name: "evil/.wh.x"}}, "evil/.wh.x", "passes through a symlink"},
		{"hard link to /etc/shadow", []testutil.Entry{{Name: "h", Type: tar.TypeLink, Link: "/etc/shadow"}}, "h", "absolute"},
		{"hard link up and out", []testutil.Entry{{Name: "h", Type: tar.TypeLink, Link: "../../../../../../etc/shadow"}}, "h", ".. component"},
		{"hard link through a symlink", []testutil.Entry{
			{Name: "etc", Type: tar.TypeSymlink, Link: "/etc"},
			{Name: "h", Type: tar.TypeLink, Link: "etc/shadow"}}, "h", "no file of that name"},
		{"hard link to a folder", []testutil.Entry{{Name: "d/"}, {Name: "h", Type: tar.TypeLink, Link: "d"}}, "h", "hard link to d"},
		{"whiteout of the root", []testutil.Entry{{Name: ".wh."}}, ".wh.", "delete the root"},
		{"opaque root", []testutil.Entry{{Name: ".wh..wh..opq"}}, ".wh..wh..opq", "ignores the opaque mark on a lower layer's root"},
		{"whiteout of ..", []testutil.Entry{{Name: "a/"}, {Name: "a/.wh.."}}, "a/.wh..", "delete the root or leave the layer"},
		{"whiteout of ... in the root", []testutil.Entry{{Name: "./.wh.."}}, "./.wh..", "delete the root"},
		{"overlay's own xattr", []testutil.Entry{{Name: "d/", Xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}}}, "d/", "trusted.overlay.redirect is refused"},
		{"the root as a file", []testutil.Entry{{Name: ".", Type: tar.TypeReg}}, ".", "root must be a folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := unpackEntries(t, tc.entries)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("entry %q", tc.entry)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one naming entry %q and saying %q", err, tc.entry, tc.want)
			}
			emptyDir(t, outside, tc.name)
			var now unix.Stat_t
			if err := unix.Stat("/etc/shadow", &now); err != nil || now.Nlink != shadow.Nlink || now.Ino != shadow.Ino {
				t.Errorf("/etc/shadow changed: %v, links %d (was %d)", err, now.Nlink, shadow.Nlink)
			}
		})
	}
}

// TestImageLayerDiffIDMismatch: a layer whose content does not hash to its
// diff ID is refused, and the cache keeps nothing of it (no layer folder,
// no temporary folder).
func TestImageLayerDiffIDMismatch(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	b := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/"}, {Name: "etc/motd", Body: "hello"}})
	claimed := "sha256:" + strings.Repeat("ab", 32)
	release, err := d.lockLayers(unix.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.ensureImageLayer(context.Background(), claimed, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, nil)
	release()
	if err == nil || !strings.Contains(err.Error(), "not to its diff ID") || !strings.Contains(err.Error(), claimed) {
		t.Fatalf("a layer that is not its diff ID: %v", err)
	}
	if layers, temps := layerNames(t, sr); len(layers) > 0 || len(temps) > 0 {
		t.Errorf("the cache keeps %v and %v of a refused layer", layers, temps)
	}
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2,
// effective) granting CAP_NET_BIND_SERVICE.
func capNetBindService() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return string(b)
}

// TestImageLayerKeepsMetadata: owners, modes with setuid, setgid and
// sticky, times, extended attributes (file capabilities), symlinks, hard
// links, devices and fifos are unpacked as the tar says.
func TestImageLayerKeepsMetadata(t *testing.T) {
	testutil.RequireRoot(t)
	mt := time.Unix(1600000000, 123000000)
	dir, err := unpackEntries(t, []testutil.Entry{
		{Name: "srv/", Mode: 0o750, UID: 33, GID: 34, ModTime: mt},
		{Name: "srv/su", Mode: 0o4755, UID: 1000, GID: 1001, Body: "x", ModTime: mt,
			Xattrs: map[string]string{"security.capability": capNetBindService(), "user.note": "hi"}},
		{Name: "srv/sg", Mode: 0o2711, Body: "y"},
		{Name: "srv/hard", Type: tar.TypeLink, Link: "srv/su"},
		{Name: "srv/link", Type: tar.TypeSymlink, Link: "su", UID: 5, GID: 6},
		{Name: "tmp/", Mode: 0o1777},
		{Name: "dev/null0", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o620},
		{Name: "implicit/parents/file", Body: "z"},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := func(p string) *unix.Stat_t {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	check := func(p string, mode uint32, uid, gid uint32) *unix.Stat_t {
		s := st(p)
		if s.Mode != mode || s.Uid != uid || s.Gid != gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", p, s.Mode, s.Uid, s.Gid, mode, uid, gid)
		}
		return s
	}
	if s := check("srv", unix.S_IFDIR|0o750, 33, 34); s.Mtim.Nano() != mt.UnixNano() {
		t.Errorf("srv: mtime %v, want %v", time.Unix(0, s.Mtim.Nano()), mt)
	}
	su := check("srv/su", unix.S_IFREG|0o4755, 1000, 1001)
	if su.Mtim.Nano() != mt.UnixNano() || su.Nlink != 2 {
		t.Errorf("srv/su: mtime %v, %d links (want 2)", time.Unix(0, su.Mtim.Nano()), su.Nlink)
	}
	if h := st("srv/hard"); h.Ino != su.Ino {
		t.Error("srv/hard is not a hard link of srv/su")
	}
	check("srv/sg", unix.S_IFREG|0o2711, 0, 0)
	check("srv/link", unix.S_IFLNK|0o777, 5, 6)
	if target, _ := os.Readlink(filepath.Join(dir, "srv/link")); target != "su" {
		t.Errorf("srv/link -> %q", target)
	}
	check("tmp", unix.S_IFDIR|0o1777, 0, 0)
	if s := check("dev/null0", unix.S_IFCHR|0o666, 0, 0); s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null0: device %d:%d", unix.Major(s.Rdev), unix.Minor(s.Rdev))
	}
	check("run/fifo", unix.S_IFIFO|0o620, 0, 0)
	check("implicit/parents", unix.S_IFDIR|0o755, 0, 0)
	for name, want := range map[string]string{"security.capability": capNetBindService(), "user.note": "hi"} {
		b := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dir, "srv/su"), name, b)
		if err != nil || string(b[:n]) != want {
			t.Errorf("srv/su %s: %q, %v", name, b[:max(n, 0)], err)
		}
	}
}

// overlayOf mounts an overlay of lowers (top first) at a fresh folder and
// returns it; the test's end unmounts it.
func overlayOf(t *testing.T, lowers ...string) string {
	t.Helper()
	base := t.TempDir()
	mnt, upper, work := filepath.Join(base, "m"), filepath.Join(base, "u"), filepath.Join(base, "w")
	for _, d := range []string{mnt, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := mountLowers(mnt, lowers, upper, work, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountAll(mnt) })
	return mnt
}

// TestImageWhiteoutsThroughOverlay: what the upper layer deletes is absent
// from the merged view, an opaque folder hides the lower folder's
// contents, and a hard link to a lower file is a copy of it.
func TestImageWhiteoutsThroughOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	lower, err := unpackEntries(t, []testutil.Entry{{Name: "etc/"}, {Name: "etc/gone", Body: "a"}, {Name: "etc/kept", Body: "b"},
		{Name: "data/"}, {Name: "data/old", Body: "c"}, {Name: "bin/"}, {Name: "bin/tool", Mode: 0o4755, UID: 7, Body: "tool"}})
	if err != nil {
		t.Fatal(err)
	}
	upper, err := unpackEntries(t, []testutil.Entry{{Name: "etc/.wh.gone"}, {Name: "data/"}, {Name: "data/.wh..wh..opq"},
		{Name: "data/new", Body: "d"}, {Name: "usr/"}, {Name: "usr/tool", Type: tar.TypeLink, Link: "bin/tool"}}, lower)
	if err != nil {
		t.Fatal(err)
	}
	m := overlayOf(t, upper, lower)
	for p, want := range map[string]string{"etc/gone": "", "etc/kept": "b", "data/old": "", "data/new": "d", "usr/tool": "tool", "bin/tool": "tool"} {
		b, err := os.ReadFile(filepath.Join(m, p))
		switch {
		case want == "" && !os.IsNotExist(err):
			t.Errorf("%s: %q, %v; deleted by the upper layer, it must be absent", p, b, err)
		case want != "" && (err != nil || string(b) != want):
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(m, "data"))
	if len(ents) != 1 || ents[0].Name() != "new" {
		t.Errorf("data/ of an opaque folder: %v, want only new", ents)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "usr/tool"), &st); err != nil || st.Mode != unix.S_IFREG|0o4755 || st.Uid != 7 {
		t.Errorf("the copied-up hard link: %+v, %v", st, err)
	}
}

// imageLayout writes an OCI layout of a busybox layer and a layer of
// files, tagged v1, and returns the rootfs over it with its diff IDs.
func imageLayout(t *testing.T, sr, name string, extra ...testutil.Entry) (*plan.Rootfs, v1.Image) {
	t.Helper()
	bb := testutil.Layer(t, testutil.LayerTar(t, testutil.BusyboxLayer(t)), testutil.Gzip)
	files := append([]testutil.Entry{{Name: "srv/"}, {Name: "srv/index.html", Body: "from the image\n"}}, extra...)
	img := testutil.Image(t, v1.Config{Cmd: []string{"/bin/sh"}}, "", bb, testutil.Layer(t, testutil.LayerTar(t, files), testutil.Zstd))
	dir := filepath.Join(t.TempDir(), "img")
	testutil.WriteLayout(t, dir, []string{"v1"}, img)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	rf := &plan.Rootfs{Container: name, Bundle: filepath.Join(sr, "containers", name),
		Dirs:  []plan.Dir{{Path: "/dev", Mode: 0o755}, {Path: "/proc", Mode: 0o555}, {Path: "/sys", Mode: 0o555}, {Path: "/tmp", Mode: 0o1777}},
		Image: &plan.RootfsImage{Ref: "oci-layout:" + dir + ":v1"}}
	for _, h := range cf.RootFS.DiffIDs {
		rf.Image.Layers = append(rf.Image.Layers, h.String())
	}
	return rf, img
}

// TestImageRootfs: a rootfs over an image's layers is mounted with the
// recipe's layer on top and the image's below it, top first; mountinfo
// gives the stack back (a no-op when unchanged, "image.layers" when the
// image changed); a second container shares the unpacked layers; gc keeps
// them while a container uses them and removes them after.
func TestImageRootfs(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	ctx := context.Background()
	a, _ := imageLayout(t, sr, testutil.Name("fsimg"))
	apply(t, d, a)
	m, err := mountAt(filepath.Join(a.Bundle, "rootfs"))
	if err != nil || m == nil {
		t.Fatalf("no mount: %v", err)
	}
	want := []string{filepath.Join(sr, "layers", strings.TrimPrefix(a.Layer, "sha256:"))}
	for i := len(a.Image.Layers) - 1; i >= 0; i-- {
		want = append(want, filepath.Join(sr, "layers", strings.TrimPrefix(a.Image.Layers[i], "sha256:")))
	}
	if got := lowersOf(m); !slices.Equal(got, want) {
		t.Errorf("lowers %v, want %v", got, want)
	}
	root := filepath.Join(a.Bundle, "rootfs")
	if b, err := os.ReadFile(filepath.Join(root, "srv/index.html")); err != nil || string(b) != "from the image\n" {
		t.Errorf("srv/index.html: %q, %v", b, err)
	}
	if out := chroot(t, root, "/bin/sh", "-c", "echo hi from $0"); out != "hi from /bin/sh\n" {
		t.Errorf("the image's busybox: %q", out)
	}
	// Observed again: nothing to change.
	got, err := d.Observe(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if fields, _ := d.Diff(got, a); len(fields) > 0 {
		t.Errorf("an unchanged image rootfs differs in %v", fields)
	}
	if g := got.(*plan.Rootfs).Image; g == nil || g.Ref != a.Image.Ref || !slices.Equal(g.Layers, a.Image.Layers) {
		t.Errorf("observed image %+v, want %+v", g, a.Image)
	}
	// The image changed (a tag moved to other layers): the rootfs is
	// replaced.
	changed := *a
	changed.Image = &plan.RootfsImage{Ref: a.Image.Ref, Layers: append(slices.Clone(a.Image.Layers[:1]), "sha256:"+strings.Repeat("cd", 32))}
	if _, force := d.Diff(got, &changed); !slices.Contains(force, "image.layers") {
		t.Errorf("a changed image forces %v, want image.layers", force)
	}
	// A second container of the same image unpacks nothing again.
	layerDir := filepath.Join(sr, "layers", strings.TrimPrefix(a.Image.Layers[0], "sha256:"))
	var before unix.Stat_t
	unix.Stat(layerDir, &before)
	b, _ := imageLayout(t, sr, testutil.Name("fsimg"))
	b.Image = a.Image
	apply(t, d, b)
	var after unix.Stat_t
	unix.Stat(layerDir, &after)
	if before.Ino != after.Ino {
		t.Error("the second container's layer was unpacked again")
	}
	// gc keeps what mounted overlays use.
	if removed, err := d.GC(nil); err != nil || len(removed) > 0 {
		t.Errorf("gc with both containers up removed %v, %v", removed, err)
	}
	for _, rf := range []*plan.Rootfs{a, b} {
		if err := d.Delete(ctx, rf); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := d.GC(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append([]string{a.Layer}, a.Image.Layers...) {
		if !slices.Contains(removed, id) {
			t.Errorf("gc after delete kept %s (removed %v)", id, removed)
		}
	}
	if layers, _ := layerNames(t, sr); len(layers) > 0 {
		t.Errorf("layers left after gc: %v", layers)
	}
}

// TestImageManyLayers: 70 layers, whose lowerdir option is longer than
// mount(2)'s page, are mounted (fsconfig lowerdir+) and read back.
func TestImageManyLayers(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	var layers []v1.Layer
	for i := 0; i < 70; i++ {
		layers = append(layers, testutil.Layer(t, testutil.LayerTar(t, []testutil.Entry{{Name: fmt.Sprintf("l/%02d", i), Body: fmt.Sprint(i)}}), testutil.Gzip))
	}
	img := testutil.Image(t, v1.Config{Cmd: []string{"x"}}, "", layers...)
	dir := filepath.Join(t.TempDir(), "img")
	testutil.WriteLayout(t, dir, nil, img)
	cf, _ := img.ConfigFile()
	name := testutil.Name("fsmany")
	rf := &plan.Rootfs{Container: name, Bundle: filepath.Join(sr, "containers", name),
		Dirs: []plan.Dir{{Path: "/proc", Mode: 0o555}}, Image: &plan.RootfsImage{Ref: "oci-layout:" + dir}}
	for _, h := range cf.RootFS.DiffIDs {
		rf.Image.Layers = append(rf.Image.Layers, h.String())
	}
	apply(t, d, rf)
	m, err := mountAt(filepath.Join(rf.Bundle, "rootfs"))
	if err != nil || m == nil {
		t.Fatal(err)
	}
	if n := len(lowersOf(m)); n != 71 {
		t.Errorf("%d lower folders, want 71", n)
	}
	if len(strings.Join(lowersOf(m), ":")) <= legacyMountMax {
		t.Errorf("the lowerdir option fits in a page: the test proves nothing")
	}
	ents, _ := os.ReadDir(filepath.Join(rf.Bundle, "rootfs", "l"))
	if len(ents) != 70 {
		t.Errorf("l/ holds %d files, want 70", len(ents))
	}
	got, err := d.Observe(context.Background(), rf)
	if err != nil {
		t.Fatal(err)
	}
	if fields, _ := d.Diff(got, rf); len(fields) > 0 {
		t.Errorf("diff %v", fields)
	}
}
