package main

import (
	"context"
	"fmt"
	"io"

	"hutch/explain"
	"hutch/plan"
)

// explainHost asks the host's drivers for the facts the explanations name:
// the cgroup version and folders, and each rootfs's resolved file list
// (from the read-only rootfs driver: an explanation only reads).
func explainHost(c context.Context, h *host, d *plan.Desired) (explain.Host, error) {
	eh := explain.Host{NetnsDir: h.opts.NetnsDir, CgroupDirs: map[string]map[string]string{}, Files: map[string][]explain.File{}}
	cg, err := h.cgroup()
	if err != nil {
		return eh, err
	}
	eh.CgroupV2 = cg.Version() == "v2"
	fs := h.readOnlyRootfs()
	for _, ctr := range d.Containers {
		for _, r := range ctr.Resources {
			switch r := r.(type) {
			case *plan.Cgroup:
				eh.CgroupDirs[r.Path] = cg.Dirs(r.Path)
			case *plan.Rootfs:
				files, err := fs.Files(c, r)
				if err != nil {
					return eh, err
				}
				for _, f := range files {
					eh.Files[r.Container] = append(eh.Files[r.Container], explain.File{
						Path: f.Path, Kind: f.Kind, Src: f.Src, Mode: f.Mode, Target: f.Target})
				}
			}
		}
	}
	return eh, nil
}

// writeExplained writes a plan with its explanation: human, json (the
// steps) or script (the runnable bash script of the desired state).
func writeExplained(c context.Context, w io.Writer, h *host, output string, p *plan.Plan, d *plan.Desired, verbose bool) error {
	eh, err := explainHost(c, h, d)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	switch output {
	case "json":
		return explain.JSON(w, p, d, eh)
	case "script":
		return explain.Script(w, d, eh)
	}
	return explain.Render(w, p, d, eh, verbose)
}
