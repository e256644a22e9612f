package plan

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"hutch/spec"
)

// Image is what the caller read of an image a manifest's rootfs.image
// names (drivers/image reads it; plan reads nothing): its manifest
// digest, the process defaults of its config and its layers. Build finds
// it in Options.Images under spec.ImageRef.String() of spec.ImageOf.
type Image struct {
	// Ref is the reference with its path as spec.ImageOf makes it.
	Ref string `json:"ref"`
	// Digest is the digest of the image's manifest, "sha256:<hex>".
	Digest string `json:"digest"`
	// Entrypoint and Cmd run, one after the other, when the manifest
	// gives no process.args.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	// Env comes before the manifest's process.env, which replaces an
	// entry of the same name.
	Env []string `json:"env,omitempty"`
	// WorkingDir is the process's cwd unless the manifest gives one.
	WorkingDir string `json:"workingDir,omitempty"`
	// User is the config's user as written: uid, uid:gid, name or
	// name:group.
	User string `json:"user,omitempty"`
	// UserResolved says that UID, GID and AdditionalGids hold User looked
	// up in the image's /etc/passwd and /etc/group (the caller does it
	// when some container of the image gives no process.user).
	UserResolved   bool     `json:"userResolved,omitempty"`
	UID            uint32   `json:"uid,omitempty"`
	GID            uint32   `json:"gid,omitempty"`
	AdditionalGids []uint32 `json:"additionalGids,omitempty"`
	// Layers are the image's layers, bottom first, as its config's
	// rootfs.diff_ids lists them.
	Layers []ImageLayer `json:"layers"`
}

// ImageLayer is one layer of an image.
type ImageLayer struct {
	// DiffID is the digest of the layer's uncompressed tar,
	// "sha256:<hex>": the layer cache's key.
	DiffID string `json:"diffID"`
	// MediaType is the blob's media type (gzip, zstd or plain tar).
	MediaType string `json:"mediaType,omitempty"`
	// Size is the size of the blob as stored, compressed.
	Size int64 `json:"size,omitempty"`
}

// RootfsImage is the image a Rootfs stacks its recipe layer on.
type RootfsImage struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest,omitempty"`
	// Layers are the diff IDs of the image's layers, bottom first.
	Layers []string `json:"layers"`
}

// ImageRefs lists the images the manifest's containers name, as
// spec.ImageOf gives them, sorted and without repeats: the caller reads
// each into Options.Images before Build. References that do not parse are
// left out (validation refuses them).
func ImageRefs(m *spec.Manifest) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range m.Containers {
		r, ok, err := spec.ImageOf(c)
		if !ok || err != nil || seen[r.String()] {
			continue
		}
		seen[r.String()] = true
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

// imageOf is the image the container names, from Options.Images, or nil.
func imageOf(sc *spec.Container, o Options) (*Image, error) {
	r, ok, err := spec.ImageOf(sc)
	if !ok {
		return nil, nil
	}
	if err != nil {
		return nil, atField("spec.rootfs.image", err)
	}
	img := o.Images[r.String()]
	if img == nil {
		return nil, fieldErrorf("spec.rootfs.image", "image %s was not read (the caller passes it in Options.Images)", r)
	}
	if len(img.Layers) == 0 {
		return nil, fieldErrorf("spec.rootfs.image", "image %s has no layers", r)
	}
	return img, nil
}

// withImage fills the process fields the manifest leaves empty from the
// image's config, as docker run does: args from entrypoint and cmd, the
// working folder, the user; the image's env comes first and the
// manifest's entries replace those of the same name. What neither gives
// gets spec.Defaults's values (/, 0:0, the standard PATH), which
// spec.Defaults leaves to this for a container with an image. It runs on
// the copy Build works on.
func withImage(sc *spec.Container, img *Image) error {
	p := &sc.Spec.Process
	if len(p.Args) == 0 {
		p.Args = append(append([]string(nil), img.Entrypoint...), img.Cmd...)
		if len(p.Args) == 0 {
			return fieldErrorf("spec.rootfs.image", "image %s has neither entrypoint nor cmd (expected process.args)", img.Ref)
		}
	}
	p.Env = mergeEnv(img.Env, p.Env)
	if p.Cwd == "" && img.WorkingDir != "" {
		wd := img.WorkingDir
		if !strings.HasPrefix(wd, "/") {
			// Docker reads a relative WorkingDir from /.
			wd = "/" + wd
		}
		p.Cwd = path.Clean(wd)
	}
	if p.User == "" && img.User != "" {
		if !img.UserResolved {
			return fieldErrorf("spec.rootfs.image", "the user %q of image %s was not looked up (the caller resolves it)", img.User, img.Ref)
		}
		p.User = fmt.Sprintf("%d:%d", img.UID, img.GID)
		if len(p.AdditionalGids) == 0 {
			p.AdditionalGids = append([]uint32(nil), img.AdditionalGids...)
		}
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if p.User == "" {
		p.User = "0:0"
	}
	if !slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		p.Env = append([]string{spec.DefaultPath}, p.Env...)
	}
	return nil
}

// mergeEnv is base with each NAME=value of over replacing base's entry of
// that NAME in place, and over's other entries after it.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	at := map[string]int{}
	for i, e := range out {
		name, _, _ := strings.Cut(e, "=")
		at[name] = i
	}
	for _, e := range over {
		name, _, _ := strings.Cut(e, "=")
		if i, ok := at[name]; ok {
			out[i] = e
			continue
		}
		at[name] = len(out)
		out = append(out, e)
	}
	return out
}

// rootfsImage is what the Rootfs resource records of the image: its
// reference, manifest digest and layers.
func rootfsImage(img *Image) *RootfsImage {
	ri := &RootfsImage{Ref: img.Ref, Digest: img.Digest}
	for _, l := range img.Layers {
		ri.Layers = append(ri.Layers, l.DiffID)
	}
	return ri
}
