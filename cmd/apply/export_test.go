package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"hutch/export"
	"hutch/internal/testutil"
)

const webserverManifest = "../../manifests/webserver.yaml"

// exportTo runs hutch export of the web server with a state root of its
// own (the layer cache must not be the host's) and fails the test on a
// non-zero exit.
func exportTo(t *testing.T, stateRoot string, args ...string) string {
	t.Helper()
	code, out := runCmd(t, append([]string{"--root", stateRoot, "export", "-f", webserverManifest}, args...)...)
	if code != 0 {
		t.Fatalf("hutch export %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// archiveImage reads DIR/webserver.tar as podman load would: the image its
// manifest.json tags localhost/hutch/webserver:latest.
func archiveImage(t *testing.T, dir string) v1.Image {
	t.Helper()
	tag, err := name.NewTag("localhost/hutch/webserver:latest")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "webserver.tar"), &tag)
	if err != nil {
		t.Fatalf("docker-archive: %v", err)
	}
	return img
}

// The web server's image runs what hutch runs: python3 /server.py as its
// entrypoint, its env, cwd, user, published port and labels; and its files
// are the bundle's rootfs, by type, mode, owner and content.
func TestExportOCIImageIsTheContainer(t *testing.T) {
	testutil.RequireRoot(t)
	state, out := t.TempDir(), t.TempDir()
	exportTo(t, state, "--format", "oci-image", "--output", out)
	img := archiveImage(t, out)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"python3", "/server.py"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q; want [python3 /server.py] and no cmd", c.Entrypoint, c.Cmd)
	}
	if !slices.Contains(c.Env, "PYTHONUNBUFFERED=1") || !slices.ContainsFunc(c.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		t.Errorf("env %q; want PATH and PYTHONUNBUFFERED=1", c.Env)
	}
	if c.WorkingDir != "/" || c.User != "0:0" || c.Labels["tutorial"] != "seed" {
		t.Errorf("workingDir %q user %q labels %v", c.WorkingDir, c.User, c.Labels)
	}
	if _, ok := c.ExposedPorts["8000/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v; want 8000/tcp", c.ExposedPorts)
	}

	idx, err := layout.ImageIndexFromPath(filepath.Join(out, "webserver"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations[export.RefNameAnnotation] != "latest" {
		t.Fatalf("index.json: %+v, %v; want one image named latest", im, err)
	}
	limg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	lid, _ := limg.ConfigName()
	aid, _ := img.ConfigName()
	if lid != aid {
		t.Errorf("layout's config %v, archive's %v", lid, aid)
	}

	bundles := t.TempDir()
	exportTo(t, state, "--bundle", bundles)
	want, err := export.FolderTree(filepath.Join(bundles, "webserver", "rootfs"))
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	got, err := export.LayerTree(rc)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 100 {
		t.Fatalf("the bundle's rootfs has %d entries: not the web server's", len(want))
	}
	if d := want.Diff(got, 10); len(d) > 0 {
		t.Errorf("the image's files are not the bundle's rootfs:\n%s", strings.Join(d, "\n"))
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 2 {
		t.Errorf("the output folder holds %d entries, want webserver and webserver.tar", len(ents))
	}
}

// Two exports from two fresh layer caches, one after the other, give the
// same image digests and the same docker-archive bytes.
func TestExportOCIImageIsDeterministic(t *testing.T) {
	testutil.RequireRoot(t)
	a, b := t.TempDir(), t.TempDir()
	exportTo(t, t.TempDir(), "--format", "oci-image", "--output", a)
	exportTo(t, t.TempDir(), "--format", "oci-image", "--output", b)
	for _, f := range []string{"webserver.tar", "webserver/index.json"} {
		ba, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(filepath.Join(b, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(ba) != string(bb) {
			t.Errorf("%s differs between two exports of the same manifest", f)
		}
	}
}

func TestExportFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--format", "oci-image", "--bundle", "x"},
		{"--format", "tarball", "--output", "x"},
		{"--format", "oci-image"},
		{"--bundle", "x", "--output", "y"},
	} {
		dir := t.TempDir()
		a := append([]string{"--root", t.TempDir(), "export", "-f", webserverManifest}, args...)
		for i, s := range a {
			if s == "x" || s == "y" {
				a[i] = filepath.Join(dir, s)
			}
		}
		if code, _ := runCmd(t, a...); code == 0 {
			t.Errorf("hutch export %s: exit 0, want an error", strings.Join(args, " "))
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("hutch export %s wrote into %s", strings.Join(args, " "), dir)
		}
	}
}

// --format kube writes kube.yaml beside the images it names, with
// --repository and --tag.
func TestExportKubeNamesTheImagesBesideIt(t *testing.T) {
	testutil.RequireRoot(t)
	out := t.TempDir()
	exportTo(t, t.TempDir(), "--format", "kube", "--output", out, "--repository", "registry.example/lab", "--tag", "v1")
	b, err := os.ReadFile(filepath.Join(out, "kube.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "image: registry.example/lab/webserver:v1\n") {
		t.Errorf("kube.yaml does not name the image registry.example/lab/webserver:v1:\n%s", b)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(filepath.Join(out, "webserver.tar")) })
	if err != nil || len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"registry.example/lab/webserver:v1"}) {
		t.Errorf("webserver.tar: %+v, %v; want tagged registry.example/lab/webserver:v1", m, err)
	}
}

