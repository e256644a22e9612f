//go:build linux

package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"hutch/export"
)

// The round trip of issue 20: a container written out as an image by
// hutch export --format oci-image, then run by hutch from that image
// (rootfs.image, no process args), has the file tree of the container
// it came from and runs its process.

// specBlock replaces the block of the manifest's spec key (a line
// "  key:" and the lines below it indented deeper, blank ones included)
// with with (nothing when with is empty).
func specBlock(t *testing.T, s, key, with string) string {
	t.Helper()
	lines := strings.SplitAfter(s, "\n")
	start := -1
	for i, l := range lines {
		if l == "  "+key+":\n" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("the manifest has no spec.%s block:\n%s", key, s)
	}
	end := start + 1
	for end < len(lines) && (strings.TrimSpace(lines[end]) == "" || strings.HasPrefix(lines[end], "   ")) {
		end++
	}
	return strings.Join(lines[:start], "") + with + strings.Join(lines[end:], "")
}

// fromImage is the lab's web server manifest with its rootfs replaced by
// the image ref (and extra added to it) and no process args, cwd or env:
// all of the process comes from the image's config.
func (l *lab) fromImage(path, ref, extra string) {
	l.Write(path, func(s string) string {
		s = specBlock(l.T, s, "rootfs", "  rootfs:\n    image: "+ref+"\n"+extra)
		return specBlock(l.T, s, "process", "  process:\n    stopTimeout: 300ms\n")
	})
}

// exportBundle is the tree of the rootfs hutch export --bundle writes for
// the manifest's container.
func (l *lab) exportBundle(manifest string) export.Tree {
	l.T.Helper()
	dir := l.T.TempDir()
	l.Must("export", "-f", manifest, "--bundle", dir)
	return folderTree(l.T, filepath.Join(dir, l.Name, "rootfs"))
}

// sameAsLive fails the test when the running container's rootfs, as its
// overlay shows it on the host (the container's own mounts, /proc and the
// like, are in its mount namespace only), differs from want. What the
// container's process wrote since it started (its overlay's upper folder)
// must differ from any export, and is left out of both sides when it is
// python's bytecode cache (a __pycache__ folder and the .pyc in it, which
// python writes when it finds a cached module older than its source); the
// test fails on anything else the process wrote.
func (l *lab) sameAsLive(what string, want export.Tree) {
	l.T.Helper()
	for _, m := range l.Mounts() {
		if f := strings.Fields(m); len(f) > 4 && strings.HasPrefix(f[4], l.Bundle()+"/rootfs/") {
			l.T.Fatalf("a mount below the container's rootfs on the host: %s", m)
		}
	}
	got := folderTree(l.T, filepath.Join(l.Bundle(), "rootfs"))
	upper := folderTree(l.T, filepath.Join(l.Bundle(), "overlay", "upper"))
	want = maps.Clone(want)
	var cache []string
	for p, e := range upper {
		switch {
		case strings.Contains("/"+p+"/", "/__pycache__/"):
			cache = append(cache, p)
			delete(want, p)
			delete(got, p)
		case e.Type != tar.TypeDir: // a folder copied up for what is in it
			l.T.Errorf("%s: the container's process wrote %s, which the test does not expect", what, p)
		}
	}
	if len(cache) > 0 {
		sort.Strings(cache)
		l.T.Logf("%s: python's bytecode cache, written by the container's process, not compared: %s", what, strings.Join(cache, " "))
	}
	sameTree(l.T, what, want, got)
}

func folderTree(t *testing.T, dir string) export.Tree {
	t.Helper()
	tr, err := export.FolderTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// sameTree fails the test when the trees differ, naming up to 20 paths.
func sameTree(t *testing.T, what string, want, got export.Tree) {
	t.Helper()
	if d := want.Diff(got, 20); len(d) > 0 {
		t.Errorf("%s: the file trees differ (first: the one wanted, second: the one found):\n%s", what, strings.Join(d, "\n"))
	}
	files := 0
	for _, e := range want {
		if e.Type == tar.TypeReg {
			files++
		}
	}
	if files < 100 {
		t.Errorf("%s: the tree wanted has %d files: not the web server's rootfs (python's standard library alone has hundreds)", what, files)
	}
}

// TestRoundTripWebServer: manifests/webserver.yaml exported as an image;
// the image run from its OCI layout, then from its docker-archive, by a
// manifest with no process args serves the listing of / (the image's
// entrypoint, python3 /server.py, ran in its working folder), and the
// container's file tree (path, type, mode, owner, content hash, symlink
// target) is the exported bundle's; delete leaves the host clean, and gc
// removes the image's layers.
func TestRoundTripWebServer(t *testing.T) {
	l := newLab(t)
	bundle := l.exportBundle(l.Manifest)
	out := t.TempDir()
	l.Must("export", "-f", l.Manifest, "--format", "oci-image", "--output", out)
	layout, archive := filepath.Join(out, l.Name), filepath.Join(out, l.Name+".tar")
	for _, p := range []string{filepath.Join(layout, "index.json"), archive} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the export wrote no %s: %v", p, err)
		}
	}
	var layers []string
	for _, ref := range []string{"oci-layout:" + layout, "docker-archive:" + archive} {
		l.Manifest = filepath.Join(t.TempDir(), "fromimage.yaml")
		l.fromImage(l.Manifest, ref, "")
		l.Must("validate", "-f", l.Manifest)
		l.Apply()
		l.Serving()
		l.runs(ref, "python3", "/server.py")
		l.sameAsLive(ref, bundle)
		layers = l.imageLayers()
		l.Must("delete", "-f", l.Manifest)
		l.Gone()
	}
	l.gcRemoves(layers)
}

