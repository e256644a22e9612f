//go:build linux

package export

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func writeFixtureImage(t *testing.T, root, out string) *Written {
	t.Helper()
	w, err := WriteImage(Image{
		Name:   "web",
		Ref:    Ref(DefaultRepository, "web", DefaultTag),
		Rootfs: root,
		Keep:   func(p string) bool { return p == "/usr/bin/tool" },
		Config: v1.Config{Entrypoint: []string{"/usr/bin/tool", "-x"}, Env: []string{"PATH=/usr/bin"}, WorkingDir: "/tmp", User: "1000:1001"},
	}, out)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// The docker-archive is what podman load reads: a manifest.json naming the
// tag, the config and one layer that is the rootfs.
func TestWriteImageDockerArchive(t *testing.T) {
	root := rootfsFixture(t)
	out := t.TempDir()
	w := writeFixtureImage(t, root, out)
	if w.Archive != filepath.Join(out, "web.tar") || w.Ref != "localhost/hutch/web:latest" {
		t.Fatalf("written %+v", w)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(w.Archive) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "localhost/hutch/web:latest" || len(m[0].Layers) != 1 {
		t.Fatalf("manifest.json: %+v; want one image tagged localhost/hutch/web:latest with one layer", m)
	}
	tag, _ := name.NewTag(w.Ref)
	img, err := tarball.ImageFromPath(w.Archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 2 || got[0] != "/usr/bin/tool" || cf.Config.User != "1000:1001" || cf.Config.WorkingDir != "/tmp" {
		t.Errorf("config: %+v", cf.Config)
	}
	if !cf.Created.Time.Equal(Epoch) || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("config: created %v os %q arch %q", cf.Created, cf.OS, cf.Architecture)
	}
	if id, _ := img.ConfigName(); id != w.Config {
		t.Errorf("archive's config %v, WriteImage said %v", id, w.Config)
	}
	checkSameTree(t, img, root)
}

// The image layout names the image by its tag in index.json and holds the
// same image as the archive.
func TestWriteImageLayout(t *testing.T) {
	root := rootfsFixture(t)
	out := t.TempDir()
	w := writeFixtureImage(t, root, out)
	idx, err := layout.ImageIndexFromPath(w.Layout)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json: %d manifests, want 1", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Annotations[RefNameAnnotation] != "latest" || d.Digest != w.Digest || d.MediaType != types.OCIManifestSchema1 {
		t.Errorf("index.json: %+v; want ref.name latest, digest %v, an OCI manifest", d, w.Digest)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := img.ConfigName(); id != w.Config {
		t.Errorf("layout's config %v, archive's %v", id, w.Config)
	}
	ls, _ := img.Layers()
	if mt, _ := ls[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
	}
	checkSameTree(t, img, root)
	for _, p := range []string{"index.json", "oci-layout"} {
		if fi, err := os.Stat(filepath.Join(w.Layout, p)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v; want mode 0644", p, fi.Mode(), err)
		}
	}
}

// Exporting the same files twice gives the same digests and the same bytes,
// in another folder and at another time.
func TestWriteImageIsDeterministic(t *testing.T) {
	root := rootfsFixture(t)
	a := writeFixtureImage(t, root, t.TempDir())
	b := writeFixtureImage(t, root, t.TempDir())
	if a.Digest != b.Digest || a.Config != b.Config {
		t.Errorf("digests %v/%v and %v/%v", a.Digest, a.Config, b.Digest, b.Config)
	}
	ba, _ := os.ReadFile(a.Archive)
	bb, _ := os.ReadFile(b.Archive)
	if string(ba) != string(bb) {
		t.Errorf("two docker-archives of the same files differ")
	}
}

// A second export replaces the first; a folder that is not an image layout
// is refused, and left as it was.
func TestWriteImageReplacesOnlyALayout(t *testing.T) {
	root := rootfsFixture(t)
	out := t.TempDir()
	writeFixtureImage(t, root, out)
	writeFixtureImage(t, root, out)
	ents, _ := os.ReadDir(out)
	if len(ents) != 2 {
		t.Errorf("output folder holds %d entries, want web and web.tar (no temporary folder left)", len(ents))
	}
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "web", "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := WriteImage(Image{Name: "web", Ref: "localhost/hutch/web:latest", Rootfs: root}, other)
	if err == nil {
		t.Fatal("WriteImage replaced a folder that is not an image layout")
	}
	if _, err := os.Stat(filepath.Join(other, "web", "rootfs")); err != nil {
		t.Errorf("the folder was touched: %v", err)
	}
}

// checkSameTree requires that the image's files are root's, by type, mode,
// owner, content hash and symlink target.
func checkSameTree(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	got, err := LayerTree(rc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := FolderTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if d := want.Diff(got, 10); len(d) > 0 {
		t.Errorf("the image's tree is not the rootfs's:\n%s", strings.Join(d, "\n"))
	}
}
