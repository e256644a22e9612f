//go:build linux

package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"hutch/internal/testutil"
)

// imageLab is a Lab for a container of a manifest other than the web
// server's, with no network: Netns is a name no namespace has, so that
// Leftovers looks for nothing of a network.
func imageLab(t *testing.T, prefix string) *lab {
	testutil.RequireRoot(t)
	name := testutil.Name(prefix)
	l := &lab{&testutil.Lab{T: t, Root: t.TempDir(), Name: name, Netns: name + "-nons"}}
	t.Cleanup(l.Cleanup)
	return l
}

// procOf is the container's process as /proc shows it: its status, its
// environment, its cwd and executable as the container sees them, and its
// root (the container's rootfs, through /proc/PID/root).
type procOf struct {
	pid            int
	status, env    string
	cwd, exe, root string
}

func (l *lab) proc() procOf {
	l.T.Helper()
	var p procOf
	for i := 0; i < 100; i++ {
		if p.pid = l.get().PID; p.pid > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.pid <= 0 {
		l.T.Fatal("the container has no process")
	}
	dir := fmt.Sprintf("/proc/%d", p.pid)
	st, _ := os.ReadFile(dir + "/status")
	env, _ := os.ReadFile(dir + "/environ")
	p.status, p.env = string(st), strings.ReplaceAll(string(env), "\x00", "\n")
	p.cwd, _ = os.Readlink(dir + "/cwd")
	p.exe, _ = os.Readlink(dir + "/exe")
	p.root = dir + "/root"
	return p
}

// gcRemoves runs hutch gc and checks it removed every layer of ids, and
// that the cache holds no layer after it.
func (l *lab) gcRemoves(ids []string) {
	l.T.Helper()
	out := l.Must("gc")
	for _, id := range ids {
		if !strings.Contains(out, "removed layer "+id) {
			l.T.Errorf("gc did not remove image layer %s:\n%s", id, out)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(l.Root, "layers"))
	for _, e := range ents {
		if e.Name() != ".lock" {
			l.T.Errorf("left in the layer cache after gc: %s", e.Name())
		}
	}
}

// TestImageGoodExample: spec/testdata/good/image.yaml, through validate,
// plan and apply: busybox httpd runs as the image's user www (looked up in
// its /etc/passwd), in its working folder, with its env and the
// manifest's entry replacing one of it, listens, and sees the image's
// index.html; a second apply changes nothing; delete leaves the host
// clean, and gc removes the image's layer.
func TestImageGoodExample(t *testing.T) {
	l := imageLab(t, "img")
	b, err := os.ReadFile("../spec/testdata/good/image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../spec/testdata/good/images/web")
	s := strings.Replace(string(b), "name: imageweb", "name: "+l.Name, 1)
	s = strings.Replace(s, "oci-layout:images/web:v1", "oci-layout:"+abs+":v1", 1)
	s = strings.Replace(s, "    env: [GREETING=from the manifest]\n", "    env: [GREETING=from the manifest]\n    stopTimeout: 300ms\n", 1)
	l.Manifest = filepath.Join(t.TempDir(), "image.yaml")
	if err := os.WriteFile(l.Manifest, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Must("validate", "-f", l.Manifest)
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 2 || !strings.Contains(out, "image.ref") {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	l.Apply()
	p := l.proc()
	if !strings.Contains(p.status, "\nUid:\t33\t33\t33\t33\n") || !strings.Contains(p.status, "\nGid:\t33\t33\t33\t33\n") ||
		!strings.Contains(p.status, "\nGroups:\t50 \n") {
		t.Errorf("the process is not the image's user www (33:33, group web 50):\n%s", p.status)
	}
	if p.cwd != "/srv/www" || p.exe != "/usr/bin/busybox" {
		t.Errorf("cwd %q exe %q, want /srv/www and the host's busybox at /usr/bin/busybox", p.cwd, p.exe)
	}
	for _, e := range []string{"MODE=image", "GREETING=from the manifest", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"} {
		if !strings.Contains("\n"+p.env, "\n"+e+"\n") {
			t.Errorf("environment lacks %s:\n%s", e, p.env)
		}
	}
	if strings.Contains(p.env, "GREETING=from the image") {
		t.Error("the image's GREETING was not replaced by the manifest's")
	}
	if b, err := os.ReadFile(p.root + "/srv/www/index.html"); err != nil || string(b) != "<h1>served from an OCI image</h1>\n" {
		t.Errorf("index.html in the container: %q, %v", b, err)
	}
	// httpd listens on 8000 (0x1F40) in the container's own network
	// namespace (state 0A: LISTEN), which has only lo, down.
	listening := false
	for i := 0; i < 100 && !listening; i++ {
		tcp, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp6", p.pid))
		tcp4, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", p.pid))
		for _, line := range strings.Split(string(tcp)+string(tcp4), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], ":1F40") && f[3] == "0A" {
				listening = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !listening {
		t.Error("busybox httpd does not listen on port 8000")
	}
	if out := l.Apply(); !strings.Contains(out, "No changes") {
		t.Errorf("a second apply changes something:\n%s", out)
	}
	l.Must("delete", "-f", l.Manifest)
	l.Gone()
	l.gcRemoves([]string{"sha256:" + layerOfExample(t)})
}

// layerOfExample is the hex of the diff ID of the example image's layer.
func layerOfExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../spec/testdata/good/images/web/index.json")
	if err != nil {
		t.Fatal(err)
	}
	// index.json -> manifest -> config's diff_ids: read through the blobs.
	blob := func(d string) []byte {
		b, err := os.ReadFile("../spec/testdata/good/images/web/blobs/sha256/" + d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	digest := func(b []byte, key string) string {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			t.Fatalf("no %s in %s", key, b)
		}
		rest := b[i:]
		j := bytes.Index(rest, []byte("sha256:"))
		return string(rest[j+7 : j+7+64])
	}
	m := blob(digest(b, `"manifests"`))
	c := blob(digest(m, `"config"`))
	return digest(c, `"diff_ids"`)
}

// TestImageDockerArchive: a docker-archive made by the test (a layer of the
// host's static busybox and a layer that deletes a file of the first and
// adds one), with the process from its config only: it runs from the
// image's own /bin/busybox, the deleted file is absent, and delete and gc
// leave nothing.
func TestImageDockerArchive(t *testing.T) {
	l := imageLab(t, "ida")
	base := append(testutil.BusyboxLayer(t), testutil.Entry{Name: "etc/motd", Body: "gone\n"})
	top := []testutil.Entry{{Name: "etc/.wh.motd"}, {Name: "etc/hostname.image", Body: "from the image\n"}}
	img := testutil.Image(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"exec sleep 1000"}},
		"", testutil.Layer(t, testutil.LayerTar(t, base), testutil.Gzip), testutil.Layer(t, testutil.LayerTar(t, top), testutil.Uncompressed))
	dir := t.TempDir()
	testutil.WriteDockerArchive(t, filepath.Join(dir, "sleeper.tar"), "hutch.test/sleeper:v1", img)
	l.Manifest = filepath.Join(dir, "sleeper.yaml")
	doc := fmt.Sprintf("apiVersion: hutch/v1alpha1\nkind: Container\nmetadata:\n  name: %s\nspec:\n  rootfs:\n    image: docker-archive:sleeper.tar\n  process:\n    stopTimeout: 300ms\n", l.Name)
	if err := os.WriteFile(l.Manifest, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Apply()
	p := l.proc()
	if p.exe != "/bin/busybox" {
		t.Errorf("the process runs %q, want the image's /bin/busybox", p.exe)
	}
	host, _ := os.ReadFile("/bin/busybox")
	inside, err := os.ReadFile(p.root + "/bin/busybox")
	if err != nil || sha256.Sum256(host) != sha256.Sum256(inside) {
		t.Errorf("the container's /bin/busybox is not the image's: %v", err)
	}
	if _, err := os.Stat(p.root + "/etc/motd"); !os.IsNotExist(err) {
		t.Errorf("/etc/motd, deleted by the upper layer, is in the container: %v", err)
	}
	if b, _ := os.ReadFile(p.root + "/etc/hostname.image"); string(b) != "from the image\n" {
		t.Errorf("/etc/hostname.image: %q", b)
	}
	l.Must("delete", l.Name)
	l.Gone()
	cf, _ := img.ConfigFile()
	var ids []string
	for _, h := range cf.RootFS.DiffIDs {
		ids = append(ids, h.String())
	}
	l.gcRemoves(ids)
}