// runs checks the container's process runs args: the image's
// entrypoint, as no manifest args replace it.
func (l *lab) runs(what string, args ...string) {
	l.T.Helper()
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", l.get().PID))
	if want := strings.Join(args, "\x00") + "\x00"; err != nil || string(cmd) != want {
		l.T.Errorf("%s: the container runs %q (%v), want the image's entrypoint %q", what, cmd, err, want)
	}
}

// imageLayers are the digests of the image layers below the running
// container's recipe layer (its overlay/layer record: the recipe's layer
// first, then the image's, top first).
func (l *lab) imageLayers() []string {
	l.T.Helper()
	b, err := os.ReadFile(filepath.Join(l.Bundle(), "overlay", "layer"))
	if err != nil {
		l.T.Fatal(err)
	}
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) < 2 {
		l.T.Fatalf("the container's overlay has no image layer: %q", b)
	}
	return ls[1:]
}

// TestRoundTripImageOfAnImage: an image-based container exported as an
// image keeps its base image's layers. The web server exported as image
// A; a manifest B over A adding a file (files:) exported as image B, whose
// layers are A's, unchanged, and one of B's recipe only (the added file
// and the mount points, none of A's files again); B run as container C
// (no process args) serves the listing of / with A's entrypoint, and its
// file tree is A's with B's file added, and is what hutch export --bundle
// writes for B.
func TestRoundTripImageOfAnImage(t *testing.T) {
	l := newLab(t)
	bundleA := l.exportBundle(l.Manifest)
	outA, outB := t.TempDir(), t.TempDir()
	l.Must("export", "-f", l.Manifest, "--format", "oci-image", "--output", outA)
	added := "added by B\n"
	b := filepath.Join(t.TempDir(), "b.yaml")
	l.fromImage(b, "oci-layout:"+filepath.Join(outA, l.Name),
		"    files:\n      - {path: /srv/added.txt, mode: \"0640\", content: \"added by B\\n\"}\n")
	l.Must("export", "-f", b, "--format", "oci-image", "--output", outB)
	bundleB := l.exportBundle(b)

	layersA, layersB := layoutLayers(t, filepath.Join(outA, l.Name)), layoutLayers(t, filepath.Join(outB, l.Name))
	if len(layersA) != 1 || len(layersB) != 2 || layersB[0].id != layersA[0].id {
		t.Fatalf("image B's layers %v, want image A's %v and one of B's own", layersB, layersA)
	}
	var top []string
	for p, e := range layersB[1].tree {
		if e.Type != tar.TypeDir {
			top = append(top, p)
		}
	}
	if sort.Strings(top); strings.Join(top, " ") != "srv/added.txt" {
		t.Errorf("image B's own layer holds %v, want only srv/added.txt (and folders): A's files belong to A's layer", top)
	}

	want := export.Tree{}
	for p, e := range bundleA {
		want[p] = e
	}
	sum := sha256.Sum256([]byte(added))
	want["srv"] = export.TreeEntry{Type: tar.TypeDir, Mode: 0o755}
	want["srv/added.txt"] = export.TreeEntry{Type: tar.TypeReg, Mode: 0o640, SHA256: hex.EncodeToString(sum[:])}
	sameTree(t, "hutch export --bundle of B", want, bundleB)

	l.Manifest = filepath.Join(t.TempDir(), "c.yaml")
	l.fromImage(l.Manifest, "oci-layout:"+filepath.Join(outB, l.Name), "")
	l.Apply()
	l.Serving()
	l.runs("C", "python3", "/server.py")
	l.sameAsLive("C", want)
	layers := l.imageLayers()
	l.Must("delete", "-f", l.Manifest)
	l.Gone()
	l.gcRemoves(layers)
}

// imageLayer is one layer of an image: its diff ID and its tree.
type imageLayer struct {
	id   string
	tree export.Tree
}

// layoutLayers are the layers, bottom first, of the only image of the OCI
// layout dir.
func layoutLayers(t *testing.T, dir string) []imageLayer {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("%s: %v images, %v", dir, m, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []imageLayer
	for _, l := range ls {
		id, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := export.LayerTree(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, imageLayer{id.String(), tr})
	}
	return out
}
