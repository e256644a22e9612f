package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The images of the tests that read or run images are made here, with
// go-containerregistry, from tar entries the test lists (malicious ones
// included: archive/tar writes any name it is given).

// Entry is one tar entry of a test layer. Type defaults to a regular
// file (a folder when Name ends in '/'); Mode to 0644 (0755 for a folder).
type Entry struct {
	Name     string
	Type     byte
	Mode     int64
	Body     string
	Link     string // a symlink's target or a hard link's name
	UID, GID int
	Xattrs   map[string]string // PAX SCHILY.xattr.NAME records
	Major    int64
	Minor    int64
	ModTime  time.Time
}

// LayerTar is the uncompressed tar of entries, in order.
func LayerTar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link,
			Uid: e.UID, Gid: e.GID, Devmajor: e.Major, Devminor: e.Minor, ModTime: e.ModTime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if len(e.Name) > 0 && e.Name[len(e.Name)-1] == '/' {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Compression says how a test layer is stored.
type Compression string

const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "none"
)

// Layer makes a layer of the uncompressed tar b, stored as c says.
func Layer(t testing.TB, b []byte, c Compression) v1.Layer {
	t.Helper()
	if c == Uncompressed {
		return static.NewLayer(b, types.OCIUncompressedLayer)
	}
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	opts := []tarball.LayerOption{tarball.WithMediaType(types.OCILayer)}
	if c == Zstd {
		opts = []tarball.LayerOption{tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd)}
	}
	l, err := tarball.LayerFromOpener(opener, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image stacks the layers (bottom first) with the config given, for
// linux and this machine's architecture unless arch is set.
func Image(t testing.TB, cfg v1.Config, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if arch != "" {
		cf.Architecture = arch
	}
	cf.Config = cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// WithDiffIDs is img with its config's rootfs.diff_ids replaced: the
// layers no longer hash to what the config says.
func WithDiffIDs(t testing.TB, img v1.Image, ids ...string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs = nil
	for _, s := range ids {
		h, err := v1.NewHash(s)
		if err != nil {
			t.Fatal(err)
		}
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, h)
	}
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WriteLayout writes the images into an OCI image layout at dir, each
// entry of index.json annotated with its tag (org.opencontainers.image.ref.name;
// "" for none).
func WriteLayout(t testing.TB, dir string, tags []string, imgs ...v1.Image) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		var opts []layout.Option
		if i < len(tags) && tags[i] != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tags[i]}))
		}
		if err := p.AppendImage(img, opts...); err != nil {
			t.Fatal(err)
		}
	}
}

// WriteDockerArchive writes img as `docker save` would, tagged tag
// (such as "hutch.test/web:v1"), into file.
func WriteDockerArchive(t testing.TB, file, tag string, img v1.Image) {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		t.Fatal(err)
	}
}

// BusyboxLayer is a layer holding the host's /bin/busybox (static, from
// busybox-static, which scripts/deps.sh installs) as /bin/busybox, with
// /bin/sh, /bin/sleep, /bin/cat and /bin/httpd linked to it, and the
// folders a shell expects.
func BusyboxLayer(t testing.TB) []Entry {
	t.Helper()
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("read /bin/busybox (apt-get install busybox-static): %v", err)
	}
	es := []Entry{{Name: "bin/"}, {Name: "etc/"}, {Name: "tmp/", Mode: 0o1777},
		{Name: "bin/busybox", Mode: 0o755, Body: string(b)}}
	for _, n := range []string{"sh", "sleep", "cat", "httpd", "ls", "id"} {
		es = append(es, Entry{Name: filepath.Join("bin", n), Type: tar.TypeSymlink, Link: "busybox"})
	}
	return es
}
