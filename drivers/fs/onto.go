//go:build linux

package fs

import (
	"fmt"
	"path"
	"slices"
	"strings"

	imgdrv "hutch/drivers/image"
	"hutch/plan"
)

// A recipe over an image: keeping the image's folders.
//
// The recipe's layer is the top lower folder of the container's overlay,
// and overlayfs shows, at each path, the topmost layer's object: a folder
// over a folder merges with it, anything else hides it whole
// (Documentation/filesystems/overlayfs.rst). The recipe copies host paths
// as the host has them, so on Debian, whose /bin, /lib, /lib64 and /sbin
// are symlinks into /usr, `binaries: [/bin/busybox]` puts the symlink
// `bin -> usr/bin` into the layer; over an image with a real /bin folder
// (busybox, alpine, most images not made from Debian) that symlink would
// take the image's whole /bin away from the container.
//
// So when the container has an image, every symlink of the recipe's tree
// at a path the image's merged tree has as a real folder becomes a folder
// in the layer, with the image's owner and mode (the top layer's folder
// gives the merged folder its own), which overlayfs merges with the
// image's. What the recipe reached through the symlink stays reachable at
// that path: for each name in the folder the symlink leads to (resolved in
// the recipe's tree: /bin -> usr/bin gives /usr/bin), the new folder gets a
// symlink NAME -> /usr/bin/NAME. Symlinks rather than copies, because they
// keep what the host's path means: the program started as /bin/true is
// /usr/bin/true, as on the host, so /proc/PID/exe and the $ORIGIN ld.so
// derives from the real path are the host's, and the layer holds each
// file once. The new symlinks are looked at in turn: over an image whose
// /lib holds a real x86_64-linux-gnu folder, /lib/x86_64-linux-gnu becomes
// a folder of symlinks too, and the ELF interpreter /lib64/ld-linux-x86-64.so.2
// and the libraries under /lib/x86_64-linux-gnu resolve through them to the
// files the recipe copied under /usr.
//
// A symlink at a path the image does not have, or where the image has a
// symlink or a file, stays as it is. A symlink over an image folder that
// does not lead to a folder of the recipe (a copied folder's link to a
// host path the recipe lacks) cannot be merged, and is refused rather than
// left to hide the image's folder.

// ontoImage makes t fit over an image whose merged tree has the real
// folders folders() returns; folders is called only when t has a symlink.
// witness records a host path the result depends on (the symlink's
// source, now replaced in the tree) for the kept resolution.
func (t *tree) ontoImage(ref string, folders func() (map[string]imgdrv.Folder, error), witness func(string)) error {
	var work []string
	for _, e := range t.entries {
		if e.Kind == kSymlink {
			work = append(work, e.Path)
		}
	}
	if len(work) == 0 {
		return nil
	}
	in, err := folders()
	if err != nil {
		return err
	}
	slices.Sort(work) // parents before what is below them
	for len(work) > 0 {
		p := work[0]
		work = work[1:]
		f, ok := in[p]
		i, has := t.at[p]
		if !ok || !has || t.entries[i].Kind != kSymlink {
			continue
		}
		e := t.entries[i]
		target, ok := t.folderOf(p, e.Target)
		if !ok {
			from := ""
			if e.Src != "" {
				from = " (host " + e.Src + ")"
			}
			return fmt.Errorf("symlink %s -> %s%s: image %s has a real folder at %s, which this symlink would hide in the container; "+
				"hutch merges it with the image's only when the symlink leads to a folder of the recipe, and %s does not: "+
				"name the files by their real paths, or copy them into %s/", p, e.Target, from, ref, p, e.Target, p)
		}
		if e.Src != "" {
			witness(e.Src)
		}
		t.entries[i] = &entry{Path: p, Kind: kDir, Mode: f.Mode & 0o7777, UID: uint32(f.UID), GID: uint32(f.GID), Mount: e.Mount}
		for _, n := range t.namesUnder(target) {
			q := path.Join(p, n)
			if t.has(q) {
				continue // the recipe put its own entry there
			}
			t.add(&entry{Path: q, Kind: kSymlink, Target: path.Join(target, n)})
			work = append(work, q)
		}
	}
	return nil
}

// folderOf resolves the symlink at p with target in the tree, as the
// kernel will in the container where the layer has the path: it returns
// the folder of the tree it leads to, or false when it leads to something
// else, outside the tree, to the root, or back to or below p.
func (t *tree) folderOf(p, target string) (string, bool) {
	if !path.IsAbs(target) {
		target = path.Join(path.Dir(p), target)
	}
	cur := path.Clean(target)
	for hops := 0; hops < 40; hops++ {
		restart := false
		parts := strings.Split(strings.TrimPrefix(cur, "/"), "/")
		at := "/"
		for n, c := range parts {
			at = path.Join(at, c)
			i, ok := t.at[at]
			if !ok || t.entries[i].Kind != kSymlink {
				continue
			}
			next := t.entries[i].Target
			if !path.IsAbs(next) {
				next = path.Join(path.Dir(at), next)
			}
			cur = path.Join(append([]string{next}, parts[n+1:]...)...)
			restart = true
			break
		}
		if restart {
			continue
		}
		i, ok := t.at[cur]
		if !ok || t.entries[i].Kind != kDir || cur == "/" || within(cur, p) {
			return "", false
		}
		return cur, true
	}
	return "", false
}

// namesUnder lists the names the tree has directly in folder dir (those
// of entries deeper down whose folder the tree leaves implied included),
// sorted.
func (t *tree) namesUnder(dir string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range t.entries {
		rest, ok := strings.CutPrefix(e.Path, dir+"/")
		if !ok || rest == "" {
			continue
		}
		n, _, _ := strings.Cut(rest, "/")
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// imageFolders returns the real folders of the image's merged tree, read
// once per set of layers for the life of the resolver (one hutch
// command): the image is a stream of tars, tens of megabytes for a
// distribution's image, and twenty containers of it share one reading.
// The image must still have the layers the plan recorded.
func (r *resolver) imageFolders(ri *plan.RootfsImage) (map[string]imgdrv.Folder, error) {
	key := strings.Join(ri.Layers, ",")
	if f, ok := r.images[key]; ok {
		return f, nil
	}
	img, err := imgdrv.Open(ri.Ref)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range img.Layers {
		ids = append(ids, l.DiffID)
	}
	if !slices.Equal(ids, ri.Layers) {
		return nil, fmt.Errorf("image %s: its layers are %v now, %v when planned", ri.Ref, ids, ri.Layers)
	}
	f, err := img.Folders()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ri.Ref, err)
	}
	if r.images == nil {
		r.images = map[string]map[string]imgdrv.Folder{}
	}
	r.images[key] = f
	return f, nil
}
