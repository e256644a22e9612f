package main

import (
	"context"
	"fmt"
	"io"

	cgroupdrv "hutch/drivers/cgroup"
	fsdrv "hutch/drivers/fs"
	"hutch/explain"
	"hutch/plan"
)

// explainHost asks the drivers for the host facts the explanations name:
// the cgroup version and folders, and each rootfs's resolved file list.
// It only reads the host.
func explainHost(c context.Context, d *plan.Desired, o plan.Options) (explain.Host, error) {
	h := explain.Host{NetnsDir: o.NetnsDir, CgroupDirs: map[string]map[string]string{}, Files: map[string][]explain.File{}}
	cg, err := cgroupdrv.New("", o.CgroupParent)
	if err != nil {
		return h, err
	}
	h.CgroupV2 = cg.Version() == "v2"
	fs := fsdrv.New(o.StateRoot)
	for _, ctr := range d.Containers {
		for _, r := range ctr.Resources {
			switch r := r.(type) {
			case *plan.Cgroup:
				h.CgroupDirs[r.Path] = cg.Dirs(r.Path)
			case *plan.Rootfs:
				files, err := fs.Files(c, r)
				if err != nil {
					return h, err
				}
				for _, f := range files {
					h.Files[r.Container] = append(h.Files[r.Container], explain.File{
						Path: f.Path, Kind: f.Kind, Src: f.Src, Mode: f.Mode, Target: f.Target})
				}
			}
		}
	}
	return h, nil
}

// writeExplained writes a plan with its explanation: human, json (the
// steps) or script (the runnable bash script of the desired state).
func writeExplained(c context.Context, w io.Writer, output string, p *plan.Plan, d *plan.Desired, verbose bool) error {
	h, err := explainHost(c, d, options())
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	switch output {
	case "json":
		return explain.JSON(w, p, d, h)
	case "script":
		return explain.Script(w, d, h)
	}
	return explain.Render(w, p, d, h, verbose)
}
