//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"hutch/internal/testutil"
)

// TestImageOntoRealFolders: a host binary added on top of an image whose
// /bin and /lib are real folders. `binaries: [/bin/true]` names a dynamic
// program that, on Debian, the host reaches through /bin -> usr/bin (and
// its loader through /lib64 -> usr/lib64, its libc through /lib ->
// usr/lib); the container's process, the image's busybox shell, runs
// /bin/true and records that it did. From the kernel's view (the
// container's root through /proc/PID/root): the image's /bin/marker,
// /bin/busybox and /lib/marker are there AND /bin/true ran. plan, with no
// kept resolution to lean on, sees no change (it resolves the layer apply
// mounted), `hutch exec` runs /bin/true again, and the merged export holds
// both the image's files and the host's program.
func TestImageOntoRealFolders(t *testing.T) {
	l := imageLab(t, "ionto")
	base := append(testutil.BusyboxLayer(t), testutil.Entry{Name: "bin/marker", Body: "image bin\n"},
		testutil.Entry{Name: "lib/"}, testutil.Entry{Name: "lib/marker", Body: "image lib\n"})
	img := testutil.Image(t, v1.Config{Cmd: []string{"/bin/sh"}}, "", testutil.Layer(t, testutil.LayerTar(t, base), testutil.Gzip))
	dir := t.TempDir()
	testutil.WriteDockerArchive(t, filepath.Join(dir, "bb.tar"), "hutch.test/bb:v1", img)
	l.Manifest = filepath.Join(dir, "onto.yaml")
	doc := fmt.Sprintf(`apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: %s
spec:
  rootfs:
    image: docker-archive:bb.tar
    binaries: [/bin/true]
  process:
    args: [/bin/sh, -c, "/bin/true && echo ran > /tmp/true-ran; exec sleep 1000"]
    stopTimeout: 300ms
`, l.Name)
	if err := os.WriteFile(l.Manifest, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Apply()
	p := l.proc()
	for f, want := range map[string]string{"/bin/marker": "image bin\n", "/lib/marker": "image lib\n"} {
		if b, err := os.ReadFile(p.root + f); err != nil || string(b) != want {
			t.Errorf("%s in the container: %q, %v; the image's folder is hidden", f, b, err)
		}
	}
	if p.exe != "/bin/busybox" {
		t.Errorf("the process runs %q, want the image's /bin/busybox", p.exe)
	}
	ran := ""
	for i := 0; i < 100 && ran == ""; i++ {
		b, _ := os.ReadFile(p.root + "/tmp/true-ran")
		ran = string(b)
	}
	if ran != "ran\n" {
		t.Errorf("/bin/true did not run in the container: /tmp/true-ran holds %q", ran)
	}
	if out := l.Must("exec", l.Name, "--", "/bin/sh", "-c", "/bin/true && ls /bin"); !strings.Contains(out, "marker\n") || !strings.Contains(out, "true\n") {
		t.Errorf("hutch exec: /bin/true, then ls /bin:\n%s", out)
	}
	if err := os.RemoveAll(filepath.Join(l.Root, "cache", "resolved")); err != nil {
		t.Fatal(err)
	}
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan after apply: exit %d\n%s", code, out)
	}
	bundle := t.TempDir()
	l.Must("export", "-f", l.Manifest, "--bundle", bundle)
	root := filepath.Join(bundle, l.Name, "rootfs")
	if b, err := os.ReadFile(filepath.Join(root, "bin/marker")); err != nil || string(b) != "image bin\n" {
		t.Errorf("the export's /bin/marker: %q, %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "bin/busybox")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the export's /bin/busybox: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "bin/true")); err != nil {
		t.Errorf("the export's /bin/true: %v", err)
	}
	l.Must("delete", l.Name)
	l.Gone()
}
