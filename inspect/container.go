//go:build linux

package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cgroupdrv "hutch/drivers/cgroup"
	netdrv "hutch/drivers/net"
	processdrv "hutch/drivers/process"
	"hutch/plan"
	"hutch/spec"
)

// Container is everything hutch inspect reports about one container:
// hutch's record of it (manifest, state) beside what the kernel shows now.
type Container struct {
	Name     string            `json:"name"`
	Manifest string            `json:"manifest"`
	Labels   map[string]string `json:"labels"` // from config.json's annotations
	State    *processdrv.State `json:"state"`
	// Process is the container's first process as /proc shows it; nil
	// when it does not run.
	Process *processdrv.Kernel `json:"process"`
	Netns   []Netns            `json:"netns"`
	Cgroup  *Cgroup            `json:"cgroup"`
	Limits  []Limit            `json:"limits"` // set only for a limit the container hit
	// Rules are its published ports' nftables rules, as the kernel has them.
	Rules    []Object        `json:"nftRules,omitempty"`
	Config   json.RawMessage `json:"config"`
	Warnings []string        `json:"warnings,omitempty"`
}

// Netns is one of the container's network namespaces, read through
// netlink in it.
type Netns struct {
	Name       string               `json:"name"`
	Path       string               `json:"path"`
	Inode      uint64               `json:"inode"`
	Interfaces []netdrv.Interface   `json:"interfaces"`
	Routes     []netdrv.KernelRoute `json:"routes"`
}

// Cgroup is the container's cgroup: its folder in each hierarchy, the
// limits read back from the cgroup files and the counters.
type Cgroup struct {
	Path   string            `json:"path"`
	Dirs   map[string]string `json:"dirs"`
	Limits *plan.Cgroup      `json:"limits"` // read back from the cgroup files
	Stats  *cgroupdrv.Stats  `json:"stats"`
}

// Limit names the manifest line that set a limit the container hit.
type Limit struct {
	Limit  string `json:"limit"`  // "memory"
	Value  string `json:"value"`  // "50M"
	Where  string `json:"where"`  // "manifests/webserver.yaml:31:13"
	Reason string `json:"reason"` // "1 OOM kill"
}

// Container reads one container: what the state store says hutch made,
// each object read from the kernel now. What cannot be read is a warning
// of the result, not an error, except the container's record and its
// process state.
func (r *Reader) Container(name string) (*Container, error) {
	st, err := r.Store.Load(name)
	if err != nil {
		return nil, err
	}
	in := &Container{Name: name, Manifest: st.Manifest.Path}
	if in.Labels, err = r.Store.Labels(name); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	if in.State, err = r.Process.State(r.Store.Dir(name)); err != nil {
		return nil, err
	}
	if in.State.PID > 0 {
		k, err := r.Process.Inspect(in.State.PID)
		if err != nil {
			in.Warnings = append(in.Warnings, err.Error())
		}
		in.Process = k
	}
	for _, rec := range st.Resources {
		res, err := rec.Resource()
		if err != nil {
			return nil, err
		}
		switch res := res.(type) {
		case *plan.Netns:
			in.Netns = append(in.Netns, r.netns(in, res.Name))
		case *plan.Cgroup:
			in.Cgroup = r.cgroup(in, res)
		case *plan.NftRule:
			in.Rules = append(in.Rules, r.rule(res))
		}
	}
	if b, err := os.ReadFile(r.Store.ConfigPath(name)); err == nil {
		in.Config = json.RawMessage(b)
	} else {
		in.Warnings = append(in.Warnings, fmt.Sprintf("config.json: %v", err))
	}
	in.Limits, err = hitLimits(in, st.Manifest.Path)
	if err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	return in, nil
}

// netns reads a named network namespace: its nsfs inode, its interfaces
// and routes.
func (r *Reader) netns(in *Container, name string) Netns {
	ni := Netns{Name: name, Path: r.Net.NetnsPath(name)}
	var e1, e2, e3 error
	ni.Inode, e1 = r.Net.NetnsInode(name)
	ni.Interfaces, e2 = r.Net.Interfaces(name)
	ni.Routes, e3 = r.Net.Routes(name)
	if err := errors.Join(e1, e2, e3); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	return ni
}

// cgroup reads the container's cgroup: the limits as the driver observes
// them and the counters.
func (r *Reader) cgroup(in *Container, c *plan.Cgroup) *Cgroup {
	ci := &Cgroup{Path: c.Path, Dirs: r.Cgroup.Dirs(c.Path)}
	got, err := r.Cgroup.Observe(context.Background(), c)
	if err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	} else if got != nil {
		ci.Limits = got.(*plan.Cgroup)
	}
	if ci.Stats, err = r.Cgroup.Stats(c.Path); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	return ci
}

// hitLimits names the manifest line of each limit the container hit: the
// memory limit when the OOM killer killed one of its processes, the CPU
// quota when the kernel throttled it. The manifest is loaded again from the
// path the state store keeps; spec keeps every value's line and column.
func hitLimits(in *Container, manifest string) ([]Limit, error) {
	var oom, throttled uint64
	if in.Cgroup != nil && in.Cgroup.Stats != nil {
		oom, throttled = in.Cgroup.Stats.OOMKills, in.Cgroup.Stats.NrThrottled
	}
	if in.State != nil && in.State.OOMKilled && oom == 0 {
		oom = 1
	}
	if oom == 0 && throttled == 0 {
		return nil, nil
	}
	out := []Limit{}
	if manifest == "" || manifest == "<stdin>" {
		return out, fmt.Errorf("manifest %q: cannot be read again to name the line of the limit", manifest)
	}
	m, err := spec.Load([]string{manifest}, nil)
	if err != nil {
		return out, fmt.Errorf("manifest %s: %w", manifest, err)
	}
	var c *spec.Container
	for _, sc := range m.Containers {
		if sc.Metadata.Name == in.Name {
			c = sc
		}
	}
	if c == nil {
		return out, fmt.Errorf("manifest %s: no container %s any more", manifest, in.Name)
	}
	where := func(path string) string {
		p := c.Source.Pos(path)
		return fmt.Sprintf("%s:%d:%d", displayPath(manifest), p.Line, p.Col)
	}
	res := c.Spec.Resources
	if oom > 0 {
		memory := res.Memory
		if memory == "" {
			memory = "(none)"
		}
		out = append(out, Limit{Limit: "memory", Value: memory,
			Where: where("spec.resources.memory"), Reason: plural(oom, "OOM kill")})
	}
	if throttled > 0 {
		reason := plural(throttled, "throttled period")
		switch {
		case res.CPUQuota != 0:
			out = append(out, Limit{Limit: "cpuQuota", Value: fmt.Sprint(res.CPUQuota),
				Where: where("spec.resources.cpuQuota"), Reason: reason})
		case res.CPU != "":
			out = append(out, Limit{Limit: "cpu", Value: res.CPU,
				Where: where("spec.resources.cpu"), Reason: reason})
		}
		if res.CPUPeriod != 0 {
			out = append(out, Limit{Limit: "cpuPeriod", Value: fmt.Sprint(res.CPUPeriod),
				Where: where("spec.resources.cpuPeriod"), Reason: reason})
		}
	}
	return out, nil
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// displayPath shows a path relative to the working folder when it is
// inside it (manifests/webserver.yaml), absolute otherwise.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}
