package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	fsdrv "hutch/drivers/fs"
	imgdrv "hutch/drivers/image"
	"hutch/export"
	"hutch/plan"
	"hutch/spec"
)

// exportImage writes container c's image into o.output: its rootfs, as
// drivers/fs exports it (the layer of its recipe), into a folder of the
// export's own inside o.output, then that folder as an image.
func exportImage(fs *fsdrv.Driver, c *plan.Container, sc *spec.Container, o exportOptions) (*export.Written, error) {
	tmp, err := export.TempDir(o.output, c.Name)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "rootfs")
	if err := exportRootfs(fs.ExportLayer, c, root); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	keep, err := hostFiles(fs, c)
	if err != nil {
		return nil, err
	}
	img := export.Image{
		Name:   c.Name,
		Ref:    export.Ref(o.repository, c.Name, o.tag),
		Rootfs: root,
		Keep:   func(p string) bool { return keep[p] },
		Config: export.ImageConfig(c, sc),
	}
	if img.Base, img.BaseRef, err = baseLayers(rootfsOf(c)); err != nil {
		return nil, err
	}
	return export.WriteImage(img, o.output)
}

// baseLayers are the layers of the image a rootfs starts from
// (rootfs.image), read again through drivers/image: ExportLayer writes
// only the recipe's layer, which lies above them. The image must still
// have the layers the plan read.
func baseLayers(rf *plan.Rootfs) ([]export.BaseLayer, string, error) {
	if rf == nil || rf.Image == nil {
		return nil, "", nil
	}
	img, err := imgdrv.Open(rf.Image.Ref)
	if err != nil {
		return nil, "", fmt.Errorf("rootfs.image: %w", err)
	}
	if len(img.Layers) != len(rf.Image.Layers) {
		return nil, "", fmt.Errorf("rootfs.image %s: %d layers, %d when the plan read it: the image changed", rf.Image.Ref, len(img.Layers), len(rf.Image.Layers))
	}
	var out []export.BaseLayer
	for i, l := range img.Layers {
		if l.DiffID != rf.Image.Layers[i] {
			return nil, "", fmt.Errorf("rootfs.image %s: layer %d is %s, %s when the plan read it: the image changed", rf.Image.Ref, i, l.DiffID, rf.Image.Layers[i])
		}
		out = append(out, export.BaseLayer{DiffID: l.DiffID, Open: l.Open})
	}
	return out, rf.Image.Ref, nil
}

// hostFiles are the paths of the rootfs whose content and mtime come from
// a file of the host (a binary, a library, python's standard library, a
// copy): the layer keeps their mtime, which python's bytecode cache checks
// against its sources. What hutch wrote itself (inline files, folders,
// symlinks it made) has the time of the export and gets export.Epoch.
func hostFiles(fs *fsdrv.Driver, c *plan.Container) (map[string]bool, error) {
	rf := rootfsOf(c)
	if rf == nil {
		return nil, nil
	}
	files, err := fs.Files(context.Background(), rf)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, f := range files {
		switch f.Kind {
		case "file", "hardlink", "symlink":
			keep[f.Path] = f.Src != ""
		}
	}
	return keep, nil
}

// specContainer is the manifest's container document of that name, or nil.
func specContainer(m *spec.Manifest, name string) *spec.Container {
	for _, c := range m.Containers {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

// writeKube writes DIR/kube.yaml: the Kubernetes objects of every
// container of the manifests, whose images refs names, in one file, so
// that one `podman kube play` or `kubectl apply -f` runs a whole lab.
func writeKube(m *spec.Manifest, d *plan.Desired, refs map[string]string, o exportOptions) (string, error) {
	header := []string{
		"Written by hutch export --format kube -f " + strings.Join(o.files, " -f ") + ".",
		"The images are beside this file: NAME.tar (podman load -i NAME.tar) and NAME/, an",
		"OCI image layout (skopeo copy oci:NAME:" + o.tag + " docker://REGISTRY/NAME:" + o.tag + ").",
		"On this machine: podman kube play kube.yaml; on a cluster, push the images, set",
		"each image: to the pushed name, and kubectl apply -f kube.yaml (docs/kubernetes.md).",
		"",
	}
	b, err := export.Kube(m, d, refs, header)
	if err != nil {
		return "", err
	}
	p := filepath.Join(o.output, "kube.yaml")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("export: %w", err)
	}
	return p, nil
}