// A container whose rootfs starts from an image exports as that image's
// layers, unchanged (the same diff IDs), with the recipe's layer above
// them: the merged tree has the image's busybox and the manifest's file.
func TestExportOCIImageKeepsTheBaseImagesLayers(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	base := testutil.Image(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, "",
		testutil.Layer(t, testutil.LayerTar(t, testutil.BusyboxLayer(t)), testutil.Zstd))
	testutil.WriteLayout(t, filepath.Join(dir, "base"), []string{"v1"}, base)
	manifest := filepath.Join(dir, "imgexp.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: imgexp
spec:
  rootfs:
    image: oci-layout:base:v1
    files:
      - {path: /hello.txt, content: "hello\n"}
  process:
    args: [/bin/sleep, "1000"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if code, o := runCmd(t, "--root", t.TempDir(), "export", "-f", manifest, "--format", "oci-image", "--output", out); code != 0 {
		t.Fatalf("export: exit %d: %s", code, o)
	}
	tag, _ := name.NewTag("localhost/hutch/imgexp:latest")
	img, err := tarball.ImageFromPath(filepath.Join(out, "imgexp.tar"), &tag)
	if err != nil {
		t.Fatal(err)
	}
	baseLayers, _ := base.Layers()
	baseID, _ := baseLayers[0].DiffID()
	ls, err := img.Layers()
	if err != nil || len(ls) != 2 {
		t.Fatalf("%d layers, %v; want the image's and the recipe's", len(ls), err)
	}
	if id, _ := ls[0].DiffID(); id != baseID {
		t.Errorf("bottom layer %v, want the base image's %v", id, baseID)
	}
	cf, _ := img.ConfigFile()
	if !slices.Equal(cf.Config.Entrypoint, []string{"/bin/sleep", "1000"}) {
		t.Errorf("entrypoint %q", cf.Config.Entrypoint)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tree, err := export.LayerTree(rc)
	if err != nil {
		t.Fatal(err)
	}
	bb, _ := os.ReadFile("/bin/busybox")
	sum := sha256.Sum256(bb)
	if tree["bin/busybox"].SHA256 != hex.EncodeToString(sum[:]) || tree["bin/sh"].Link != "busybox" {
		t.Errorf("the image's busybox is not in the export: %+v %+v", tree["bin/busybox"], tree["bin/sh"])
	}
	hello := sha256.Sum256([]byte("hello\n"))
	if tree["hello.txt"].SHA256 != hex.EncodeToString(hello[:]) {
		t.Errorf("the recipe's /hello.txt is not in the export: %+v", tree["hello.txt"])
	}
}
