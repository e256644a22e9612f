package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	processdrv "hutch/drivers/process"
	"hutch/inspect"
)

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
"memory: 50M at manifests/webserver.yaml:94:13".`,
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
				r := &inspect.Reader{Store: h.store(), Net: h.network(), Sysctl: h.sysctl()}
				un, err := r.Unit(st)
				if err != nil {
					return fmt.Errorf("inspect: %w", err)
				}
				return writeUnitInspection(w, un, output == "json")
			}
			r, err := h.reader()
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			in, err := r.Container(args[0])
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

// orNone is s, or "(none)" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// plural is "1 thing" or "N things".
func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// writeInspection writes the human form: one section per kernel object.
func writeInspection(w io.Writer, in *inspect.Container) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := printf(func(format string, args ...any) { fmt.Fprintf(tw, format, args...) })
	p("Name:\t%s\n", in.Name)
	p("Manifest:\t%s\n", in.Manifest)
	p("Labels:\t%s\n", labelList(in.Labels))
	writeState(p, in)
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
		writeNetns(p, n)
	}
	if c := in.Cgroup; c != nil {
		writeCgroup(p, c)
	}
	if k := in.Process; k != nil {
		writeProcesses(p, k)
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

// printf writes a line of the human form (into its tabwriter).
type printf func(format string, args ...any)

// writeState writes the process's state, its health check's last results
// and the limits it hit.
func writeState(p printf, in *inspect.Container) {
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
}

// writeNetns writes a network namespace: its interfaces and routes.
func writeNetns(p printf, n inspect.Netns) {
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

// writeCgroup writes the cgroup's folders, limits and counters.
func writeCgroup(p printf, c *inspect.Cgroup) {
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

// writeProcesses writes the processes of the pid namespace, the first
// process's security settings and its mounts.
func writeProcesses(p printf, k *processdrv.Kernel) {
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
