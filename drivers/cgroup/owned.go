//go:build linux

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"hutch/plan"
)

// Finding what hutch owns without the state store: every cgroup directly
// under the driver's parent ("hutch") is a container's, named after it
// (plan.Options.CgroupPath). The parent is hutch's mark; a cgroup elsewhere
// is never returned, whatever it is called.

// Owned returns the container's cgroup (parent/container) as a plan.Cgroup
// value this driver's Delete accepts, when its folder exists in any
// hierarchy hutch uses (a half-made or half-removed one included). It only
// reads the folders.
func (d *Driver) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	if container == "" || container == "." || container == ".." || strings.ContainsAny(container, "/\x00") {
		return nil, fmt.Errorf("cgroup: find container %q's: not a container name", container)
	}
	path := d.parent + "/" + container
	if err := d.own(path); err != nil {
		return nil, err
	}
	if n, _ := d.present(path); n == 0 {
		return nil, nil
	}
	return []plan.Resource{&plan.Cgroup{Container: container, Path: path}}, nil
}

// Marked lists the containers whose cgroups exist under the parent, in any
// hierarchy hutch uses, sorted.
func (d *Driver) Marked(ctx context.Context) ([]string, error) {
	var names []string
	for _, m := range d.mounts() {
		ents, err := os.ReadDir(filepath.Join(m, d.parent))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup parent %s: find hutch's: %w", d.parent, bare(err))
		}
		for _, e := range ents {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names, nil
}
