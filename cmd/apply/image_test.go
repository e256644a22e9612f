package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"hutch/internal/testutil"
)

// imageLab writes an OCI layout images/web (tags v1: a web server's
// config with user www; bare: no entrypoint or cmd; arm: another
// architecture's) beside a manifest, which is returned with its text.
func imageLab(t *testing.T, rootfs, process string) (string, v1.Image) {
	t.Helper()
	dir := t.TempDir()
	base := testutil.LayerTar(t, []testutil.Entry{{Name: "etc/"},
		{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/srv:/bin/false\n"},
		{Name: "etc/group", Body: "root:x:0:\nwww:x:34:\nweb:x:50:www\n"}})
	web := testutil.Image(t, v1.Config{Entrypoint: []string{"/bin/busybox"}, Cmd: []string{"httpd", "-f"}, User: "www", WorkingDir: "/srv"}, "",
		testutil.Layer(t, base, testutil.Gzip))
	bare := testutil.Image(t, v1.Config{}, "", testutil.Layer(t, base, testutil.Gzip))
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	arm := testutil.Image(t, v1.Config{Cmd: []string{"sh"}}, other, testutil.Layer(t, base, testutil.Gzip))
	testutil.WriteLayout(t, filepath.Join(dir, "images", "web"), []string{"v1", "bare", "arm"}, web, bare, arm)
	f := filepath.Join(dir, "lab.yaml")
	doc := "apiVersion: hutch/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  rootfs:\n" + rootfs + process
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, web
}

// TestValidateImage: validate reads the image a manifest names, and each
// way it can be wrong is an error at the manifest's line and column.
func TestValidateImage(t *testing.T) {
	for _, tc := range []struct{ rootfs, process, want string }{
		{"    image: oci-layout:images/web:v1\n", "", ""},
		{"    image: oci-layout:images/web:v1\n", "  process:\n    user: \"7\"\n", ""},
		{"    image: oci-layout:images/nope:v1\n", "", ":7:12: spec.rootfs.image: image oci-layout:DIR/images/nope:v1: stat DIR/images/nope: no such file or directory"},
		{"    image: oci-layout:images/web:v9\n", "", `:7:12: spec.rootfs.image: image oci-layout:DIR/images/web:v9: tag "v9" is not in the layout (it has: arm, bare, v1)`},
		{"    image: oci-layout:images/web:arm\n", "", ":7:12: spec.rootfs.image: image oci-layout:DIR/images/web:arm: the image is for linux/"},
		{"    image: oci-layout:images/web:bare\n", "", ":7:12: spec.rootfs.image: image oci-layout:DIR/images/web:bare has neither entrypoint nor cmd (expected process.args)"},
		{"    image: oci-layout:images/web:bare\n", "  process:\n    args: [sh]\n", ""},
		{"    image: docker-archive:images/web/index.json\n", "", ":7:12: spec.rootfs.image: image docker-archive:DIR/images/web/index.json: read DIR/images/web/index.json as a docker-archive"},
	} {
		f, _ := imageLab(t, tc.rootfs, tc.process)
		dir := filepath.Dir(f)
		code, out, errOut := runValidate(t, "", "-f", f)
		want := strings.ReplaceAll(tc.want, "DIR", dir)
		if tc.want == "" {
			if code != 0 || !strings.HasPrefix(out, "valid: 1 container") {
				t.Errorf("%s%s: exit %d\n%s", tc.rootfs, tc.process, code, errOut)
			}
			continue
		}
		if code != 1 || !strings.HasPrefix(errOut, f+want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant it to start with %s%s", tc.rootfs, code, errOut, f, want)
		}
	}
}

// TestPlanShowsImage: plan shows the image's reference, manifest digest
// and layers, and the process from its config with its user looked up.
func TestPlanShowsImage(t *testing.T) {
	f, img := imageLab(t, "    image: oci-layout:images/web:v1\n", "")
	h := newHost(defaultOptions())
	h.opts.StateRoot = t.TempDir()
	code, out := runOn(t, h, "plan", "-f", f)
	digest, _ := img.Digest()
	cf, _ := img.ConfigFile()
	for _, want := range []string{
		`image.ref: "oci-layout:` + filepath.Dir(f) + `/images/web:v1"`,
		`image.digest: "` + digest.String() + `"`,
		`image.layers[0]: "` + cf.RootFS.DiffIDs[0].String() + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if code != 2 {
		t.Errorf("plan: exit %d, want 2\n%s", code, out)
	}
	// The process as the image's config makes it, its user looked up in
	// the image's /etc/passwd and /etc/group.
	_, d, err := loadDesired([]string{f}, h.opts)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Containers[0].Spec.Process
	if strings.Join(p.Args, " ") != "/bin/busybox httpd -f" || p.Cwd != "/srv" || p.User.UID != 33 || p.User.GID != 34 ||
		fmt.Sprint(p.User.AdditionalGids) != "[50]" {
		t.Errorf("process %v in %s as %+v", p.Args, p.Cwd, p.User)
	}
}
