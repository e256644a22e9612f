//go:build linux

// Package image reads OCI images from the host: an OCI image layout folder
// (oci-layout:PATH[:tag]) or a docker-archive tar (docker-archive:FILE.tar,
// what `docker save` writes), with github.com/google/go-containerregistry.
// It resolves a reference to the image for linux and this machine's
// architecture (an index may hold several), and returns its config (the
// process defaults) and its layers. It only reads: unpacking a layer is
// drivers/fs's (image.go there), which checks every entry itself.
//
// go-containerregistry rather than containers/image: it is pure Go, where
// containers/image needs cgo libraries (gpgme, devmapper, btrfs) and a far
// larger tree, and hutch is linked statically (scripts/build.sh).
package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The transports and the annotation that names a layout's images.
const (
	TransportOCILayout     = "oci-layout"
	TransportDockerArchive = "docker-archive"
	// RefNameAnnotation is the OCI annotation of an index entry that holds
	// its tag (image-spec annotations.md).
	RefNameAnnotation = "org.opencontainers.image.ref.name"
)

// Image is one image read from the host.
type Image struct {
	// Ref is the reference as opened.
	Ref string
	// Digest is the digest of the image's manifest, for an OCI layout;
	// for a docker-archive it is the digest of its config (the image ID
	// docker shows), since a `docker save` tar needs hold no manifest
	// blob of its own.
	Digest string
	// Platform is os/architecture[/variant] of the config.
	Platform string
	Config   Config
	// Layers are bottom first, as the config's rootfs.diff_ids.
	Layers []*Layer

	img v1.Image
}

// Config is the part of the image's config that hutch uses as process
// defaults, and its exposed ports.
type Config struct {
	Entrypoint, Cmd, Env []string
	WorkingDir           string
	User                 string
	// ExposedPorts are "8000/tcp" and the like, sorted.
	ExposedPorts []string
}

// Layer is one layer of an image.
type Layer struct {
	// DiffID is "sha256:<hex>" of the uncompressed tar, from the config.
	DiffID string
	// Digest is "sha256:<hex>" of the blob as stored, for an OCI layout
	// ("" for a docker-archive, where working it out means compressing
	// the layer).
	Digest string
	// MediaType is the blob's media type as the manifest gives it.
	MediaType string
	// Size is the stored blob's size (0 for a docker-archive).
	Size int64

	layer v1.Layer
}

// Open returns the layer's uncompressed tar stream (gzip and zstd are
// recognised by their magic bytes, a plain tar passes as it is). The
// stream is not checked against DiffID here: the reader hashes it.
func (l *Layer) Open() (io.ReadCloser, error) {
	rc, err := l.layer.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("layer %s: open: %w", l.DiffID, err)
	}
	return rc, nil
}

// Ref is a parsed reference (spec.ImageRef's shape, without importing
// spec: drivers never see spec's types).
type Ref struct {
	Transport, Path, Tag string
}

// ParseRef reads transport:path[:tag] as spec.ParseImageRef writes it.
func ParseRef(s string) (Ref, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Ref{}, fmt.Errorf("image %q: expected oci-layout:PATH[:tag] or docker-archive:FILE.tar", s)
	}
	r := Ref{Transport: transport, Path: rest}
	switch transport {
	case TransportOCILayout:
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			r.Path, r.Tag = rest[:i], rest[i+1:]
		}
	case TransportDockerArchive:
	default:
		return Ref{}, fmt.Errorf("image %q: unknown transport %q (expected oci-layout or docker-archive)", s, transport)
	}
	if r.Path == "" {
		return Ref{}, fmt.Errorf("image %q: no path", s)
	}
	return r, nil
}

// Platform is the platform hutch runs images of: linux and the
// architecture this binary was built for, as OCI names them (GOARCH's
// names are OCI's).
func Platform() string { return "linux/" + runtime.GOARCH }

// Open reads the image ref names: its index or manifest, its config and
// its list of layers (the layers' contents are read only by Layer.Open).
// Errors say which of these failed: a missing path, a file that is not an
// image, a tag the layout lacks, an image for another platform.
func Open(ref string) (*Image, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Image, error) { return nil, fmt.Errorf("image %s: %w", ref, err) }
	fi, err := os.Stat(r.Path)
	if err != nil {
		return fail(err)
	}
	out := &Image{Ref: ref}
	switch r.Transport {
	case TransportOCILayout:
		if !fi.IsDir() {
			return fail(fmt.Errorf("%s is not a folder (an OCI image layout is a folder holding oci-layout, index.json and blobs/)", r.Path))
		}
		img, digest, err := fromLayout(r.Path, r.Tag)
		if err != nil {
			return fail(err)
		}
		out.img, out.Digest = img, digest
	case TransportDockerArchive:
		if !fi.Mode().IsRegular() {
			return fail(fmt.Errorf("%s is not a file (a docker-archive is the tar docker save writes)", r.Path))
		}
		path := r.Path
		img, err := tarball.Image(func() (io.ReadCloser, error) { return os.Open(path) }, nil)
		if err != nil {
			return fail(fmt.Errorf("read %s as a docker-archive: %w", r.Path, err))
		}
		h, err := img.ConfigName()
		if err != nil {
			return fail(fmt.Errorf("config: %w", err))
		}
		out.img, out.Digest = img, h.String()
	}
	if err := out.read(r.Transport == TransportOCILayout); err != nil {
		return fail(err)
	}
	return out, nil
}

