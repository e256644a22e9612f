//go:build linux

package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

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

// liveTree is the tree of the running container's rootfs, as its
// overlay shows it on the host (the container's own mounts, /proc and
// the like, are in its mount namespace only), less what the container's
// process wrote since it started: the entries of the overlay's upper
// folder, which the test names so that a surprise shows. Those must
// differ from any export: they are the process's own doing.
func (l *lab) liveTree() export.Tree {
	l.T.Helper()
	for _, m := range l.Mounts() {
		if f := strings.Fields(m); len(f) > 4 && strings.HasPrefix(f[4], l.Bundle()+"/rootfs/") {
			l.T.Fatalf("a mount below the container's rootfs on the host: %s", m)
		}
	}
	t := folderTree(l.T, filepath.Join(l.Bundle(), "rootfs"))
	upper := folderTree(l.T, filepath.Join(l.Bundle(), "overlay", "upper"))
	var written []string
	for p := range upper {
		written = append(written, p)
		delete(t, p)
	}
	sort.Strings(written)
	if len(written) > 0 {
		l.T.Logf("written by the container's process, not compared: %s", strings.Join(written, " "))
	}
	return t
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
		t.Errorf("%s: the file trees differ (first: the exported bundle, second: the container):\n%s", what, strings.Join(d, "\n"))
	}
	files := 0
	for _, e := range want {
		if e.Type == tar.TypeReg {
			files++
		}
	}
	if files < 100 {
		t.Errorf("%s: the exported bundle has %d files: not the web server's rootfs (python's standard library alone has hundreds)", what, files)
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
		sameTree(t, ref, bundle, l.liveTree())
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
