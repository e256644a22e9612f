//go:build linux

package image

import (
	"archive/tar"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"hutch/internal/testutil"
)

func smallImage(t *testing.T, cfg v1.Config, arch string) v1.Image {
	t.Helper()
	base := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/"}, {Name: "etc/hello", Body: "one"}})
	top := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/hello", Body: "two"}})
	return testutil.Image(t, cfg, arch, testutil.Layer(t, base, testutil.Gzip), testutil.Layer(t, top, testutil.Zstd))
}

// TestOpenLayout: a tagged image of a layout, its config and layers, by
// tag and as the only image; the digest is the manifest's.
func TestOpenLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "web")
	cfg := v1.Config{Entrypoint: []string{"/bin/busybox"}, Cmd: []string{"httpd"}, Env: []string{"A=1"},
		WorkingDir: "/srv", User: "www", ExposedPorts: map[string]struct{}{"8000/tcp": {}}}
	img := smallImage(t, cfg, "")
	testutil.WriteLayout(t, dir, []string{"v1"}, img)
	want, _ := img.Digest()
	for _, ref := range []string{"oci-layout:" + dir + ":v1", "oci-layout:" + dir} {
		got, err := Open(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if got.Digest != want.String() || got.Platform != "linux/"+runtime.GOARCH {
			t.Errorf("%s: digest %s platform %s, want %s", ref, got.Digest, got.Platform, want)
		}
		wantCfg := Config{Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Env: cfg.Env, WorkingDir: "/srv", User: "www", ExposedPorts: []string{"8000/tcp"}}
		if diff := cmp.Diff(wantCfg, got.Config); diff != "" {
			t.Errorf("config (-want +got):\n%s", diff)
		}
		if len(got.Layers) != 2 || !strings.Contains(got.Layers[0].MediaType, "gzip") || !strings.Contains(got.Layers[1].MediaType, "zstd") {
			t.Fatalf("layers %+v", got.Layers)
		}
		b, err := got.ReadFile("/etc/hello")
		if err != nil || string(b) != "two" {
			t.Errorf("ReadFile(/etc/hello) = %q, %v; want the top layer's", b, err)
		}
	}
}

// TestOpenRefusals: each way a reference can fail says why.
func TestOpenRefusals(t *testing.T) {
	tmp := t.TempDir()
	two := filepath.Join(tmp, "two")
	testutil.WriteLayout(t, two, []string{"v1", "v2"}, smallImage(t, v1.Config{Cmd: []string{"a"}}, ""), smallImage(t, v1.Config{Cmd: []string{"b"}}, ""))
	arm := filepath.Join(tmp, "arm")
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	testutil.WriteLayout(t, arm, []string{"v1"}, smallImage(t, v1.Config{Cmd: []string{"a"}}, other))
	for _, tc := range []struct{ ref, want string }{
		{"oci-layout:" + tmp + "/missing", "no such file or directory"},
		{"oci-layout:" + two + ":v3", `tag "v3" is not in the layout (it has: v1, v2)`},
		{"oci-layout:" + two, "the layout holds 2 images; name one with :TAG"},
		{"oci-layout:" + arm + ":v1", "the image is for linux/" + other + ", this machine runs linux/" + runtime.GOARCH},
		{"oci-layout:" + tmp, "not an OCI image layout"},
		{"docker-archive:" + two, "is not a file"},
		{"docker-archive:" + two + "/index.json", "read " + two + "/index.json as a docker-archive"},
		{"registry:busybox", "unknown transport"},
	} {
		_, err := Open(tc.ref)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "image ") {
			t.Errorf("Open(%s) = %v, want an error with %q", tc.ref, err, tc.want)
		}
	}
	if img, err := Open("oci-layout:" + two + ":v2"); err != nil || img.Config.Cmd[0] != "b" {
		t.Errorf("v2 of two: %v", err)
	}
}

// TestOpenIndex: a layout whose one entry is an index of platforms gives
// the image of this machine's.
func TestOpenIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "multi")
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	mine := smallImage(t, v1.Config{Cmd: []string{"mine"}}, "")
	theirs := smallImage(t, v1.Config{Cmd: []string{"theirs"}}, other)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefNameAnnotation: "latest"})); err != nil {
		t.Fatal(err)
	}
	img, err := Open("oci-layout:" + dir + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := mine.Digest()
	if img.Config.Cmd[0] != "mine" || img.Digest != d.String() {
		t.Errorf("picked %v (%s), want this machine's image %s", img.Config.Cmd, img.Digest, d)
	}
}

