package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	cgroupdrv "hutch/drivers/cgroup"
	netdrv "hutch/drivers/net"
	processdrv "hutch/drivers/process"
	"hutch/plan"
	"hutch/spec"
)

// inspection is everything `hutch inspect` reports about one container:
// hutch's record of it (manifest, state) beside what the kernel shows now.
type inspection struct {
	Name     string            `json:"name"`
	Manifest string            `json:"manifest"`
	Labels   map[string]string `json:"labels"` // from config.json's annotations
	State    *processdrv.State `json:"state"`
	// Process is the container's first process as /proc shows it; nil
	// when it does not run.
	Process *processdrv.Kernel `json:"process"`
	Netns   []netnsInfo        `json:"netns"`
	Cgroup  *cgroupInfo        `json:"cgroup"`
	Limits  []limitSource      `json:"limits"` // set only for a limit the container hit
	// Rules are its published ports' nftables rules, as the kernel has them.
	Rules    []unitObject    `json:"nftRules,omitempty"`
	Config   json.RawMessage `json:"config"`
	Warnings []string        `json:"warnings,omitempty"`
}

type netnsInfo struct {
	Name       string               `json:"name"`
	Path       string               `json:"path"`
	Inode      uint64               `json:"inode"`
	Interfaces []netdrv.Interface   `json:"interfaces"`
	Routes     []netdrv.KernelRoute `json:"routes"`
}

type cgroupInfo struct {
	Path   string            `json:"path"`
	Dirs   map[string]string `json:"dirs"`
	Limits *plan.Cgroup      `json:"limits"` // read back from the cgroup files
	Stats  *cgroupdrv.Stats  `json:"stats"`
}

// limitSource names the manifest line that set a limit the container hit.
type limitSource struct {
	Limit  string `json:"limit"`  // "memory"
	Value  string `json:"value"`  // "50M"
	Where  string `json:"where"`  // "manifests/webserver.yaml:31:13"
	Reason string `json:"reason"` // "1 OOM kill"
}

