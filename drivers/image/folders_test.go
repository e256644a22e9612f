//go:build linux

package image

import (
	"archive/tar"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"hutch/internal/testutil"
)

// TestFolders: the real folders of an image's merged tree, through three
// layers: a folder over a folder takes the upper one's owner and mode, a
// whiteout deletes a folder with what is below it, an opaque folder loses
// the folders the layers below put in it, a file or a symlink replaces a
// folder, an implied parent is a folder 0755 of root, and a folder of a
// later layer comes back after its deletion.
func TestFolders(t *testing.T) {
	l1 := []testutil.Entry{
		{Name: "bin/"}, {Name: "lib/", Mode: 0o700, UID: 3},
		{Name: "gone/"}, {Name: "gone/sub/"}, {Name: "opq/"}, {Name: "opq/old/"},
		{Name: "tofile/"}, {Name: "tofile/x/"}, {Name: "tolink/"}, {Name: "back/"},
		{Name: "usr/"}, {Name: "usr/bin/"}, {Name: "sbin", Type: tar.TypeSymlink, Link: "usr/bin"},
	}
	l2 := []testutil.Entry{
		{Name: "lib/", Mode: 0o751, UID: 4, GID: 5},
		{Name: ".wh.gone"}, {Name: "opq/.wh..wh..opq"}, {Name: "opq/new/"},
		{Name: "tofile", Body: "now a file"}, {Name: "tolink", Type: tar.TypeSymlink, Link: "bin"},
		{Name: "implied/deep/file", Body: "x"}, {Name: ".wh.back"},
	}
	l3 := []testutil.Entry{{Name: "back/", Mode: 0o711}}
	img := testutil.Image(t, v1.Config{Cmd: []string{"x"}}, "",
		testutil.Layer(t, testutil.LayerTar(t, l1), testutil.Gzip), testutil.Layer(t, testutil.LayerTar(t, l2), testutil.Zstd),
		testutil.Layer(t, testutil.LayerTar(t, l3), testutil.Uncompressed))
	dir := filepath.Join(t.TempDir(), "img")
	testutil.WriteLayout(t, dir, nil, img)
	i, err := Open("oci-layout:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := i.Folders()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Folder{
		"/bin": {Mode: 0o755}, "/lib": {Mode: 0o751, UID: 4, GID: 5}, "/opq": {Mode: 0o755}, "/opq/new": {Mode: 0o755},
		"/usr": {Mode: 0o755}, "/usr/bin": {Mode: 0o755}, "/implied": {Mode: 0o755}, "/implied/deep": {Mode: 0o755},
		"/back": {Mode: 0o711},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("folders (-want +got):\n%s", diff)
	}
}