// TestOpenDockerArchive: what docker save writes; the digest is the
// config's (the image ID).
func TestOpenDockerArchive(t *testing.T) {
	file := filepath.Join(t.TempDir(), "web.tar")
	img := smallImage(t, v1.Config{Cmd: []string{"sh"}}, "")
	testutil.WriteDockerArchive(t, file, "hutch.test/web:v1", img)
	got, err := Open("docker-archive:" + file)
	if err != nil {
		t.Fatal(err)
	}
	cn, _ := img.ConfigName()
	if got.Digest != cn.String() || len(got.Layers) != 2 {
		t.Errorf("digest %s (want %s), %d layers", got.Digest, cn, len(got.Layers))
	}
	ids, _ := img.ConfigFile()
	for i, l := range got.Layers {
		if l.DiffID != ids.RootFS.DiffIDs[i].String() {
			t.Errorf("layer %d: diff ID %s, want %s", i, l.DiffID, ids.RootFS.DiffIDs[i])
		}
	}
	if b, err := got.ReadFile("etc/hello"); err != nil || string(b) != "two" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
}

// TestReadFileWhiteouts: a file an upper layer deletes, or whose folder
// it makes opaque or deletes, is not in the image.
func TestReadFileWhiteouts(t *testing.T) {
	base := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/"}, {Name: "etc/a", Body: "a"}, {Name: "etc/b", Body: "b"},
		{Name: "etc/c", Body: "c"}, {Name: "var/"}, {Name: "var/d", Body: "d"}, {Name: "etc/e", Body: "e"}})
	top := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/.wh.a"}, {Name: ".wh.var"},
		{Name: "etc/e", Type: tar.TypeSymlink, Link: "/etc/c"}})
	img := testutil.Image(t, v1.Config{}, "", testutil.Layer(t, base, testutil.Gzip), testutil.Layer(t, top, testutil.Uncompressed))
	dir := filepath.Join(t.TempDir(), "l")
	testutil.WriteLayout(t, dir, nil, img)
	i, err := Open("oci-layout:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/etc/a": "deleted", "/var/d": "deleted", "/etc/b": "", "/etc/nope": "not in the image", "/etc/e": "not a regular file"} {
		b, err := i.ReadFile(p)
		switch {
		case want == "" && (err != nil || string(b) != "b"):
			t.Errorf("%s: %q, %v", p, b, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %q, %v; want an error with %q", p, b, err, want)
		}
	}
	opaque := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/"}, {Name: "etc/.wh..wh..opq"}, {Name: "etc/c", Body: "new"}})
	img = testutil.Image(t, v1.Config{}, "", testutil.Layer(t, base, testutil.Gzip), testutil.Layer(t, opaque, testutil.Gzip))
	dir = filepath.Join(t.TempDir(), "o")
	testutil.WriteLayout(t, dir, nil, img)
	if i, err = Open("oci-layout:" + dir); err != nil {
		t.Fatal(err)
	}
	if _, err := i.ReadFile("/etc/b"); err == nil {
		t.Error("/etc/b of a folder an upper layer made opaque is read")
	}
	if b, err := i.ReadFile("/etc/c"); err != nil || string(b) != "new" {
		t.Errorf("/etc/c: %q, %v", b, err)
	}
}

func TestResolveUser(t *testing.T) {
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n# comment\nwww:x:33:34:www:/srv:/bin/false\nnobody:x:65534:65534::/:/bin/false\n")
	group := []byte("root:x:0:\nwww-data:x:34:\nweb:x:50:www,nobody\nlog:x:51:www\nshort\n")
	for _, tc := range []struct {
		spec string
		want User
		err  string
	}{
		{spec: "www", want: User{UID: 33, GID: 34, AdditionalGids: []uint32{50, 51}}},
		{spec: "www:web", want: User{UID: 33, GID: 50, AdditionalGids: []uint32{51}}},
		{spec: "www:7", want: User{UID: 33, GID: 7, AdditionalGids: []uint32{50, 51}}},
		{spec: "33", want: User{UID: 33, GID: 34, AdditionalGids: []uint32{50, 51}}},
		{spec: "1000", want: User{UID: 1000, GID: 0}},
		{spec: "1000:web", want: User{UID: 1000, GID: 50}},
		{spec: "nobody", want: User{UID: 65534, GID: 65534, AdditionalGids: []uint32{50}}},
		{spec: "ghost", err: `no user "ghost" in the image's /etc/passwd`},
		{spec: "www:ghosts", err: `no group "ghosts"`},
	} {
		got, err := resolveUser(tc.spec, passwd, group)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.spec, diff)
		}
	}
	if _, err := resolveUser("www", nil, nil); err == nil || !strings.Contains(err.Error(), "no /etc/passwd") {
		t.Errorf("a name without /etc/passwd: %v", err)
	}
}