// read fills the config and the layers from the image.
func (i *Image) read(stored bool) error {
	cf, err := i.img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	i.Platform = cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		i.Platform += "/" + cf.Variant
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		return fmt.Errorf("the image is for %s, this machine runs %s", i.Platform, Platform())
	}
	c := cf.Config
	i.Config = Config{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User}
	for p := range c.ExposedPorts {
		i.Config.ExposedPorts = append(i.Config.ExposedPorts, p)
	}
	sort.Strings(i.Config.ExposedPorts)
	layers, err := i.img.Layers()
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return fmt.Errorf("the manifest lists %d layers, the config's rootfs.diff_ids %d", len(layers), len(cf.RootFS.DiffIDs))
	}
	if len(layers) == 0 {
		return errors.New("the image has no layers")
	}
	for n, l := range layers {
		d := cf.RootFS.DiffIDs[n]
		if d.Algorithm != "sha256" || len(d.Hex) != 64 {
			return fmt.Errorf("layer %d: diff ID %s is not sha256:<64 hex digits>", n, d)
		}
		out := &Layer{DiffID: d.String(), layer: l}
		if mt, err := l.MediaType(); err == nil {
			out.MediaType = string(mt)
		}
		if stored {
			// A layout's blobs are stored compressed as the manifest
			// says: digest and size come from the manifest, nothing is
			// read.
			if h, err := l.Digest(); err == nil {
				out.Digest = h.String()
			}
			if s, err := l.Size(); err == nil {
				out.Size = s
			}
		}
		i.Layers = append(i.Layers, out)
	}
	return nil
}

// fromLayout finds the image of tag (or the only one) in the layout at
// path, and the linux/GOARCH image of an index.
func fromLayout(path, tag string) (v1.Image, string, error) {
	if _, err := os.Stat(path + "/index.json"); err != nil {
		return nil, "", fmt.Errorf("not an OCI image layout: %w", err)
	}
	idx, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return nil, "", fmt.Errorf("read %s/index.json: %w", path, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("read %s/index.json: %w", path, err)
	}
	descs := im.Manifests
	if tag != "" {
		var tagged []v1.Descriptor
		for _, d := range descs {
			if refTag(d) == tag {
				tagged = append(tagged, d)
			}
		}
		if len(tagged) == 0 {
			return nil, "", fmt.Errorf("tag %q is not in the layout (%s)", tag, tagsOf(descs))
		}
		descs = tagged
	}
	return pick(idx, descs, tag == "")
}

// refTag is the tag of an index entry: its ref.name annotation, which may
// be a whole reference (registry/name:tag) as some tools write it.
func refTag(d v1.Descriptor) string {
	n := d.Annotations[RefNameAnnotation]
	if i := strings.LastIndexByte(n, ':'); i >= 0 && !strings.Contains(n[i+1:], "/") {
		return n[i+1:]
	}
	return n
}

func tagsOf(descs []v1.Descriptor) string {
	var tags []string
	for _, d := range descs {
		if t := refTag(d); t != "" {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		return "it names no tags"
	}
	sort.Strings(tags)
	return "it has: " + strings.Join(tags, ", ")
}

// pick chooses among index entries: the one image, the one index (whose
// entries are chosen from in turn), or among images that name their
// platform the one for linux/GOARCH. untagged says the user named no tag,
// for the message when several images are left.
func pick(idx v1.ImageIndex, descs []v1.Descriptor, untagged bool) (v1.Image, string, error) {
	if len(descs) == 0 {
		return nil, "", errors.New("the index lists no image")
	}
	var platformed []v1.Descriptor
	for _, d := range descs {
		if d.Platform != nil {
			platformed = append(platformed, d)
		}
	}
	if len(descs) > 1 && len(platformed) == len(descs) {
		var seen []string
		for _, d := range descs {
			if d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
				return pick(idx, []v1.Descriptor{d}, untagged)
			}
			seen = append(seen, d.Platform.String())
		}
		return nil, "", fmt.Errorf("no image for %s in the index (it has %s)", Platform(), strings.Join(seen, ", "))
	}
	if len(descs) > 1 {
		if untagged {
			return nil, "", fmt.Errorf("the layout holds %d images; name one with :TAG (%s)", len(descs), tagsOf(descs))
		}
		return nil, "", fmt.Errorf("%d images have that tag", len(descs))
	}
	d := descs[0]
	switch d.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		sub, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, "", fmt.Errorf("index %s: %w", d.Digest, err)
		}
		im, err := sub.IndexManifest()
		if err != nil {
			return nil, "", fmt.Errorf("index %s: %w", d.Digest, err)
		}
		return pick(sub, im.Manifests, untagged)
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		if d.Platform != nil && (d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH) {
			return nil, "", fmt.Errorf("the image is for %s, this machine runs %s", d.Platform, Platform())
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, "", fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		return img, d.Digest.String(), nil
	}
	return nil, "", fmt.Errorf("index entry %s has media type %q, not an image or an index", d.Digest, d.MediaType)
}
