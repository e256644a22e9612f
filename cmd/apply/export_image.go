package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	fsdrv "hutch/drivers/fs"
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
	if err := exportRootfs(fs, c, root); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	keep, err := hostFiles(fs, c)
	if err != nil {
		return nil, err
	}
	return export.WriteImage(export.Image{
		Name:   c.Name,
		Ref:    export.Ref(o.repository, c.Name, o.tag),
		Rootfs: root,
		Keep:   func(p string) bool { return keep[p] },
		Config: export.ImageConfig(c, sc),
	}, o.output)
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
