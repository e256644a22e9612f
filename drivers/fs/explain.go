//go:build linux

package fs

import (
	"context"
	"fmt"

	"hutch/plan"
)

// RootfsFile is one object of a resolved rootfs recipe: what the layer of
// the recipe holds at Path, and the host file it comes from. `hutch plan
// --explain` turns the list into the cp and mkdir commands that would build
// the same folder by hand.
type RootfsFile struct {
	Path   string `json:"path"` // inside the rootfs
	Kind   string `json:"kind"` // dir, file, symlink, hardlink, inline
	Src    string `json:"src,omitempty"`
	Mode   uint32 `json:"mode"`
	Target string `json:"target,omitempty"` // symlink target; hardlink: the first path
}

// Files resolves the recipe on the host as Apply would (binaries on PATH
// and their ELF dependency closure, the python interpreter's standard
// library, copies, inline files, folders) and lists the result, in the
// order the layer is written. It reads the host, runs nothing and writes
// nothing (not even a kept resolution).
func (d *Driver) Files(ctx context.Context, r *plan.Rootfs) ([]RootfsFile, error) {
	d.mu.Lock()
	t, err := d.res.resolve(ctx, r)
	d.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", r.Container, err)
	}
	out := make([]RootfsFile, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, RootfsFile{Path: e.Path, Kind: e.Kind.String(), Src: e.Src, Mode: e.Mode, Target: e.Target})
	}
	return out, nil
}
