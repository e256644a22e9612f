//go:build linux

package image

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"hutch/internal/testutil"
)

var updateExample = flag.Bool("update", false, "rewrite spec/testdata/good/images/web, the image of spec/testdata/good/image.yaml")

// exampleLayout is the image spec/testdata/good/image.yaml names.
const exampleLayout = "../../spec/testdata/good/images/web"

// TestGoodExampleImage: the OCI layout beside spec's good image.yaml is
// the one this test makes (`go test ./drivers/image -run GoodExample
// -update` writes it): a layer of /etc/passwd, /etc/group and
// /srv/www/index.html, and a config that runs busybox httpd as www in
// /srv/www. It holds no program: the manifest adds the host's busybox.
func TestGoodExampleImage(t *testing.T) {
	if *updateExample {
		os.RemoveAll(exampleLayout)
		files := testutil.LayerTar(t, []testutil.Entry{
			{Name: "etc/"},
			{Name: "etc/passwd", Body: "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/srv/www:/bin/false\n"},
			{Name: "etc/group", Body: "root:x:0:\nwww:x:33:\nweb:x:50:www\n"},
			{Name: "srv/"},
			{Name: "srv/www/", UID: 33, GID: 33},
			{Name: "srv/www/index.html", UID: 33, GID: 33, Body: "<h1>served from an OCI image</h1>\n"},
		})
		img := testutil.Image(t, v1.Config{
			Entrypoint:   []string{"/bin/busybox", "httpd"},
			Cmd:          []string{"-f", "-p", "8000"},
			Env:          []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MODE=image", "GREETING=from the image"},
			WorkingDir:   "/srv/www",
			User:         "www",
			ExposedPorts: map[string]struct{}{"8000/tcp": {}},
		}, "amd64", testutil.Layer(t, files, testutil.Gzip))
		testutil.WriteLayout(t, exampleLayout, []string{"v1"}, img)
	}
	abs, err := filepath.Abs(exampleLayout)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open("oci-layout:" + abs + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(append(img.Config.Entrypoint, img.Config.Cmd...), " "); got != "/bin/busybox httpd -f -p 8000" || img.Config.User != "www" ||
		img.Config.WorkingDir != "/srv/www" || !slices.Contains(img.Config.Env, "GREETING=from the image") {
		t.Errorf("config %+v", img.Config)
	}
	u, err := img.LookupUser("www")
	if err != nil || u.UID != 33 || u.GID != 33 || !slices.Equal(u.AdditionalGids, []uint32{50}) {
		t.Errorf("user www: %+v, %v", u, err)
	}
	if b, err := img.ReadFile("/srv/www/index.html"); err != nil || !strings.Contains(string(b), "OCI image") {
		t.Errorf("index.html: %q, %v", b, err)
	}
}
