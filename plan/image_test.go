package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/spec"
)

// imageManifest is one container over an image, with the manifest's own
// process block.
func imageManifest(t *testing.T, process string) *spec.Manifest {
	t.Helper()
	doc := `apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: web
spec:
  rootfs:
    image: oci-layout:images/web:v1
    binaries: [/bin/sh]
` + process
	m, errs := spec.ParseManifest("/labs/web/lab.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := spec.Validate(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// webImage is what drivers/image would read of a small web server image.
func webImage() *Image {
	return &Image{
		Ref:            "oci-layout:/labs/web/images/web:v1",
		Digest:         "sha256:" + strings.Repeat("ab", 32),
		Entrypoint:     []string{"/bin/busybox"},
		Cmd:            []string{"httpd", "-f", "-p", "8000"},
		Env:            []string{"PATH=/bin:/usr/bin", "LANG=C.UTF-8", "MODE=image"},
		WorkingDir:     "/srv/www",
		User:           "www",
		UserResolved:   true,
		UID:            33,
		GID:            33,
		AdditionalGids: []uint32{4},
		Layers: []ImageLayer{
			{DiffID: "sha256:" + strings.Repeat("01", 32)},
			{DiffID: "sha256:" + strings.Repeat("02", 32)},
		},
	}
}

func buildImage(t *testing.T, m *spec.Manifest, img *Image) (*Container, error) {
	t.Helper()
	o := DefaultOptions()
	if img != nil {
		o.Images = map[string]*Image{img.Ref: img}
	}
	d, err := Build(m, o)
	if err != nil {
		return nil, err
	}
	return d.Containers[0], nil
}

// TestImageDefaults: with no args, cwd, user or env in the manifest, the
// process is the image's, as docker run IMAGE makes it.
func TestImageDefaults(t *testing.T) {
	c, err := buildImage(t, imageManifest(t, ""), webImage())
	if err != nil {
		t.Fatal(err)
	}
	p := c.Spec.Process
	if diff := cmp.Diff([]string{"/bin/busybox", "httpd", "-f", "-p", "8000"}, p.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"PATH=/bin:/usr/bin", "LANG=C.UTF-8", "MODE=image"}, p.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if p.Cwd != "/srv/www" || p.User.UID != 33 || p.User.GID != 33 || !cmp.Equal(p.User.AdditionalGids, []uint32{4}) {
		t.Errorf("cwd %q, user %+v; want /srv/www, 33:33 with group 4", p.Cwd, p.User)
	}
	rf := find[*Rootfs](c)[0]
	want := &RootfsImage{Ref: "oci-layout:/labs/web/images/web:v1", Digest: webImage().Digest,
		Layers: []string{"sha256:" + strings.Repeat("01", 32), "sha256:" + strings.Repeat("02", 32)}}
	if diff := cmp.Diff(want, rf.Image); diff != "" {
		t.Errorf("rootfs image (-want +got):\n%s", diff)
	}
	if !cmp.Equal(rf.Binaries, []string{"/bin/sh"}) {
		t.Errorf("the recipe above the image: %v", rf.Binaries)
	}
}

// TestImageManifestWins: what the manifest says replaces the image's
// defaults; env entries replace those of the same name, in place.
func TestImageManifestWins(t *testing.T) {
	m := imageManifest(t, `  process:
    args: [/bin/sh, -c, "echo hi"]
    env: [MODE=manifest, EXTRA=1]
    cwd: /tmp
    user: "1000:1000"
`)
	c, err := buildImage(t, m, webImage())
	if err != nil {
		t.Fatal(err)
	}
	p := c.Spec.Process
	if diff := cmp.Diff([]string{"/bin/sh", "-c", "echo hi"}, p.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"PATH=/bin:/usr/bin", "LANG=C.UTF-8", "MODE=manifest", "EXTRA=1"}, p.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if p.Cwd != "/tmp" || p.User.UID != 1000 || p.User.GID != 1000 || len(p.User.AdditionalGids) != 0 {
		t.Errorf("cwd %q, user %+v; want /tmp, 1000:1000 without groups", p.Cwd, p.User)
	}
}

// TestImageBare: an image with no env, working folder or user gives the
// usual defaults (PATH, /, 0:0); one with neither entrypoint nor cmd and
// no args in the manifest is an error at spec.rootfs.image.
func TestImageBare(t *testing.T) {
	img := &Image{Ref: "oci-layout:/labs/web/images/web:v1", Cmd: []string{"sh"},
		Layers: []ImageLayer{{DiffID: "sha256:" + strings.Repeat("01", 32)}}}
	c, err := buildImage(t, imageManifest(t, ""), img)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Spec.Process
	if !cmp.Equal(p.Args, []string{"sh"}) || !cmp.Equal(p.Env, []string{spec.DefaultPath}) || p.Cwd != "/" || p.User.UID != 0 || p.User.GID != 0 {
		t.Errorf("process %+v", p)
	}
	img.Cmd = nil
	_, err = buildImage(t, imageManifest(t, ""), img)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "spec.rootfs.image" || fe.Line == 0 || !strings.Contains(err.Error(), "neither entrypoint nor cmd") {
		t.Errorf("no args anywhere: %v, want a placed error at spec.rootfs.image", err)
	}
	// An image the caller did not read is an error, not an empty rootfs.
	if _, err := buildImage(t, imageManifest(t, ""), nil); !errors.As(err, &fe) || fe.Path != "spec.rootfs.image" {
		t.Errorf("image not read: %v", err)
	}
	// A user name the caller did not look up.
	img.Cmd, img.User = []string{"sh"}, "www"
	if _, err := buildImage(t, imageManifest(t, ""), img); err == nil || !strings.Contains(err.Error(), "was not looked up") {
		t.Errorf("user not resolved: %v", err)
	}
}

// TestImageChangesDigest: a new manifest digest or a new layer changes
// the process's digest (it restarts over the new rootfs).
func TestImageChangesDigest(t *testing.T) {
	a, err := buildImage(t, imageManifest(t, ""), webImage())
	if err != nil {
		t.Fatal(err)
	}
	img := webImage()
	img.Layers[1].DiffID = "sha256:" + strings.Repeat("03", 32)
	b, err := buildImage(t, imageManifest(t, ""), img)
	if err != nil {
		t.Fatal(err)
	}
	if find[*Process](a)[0].Digest == find[*Process](b)[0].Digest {
		t.Error("a changed layer leaves the process digest as it was")
	}
}

func TestImageRefs(t *testing.T) {
	m := imageManifest(t, "")
	if got := ImageRefs(m); !cmp.Equal(got, []string{"oci-layout:/labs/web/images/web:v1"}) {
		t.Errorf("ImageRefs = %v", got)
	}
}