// newInspectCommand is `hutch inspect`.
func newInspectCommand(h *host) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a container as the kernel sees it now",
		Long: `inspect shows one container as the kernel reports it at this moment, not as
hutch remembers it: the namespaces of its first process with their inode
numbers (/proc/PID/ns/*; two processes share a namespace when the numbers are
equal), the interfaces, addresses and routes of its network namespace
(netlink), its cgroup folders with the limits read back from the cgroup files
and the counters, its mount table (/proc/PID/mountinfo), the processes of its
pid namespace, its capabilities (Cap* lines of /proc/PID/status), no_new_privs
and seccomp mode, and the config.json it runs.

When the container was killed by the OOM killer or its CPU quota throttled
it, inspect names the manifest line that set that limit, for example
"memory: 50M at manifests/webserver.yaml:31:13".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("inspect", args); err != nil {
				return err
			}
			if output != "human" && output != "json" {
				return fmt.Errorf("inspect: -o %q: expected human or json", output)
			}
			// Process arguments, mount points and names come from the
			// container: on a terminal their control characters are escaped.
			w := terminalSafe(cmd.OutOrStdout())
			if st, err := h.store().Load(args[0]); err == nil && st.Kind != "" {
				un, err := inspectUnit(h, st)
				if err != nil {
					return fmt.Errorf("inspect: %w", err)
				}
				return writeUnitInspection(w, un, output == "json")
			}
			in, err := inspect(h, args[0])
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			if output == "json" {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(in)
			}
			return writeInspection(w, in)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "human", "output format: human or json")
	return cmd
}

// inspect reads one container: what the state store says hutch made, each
// object read from the kernel now.
func inspect(h *host, name string) (*inspection, error) {
	store := h.store()
	st, err := store.Load(name)
	if err != nil {
		return nil, err
	}
	cg, err := h.cgroup()
	if err != nil {
		return nil, err
	}
	proc, err := h.process()
	if err != nil {
		return nil, err
	}
	net := h.network()
	in := &inspection{Name: name, Manifest: st.Manifest.Path}
	if in.Labels, err = recordedLabels(store, name); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	if in.State, err = proc.State(store.Dir(name)); err != nil {
		return nil, err
	}
	if in.State.PID > 0 {
		k, err := proc.Inspect(in.State.PID)
		if err != nil {
			in.Warnings = append(in.Warnings, err.Error())
		}
		in.Process = k
	}
	for _, rec := range st.Resources {
		r, err := rec.Resource()
		if err != nil {
			return nil, err
		}
		switch r := r.(type) {
		case *plan.Netns:
			ni := netnsInfo{Name: r.Name, Path: net.NetnsPath(r.Name)}
			var errs []error
			var e1, e2, e3 error
			ni.Inode, e1 = net.NetnsInode(r.Name)
			ni.Interfaces, e2 = net.Interfaces(r.Name)
			ni.Routes, e3 = net.Routes(r.Name)
			errs = append(errs, e1, e2, e3)
			if err := errors.Join(errs...); err != nil {
				in.Warnings = append(in.Warnings, err.Error())
			}
			in.Netns = append(in.Netns, ni)
		case *plan.Cgroup:
			ci := &cgroupInfo{Path: r.Path, Dirs: cg.Dirs(r.Path)}
			got, err := cg.Observe(context.Background(), r)
			if err != nil {
				in.Warnings = append(in.Warnings, err.Error())
			} else if got != nil {
				ci.Limits = got.(*plan.Cgroup)
			}
			if ci.Stats, err = cg.Stats(r.Path); err != nil {
				in.Warnings = append(in.Warnings, err.Error())
			}
			in.Cgroup = ci
		case *plan.NftRule:
			in.Rules = append(in.Rules, ruleObject(net, r))
		}
	}
	if b, err := os.ReadFile(store.ConfigPath(name)); err == nil {
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

// hitLimits names the manifest line of each limit the container hit: the
// memory limit when the OOM killer killed one of its processes, the CPU
// quota when the kernel throttled it. The manifest is loaded again from the
// path the state store keeps; spec keeps every value's line and column.
func hitLimits(in *inspection, manifest string) ([]limitSource, error) {
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
	out := []limitSource{}
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
		out = append(out, limitSource{Limit: "memory", Value: orNone(res.Memory),
			Where: where("spec.resources.memory"), Reason: plural(oom, "OOM kill")})
	}
	if throttled > 0 {
		reason := plural(throttled, "throttled period")
		switch {
		case res.CPUQuota != 0:
			out = append(out, limitSource{Limit: "cpuQuota", Value: fmt.Sprint(res.CPUQuota),
				Where: where("spec.resources.cpuQuota"), Reason: reason})
		case res.CPU != "":
			out = append(out, limitSource{Limit: "cpu", Value: res.CPU,
				Where: where("spec.resources.cpu"), Reason: reason})
		}
		if res.CPUPeriod != 0 {
			out = append(out, limitSource{Limit: "cpuPeriod", Value: fmt.Sprint(res.CPUPeriod),
				Where: where("spec.resources.cpuPeriod"), Reason: reason})
		}
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
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

// writeInspection writes the human form: one section per kernel object.
func writeInspection(w io.Writer, in *inspection) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("Name:\t%s\n", in.Name)
	p("Manifest:\t%s\n", in.Manifest)
	p("Labels:\t%s\n", labelList(in.Labels))
	st := in.State
	state := st.Status
	if st.OOMKilled {
		state += " (OOMKilled)"
	}
	p("State:\t%s (exit %d, %d restarts)\n", state, st.ExitCode, st.Restarts)
	if h := st.Health; h != nil {
		p("Health:\t%s (%d failed in a row)\n", h.Status, h.FailingStreak)
		for _, r := range h.Log {
			verdict := "failed"
			if r.Passed {
				verdict = "passed"
			}
			p("  %s\t%s in %s, exit %d: %s\n", r.Start.UTC().Format("15:04:05.000"), verdict, r.End.Sub(r.Start).Round(time.Millisecond), r.ExitCode, strings.TrimSpace(firstLine(r.Output)))
		}
	}
	for _, l := range in.Limits {
		p("Limit hit:\t%s: %s at %s (%s)\n", l.Limit, l.Value, l.Where, l.Reason)
	}
	if k := in.Process; k != nil {
		p("PID:\t%d (on the host)\n", k.PID)
		p("\nNamespaces (/proc/%d/ns):\n", k.PID)
		var types []string
		for t := range k.Namespaces {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			p("  %s\t%s:[%d]\n", t, t, k.Namespaces[t])
		}
	}
	for _, n := range in.Netns {
		p("\nNetwork namespace %s (%s, net:[%d]):\n", n.Name, n.Path, n.Inode)
		for _, i := range n.Interfaces {
			up := "DOWN"
			if i.Up {
				up = "UP"
			}
			p("  %d: %s\t%s %s\t%s\n", i.Index, i.Name, i.Type, up, strings.Join(i.Addresses, " "))
		}
		p("  routes:\n")
		for _, r := range n.Routes {
			line := r.Dst
			if r.Via != "" {
				line += " via " + r.Via
			}
			line += " dev " + r.Dev + " scope " + r.Scope
			if r.Src != "" {
				line += " src " + r.Src
			}
			p("    %s\n", line)
		}
	}
	if c := in.Cgroup; c != nil {
		p("\nCgroup %s:\n", c.Path)
		var ctrls []string
		for k := range c.Dirs {
			ctrls = append(ctrls, k)
		}
		sort.Strings(ctrls)
		for _, k := range ctrls {
			p("  %s\t%s\n", k, c.Dirs[k])
		}
		if l := c.Limits; l != nil {
			p("  limits:\tmemory %s, cpu quota %s per %dus period, pids %s\n",
				limit(uint64(max(l.Memory.Limit, 0)), bytesIEC), quota(l.CPU.Quota), l.CPU.Period,
				limit(uint64(max(l.Pids, 0)), func(v uint64) string { return fmt.Sprint(v) }))
		}
		if s := c.Stats; s != nil {
			p("  memory:\t%s used, %s peak, %d OOM kills\n", bytesIEC(s.MemoryUsage), bytesIEC(s.MemoryPeak), s.OOMKills)
			p("  cpu:\t%s used, %d of %d periods throttled (%s)\n", seconds(s.CPUUsageNs), s.NrThrottled, s.NrPeriods, seconds(s.ThrottledNs))
			p("  pids:\t%d\n", s.PidsCurrent)
		}
	}
	if k := in.Process; k != nil {
		p("\nProcesses (pid namespace pid:[%d]):\n", k.Namespaces["pid"])
		p("  PID\tIN CONTAINER\tPPID\tSTATE\tCOMMAND\n")
		for _, pr := range k.Processes {
			p("  %d\t%d\t%d\t%s\t%s\n", pr.PID, pr.NSPID, pr.PPID, pr.State, short(pr.Args, 60))
		}
		p("\nSecurity (/proc/%d/status):\n", k.PID)
		p("  effective caps:\t%s\n", capList(k.Capabilities.Effective))
		p("  bounding caps:\t%s\n", capList(k.Capabilities.Bounding))
		p("  ambient caps:\t%s\n", capList(k.Capabilities.Ambient))
		p("  no_new_privs:\t%v\n", k.NoNewPrivs)
		p("  seccomp:\t%s\n", seccompMode(k.Seccomp, k.SeccompFilters))
		p("\nMounts (/proc/%d/mountinfo):\n", k.PID)
		for _, m := range k.Mounts {
			p("  %s\t%s\t%s\t%s\n", m.Mountpoint, m.FSType, m.Source, short(m.Options, 40))
		}
	}
	if len(in.Rules) > 0 {
		p("\nPublished ports (nftables table inet hutch):\n")
		for _, r := range in.Rules {
			p("  %s\n    %s\n    %s\n", r.ID, r.What, r.State)
		}
	}
	for _, warn := range in.Warnings {
		p("\nwarning: %s\n", warn)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(in.Config) > 0 {
		fmt.Fprintf(w, "\nconfig.json:\n%s", in.Config)
	}
	return nil
}

func quota(q int64) string {
	if q <= 0 {
		return "max"
	}
	return fmt.Sprintf("%dus", q)
}

func capList(cs []string) string {
	if len(cs) == 0 {
		return "(none)"
	}
	return strings.Join(cs, ",")
}

func seccompMode(mode, filters int) string {
	switch mode {
	case 0:
		return "0 (disabled)"
	case 1:
		return "1 (strict)"
	}
	return fmt.Sprintf("%d (filter, %d attached)", mode, filters)
}

// firstLine is s up to its first newline, for a one-line summary of a
// check's output (inspect -o json keeps all of it).
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
