//go:build linux

package export

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefNameAnnotation is the annotation of an image layout's index.json that
// names an image by its tag (OCI image-spec annotations.md); `skopeo copy
// oci:DIR:TAG` and hutch's own `rootfs.image: oci-layout:DIR:TAG` look the
// image up by it.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// containerdNameAnnotation carries the whole reference, which containerd's
// `ctr image import` names the image by.
const containerdNameAnnotation = "io.containerd.image.name"

// Image is one container's image, as WriteImage writes it.
type Image struct {
	// Name is the container's name: the image goes to DIR/NAME (an OCI
	// image layout) and DIR/NAME.tar (a docker-archive).
	Name string
	// Ref is the reference the image is tagged with, such as
	// localhost/hutch/webserver:latest: the docker-archive's RepoTags,
	// and its tag the layout's ref.name.
	Ref string
	// Rootfs is the folder holding the container's root filesystem.
	Rootfs string
	// Keep says for a path of the rootfs ("/usr/bin/python3") whether its
	// mtime is its own in the layer (a file copied from the host); every
	// other path gets Epoch (WriteLayer).
	Keep func(path string) bool
	// Config is the image's run configuration: entrypoint, env, working
	// folder, user, exposed ports, labels, stop signal.
	Config v1.Config
	// Base are the layers of the image the rootfs starts from
	// (rootfs.image), bottom first; the rootfs's own layer goes above
	// them, as the recipe's layer lies above them in the container's
	// overlay. BaseRef names that image in the history.
	Base    []BaseLayer
	BaseRef string
}

// BaseLayer is one layer of the image a rootfs starts from: its diff ID
// and its uncompressed tar.
type BaseLayer struct {
	DiffID string
	Open   func() (io.ReadCloser, error)
}

// Written is what WriteImage wrote.
type Written struct {
	Layout  string  // DIR/NAME, an OCI image layout
	Archive string  // DIR/NAME.tar, a docker-archive
	Ref     string  // the reference both carry
	Digest  v1.Hash // the image manifest's digest
	Config  v1.Hash // the config's digest: the image ID podman and docker show
}

// WriteImage writes img under dir as DIR/NAME, an OCI image layout whose
// index.json names the image by its tag, and DIR/NAME.tar, a docker-archive
// that `podman load` and `docker load` read. Both hold the same image: the
// base image's layers when there is one, one gzip-compressed layer of the
// rootfs, and the config. Each is written
// beside its place and renamed into it, so a failed export leaves the one
// before intact; an existing DIR/NAME that is not an image layout is
// refused rather than replaced.
func WriteImage(img Image, dir string) (*Written, error) {
	fail := func(err error) (*Written, error) { return nil, fmt.Errorf("image %s: %w", img.Name, err) }
	tag, err := name.NewTag(img.Ref, name.StrictValidation)
	if err != nil {
		return fail(err)
	}
	w := &Written{Layout: filepath.Join(dir, img.Name), Archive: filepath.Join(dir, img.Name+".tar"), Ref: tag.Name()}
	if err := refuseNonLayout(w.Layout); err != nil {
		return fail(err)
	}
	tmp, err := TempDir(dir, img.Name)
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	image, err := buildImage(img, tmp)
	if err != nil {
		return fail(err)
	}
	if w.Digest, err = image.Digest(); err != nil {
		return fail(err)
	}
	if w.Config, err = image.ConfigName(); err != nil {
		return fail(err)
	}
	lay := filepath.Join(tmp, "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		return fail(fmt.Errorf("write layout: %w", err))
	}
	ann := map[string]string{RefNameAnnotation: tag.TagStr(), containerdNameAnnotation: tag.Name()}
	if err := p.AppendImage(image, layout.WithAnnotations(ann)); err != nil {
		return fail(fmt.Errorf("write layout: %w", err))
	}
	arch := filepath.Join(tmp, "archive.tar")
	if err := tarball.WriteToFile(arch, tag, image); err != nil {
		return fail(fmt.Errorf("write docker-archive: %w", err))
	}
	if err := publicModes(lay); err != nil {
		return fail(err)
	}
	if err := os.Rename(arch, w.Archive); err != nil {
		return fail(err)
	}
	if err := os.RemoveAll(w.Layout); err != nil {
		return fail(err)
	}
	if err := os.Rename(lay, w.Layout); err != nil {
		return fail(err)
	}
	return w, nil
}

// buildImage makes the image: the base image's layers, each compressed
// again with gzip (the diff IDs stay the image's: the same uncompressed
// tars), the layer of img.Rootfs, written to a file in tmp and compressed
// once, and the config with Epoch as its created time, the host's
// architecture (the rootfs holds the host's binaries) and OCI media types
// throughout.
func buildImage(img Image, tmp string) (v1.Image, error) {
	var adds []mutate.Addendum
	for _, b := range img.Base {
		l, err := tarball.LayerFromOpener(b.Open, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
		if err != nil {
			return nil, fmt.Errorf("layer %s of %s: %w", b.DiffID, img.BaseRef, err)
		}
		if id, err := l.DiffID(); err != nil || id.String() != b.DiffID {
			return nil, fmt.Errorf("layer %s of %s: its tar hashes to %v (%v): the image changed since it was read", b.DiffID, img.BaseRef, id, err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "hutch export", Comment: "a layer of " + img.BaseRef}})
	}
	layerTar := filepath.Join(tmp, "layer.tar")
	f, err := os.Create(layerTar)
	if err != nil {
		return nil, err
	}
	err = WriteLayer(f, img.Rootfs, img.Keep)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	open := func() (io.ReadCloser, error) { return os.Open(layerTar) }
	layer, err := tarball.LayerFromOpener(open, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	adds = append(adds, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "hutch export", Comment: "the rootfs of container " + img.Name},
	})
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	image, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	cf, err := image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: Epoch}
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = img.Config
	return mutate.ConfigFile(image, cf)
}

// publicModes gives the layout's folders mode 0755 and its files 0644, as
// the docker-archive has: go-containerregistry writes index.json
// executable and blobs private to root, and the image is for others to
// read (podman load, skopeo copy as another user).
func publicModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}

// refuseNonLayout refuses a DIR/NAME that exists and is not an OCI image
// layout (no oci-layout file): an export replaces its own output, never a
// folder of something else, such as a bundle `--format bundle` wrote there.
func refuseNonLayout(p string) error {
	fi, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if _, err := os.Lstat(filepath.Join(p, "oci-layout")); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s exists and is not an OCI image layout: not replacing it", p)
}

// TempDir makes a private folder for the export's work inside dir, on the
// same filesystem as the results, so that they are renamed into place.
func TempDir(dir, name string) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	p := filepath.Join(dir, ".hutch-export-"+name+"-"+hex.EncodeToString(rnd[:]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", err
	}
	return p, nil
}
