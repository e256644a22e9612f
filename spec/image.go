package spec

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The transports rootfs.image names, as skopeo and podman spell them.
const (
	// TransportOCILayout is an OCI image layout folder (oci-layout file,
	// index.json, blobs/): oci-layout:PATH or oci-layout:PATH:tag.
	TransportOCILayout = "oci-layout"
	// TransportDockerArchive is the tar `docker save` and `podman save`
	// write (manifest.json and the layers): docker-archive:FILE.tar.
	TransportDockerArchive = "docker-archive"
)

const expectImageRef = "oci-layout:PATH[:tag] (an OCI image layout folder) or docker-archive:FILE.tar (what docker save writes)"

// ImageRef is a parsed rootfs.image.
type ImageRef struct {
	Transport string // TransportOCILayout or TransportDockerArchive
	Path      string // the layout folder or the tar file
	// Tag picks the image of an OCI layout by its
	// org.opencontainers.image.ref.name annotation; "" takes the layout's
	// only image.
	Tag string
}

// String writes the reference back: transport:path[:tag].
func (r ImageRef) String() string {
	s := r.Transport + ":" + r.Path
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	return s
}

// ParseImageRef reads oci-layout:PATH[:tag] or docker-archive:FILE.tar.
// The tag of a layout is what follows the path's last ':' when that holds
// no '/' (a path may hold colons of its own: oci-layout:/a:b/c is the
// folder /a:b/c).
func ParseImageRef(s string) (ImageRef, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok {
		return ImageRef{}, fmt.Errorf("%q names no transport", s)
	}
	if strings.ContainsRune(rest, 0) {
		return ImageRef{}, fmt.Errorf("%q holds a NUL byte", s)
	}
	r := ImageRef{Transport: transport, Path: rest}
	switch transport {
	case TransportOCILayout:
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			r.Path, r.Tag = rest[:i], rest[i+1:]
			if !validTag(r.Tag) {
				return ImageRef{}, fmt.Errorf("%q: tag %q is not a tag (letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-')", s, r.Tag)
			}
		}
	case TransportDockerArchive:
	default:
		return ImageRef{}, fmt.Errorf("unknown transport %q in %q", transport, s)
	}
	if r.Path == "" {
		return ImageRef{}, fmt.Errorf("%q names no path", s)
	}
	return r, nil
}

// validTag is the OCI distribution spec's tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(t string) bool {
	if len(t) == 0 || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(isAlnum(c) || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func checkImageRef(s string) (string, string) {
	if _, err := ParseImageRef(s); err != nil {
		return err.Error(), expectImageRef
	}
	return "", ""
}

// ImageOf returns the container's rootfs.image with a relative path joined
// to the folder of the manifest file (labs keep their images beside their
// manifests), and false when the container names no image. Nothing is
// read: the caller opens the image (drivers/image) and plan finds what it
// read under the reference's String.
func ImageOf(c *Container) (ImageRef, bool, error) {
	s := c.Spec.Rootfs.Image
	if s == "" {
		return ImageRef{}, false, nil
	}
	r, err := ParseImageRef(s)
	if err != nil {
		return ImageRef{}, true, err
	}
	if !filepath.IsAbs(r.Path) && c.Source.File != "" && c.Source.File != "<stdin>" {
		r.Path = filepath.Join(filepath.Dir(c.Source.File), r.Path)
	}
	r.Path = filepath.Clean(r.Path)
	return r, true, nil
}

// ErrorAt is an error at a field path of the container's document, with
// its file:line:col: for the checks a caller makes with what it read from
// the host (an image's manifest and config), which spec itself does not
// read.
func (c *Container) ErrorAt(path, msg string) *Error { return c.errorAt(path, msg) }

// checkArgs: without an image the process needs args (an image supplies
// its entrypoint and cmd; the caller checks those, having read them).
func checkArgs(c *Container) Errors {
	if c.Spec.Rootfs.Image != "" || len(c.Spec.Process.Args) > 0 {
		return nil
	}
	if c.Spec.Process.Args == nil || !c.written("spec.process.args") {
		return Errors{c.errorAt("spec.process.args", "missing (expected a list with at least one item, or rootfs.image whose entrypoint or cmd runs)")}
	}
	return Errors{c.errorAt("spec.process.args", "empty (expected at least 1 item, or rootfs.image whose entrypoint or cmd runs)")}
}
