package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"hutch/plan"
)

// Render writes the plan's changes for people with, under each, the kernel
// operation, the shell commands (prefixed "$") and the seed's mistakes at
// that step (prefixed "!"). No-ops are left out unless verbose.
func Render(w io.Writer, p *plan.Plan, d *plan.Desired, h Host, verbose bool) error {
	symbols := map[plan.Action]string{plan.Create: "+", plan.Update: "~", plan.Replace: "-/+", plan.Delete: "-", plan.NoOp: "="}
	var b strings.Builder
	for _, c := range p.Changes {
		if c.Action == plan.NoOp && !verbose {
			continue
		}
		head := symbols[c.Action] + " " + c.ID
		if c.Half != "" {
			head += " (replace: " + string(c.Half) + ")"
		}
		s := Explain(c, d.Container(c.Resource().Owner()), h)
		fmt.Fprintln(&b, head)
		fmt.Fprintf(&b, "    kernel: %s\n", s.Kernel)
		for _, line := range s.Shell {
			if strings.HasPrefix(line, "#") {
				fmt.Fprintf(&b, "      %s\n", line)
				continue
			}
			fmt.Fprintf(&b, "    $ %s\n", strings.ReplaceAll(line, "\n", "\n      "))
		}
		for _, line := range s.Seed {
			fmt.Fprintf(&b, "    ! %s\n", line)
		}
	}
	s := p.Summary()
	if s.Changed() {
		fmt.Fprintf(&b, "\nPlan: %s.\n", s)
	} else {
		fmt.Fprintf(&b, "No changes: the host matches the manifest (%d unchanged).\n", s.NoOp)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON writes the steps of the plan's changes, no-ops included.
func JSON(w io.Writer, p *plan.Plan, d *plan.Desired, h Host) error {
	steps := []Step{}
	for _, c := range p.Changes {
		steps = append(steps, Explain(c, d.Container(c.Resource().Owner()), h))
	}
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	return e.Encode(steps)
}

// Script writes a bash script that makes, from nothing, what the desired
// state describes, with the same kernel steps hutch takes, and removes it
// again: `script.sh up` and `script.sh down`. It needs iproute2,
// util-linux (nsenter, unshare, setpriv) and a static busybox, and runs as
// root. It is written for a host that has none of the containers: it does
// not diff. Each step carries the seed's mistakes as comments.
func Script(w io.Writer, d *plan.Desired, h Host) error {
	var b strings.Builder
	var names []string
	for _, c := range d.Containers {
		names = append(names, c.Name)
	}
	fmt.Fprintf(&b, scriptHeader, strings.Join(names, ", "))
	for _, c := range d.Containers {
		upFunc(&b, c, h)
	}
	for _, c := range d.Containers {
		downFunc(&b, c, h)
	}
	b.WriteString("\ncase \"${1:-}\" in\n  up)\n")
	for _, c := range d.Containers {
		fmt.Fprintf(&b, "    up_%s\n", fn(c.Name))
	}
	b.WriteString("    ;;\n  down)\n")
	for i := len(d.Containers) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "    down_%s\n", fn(d.Containers[i].Name))
	}
	b.WriteString("    ;;\n  *)\n    echo \"usage: $0 up|down\" >&2\n    exit 2\n    ;;\nesac\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// scriptHeader starts the script; %s is the containers' names.
const scriptHeader = `#!/usr/bin/env bash
# Written by 'hutch plan --explain -o script': the kernel steps hutch takes for
# %s, as shell commands, without hutch.
#
#   sudo bash THIS-SCRIPT up     build the rootfs, make the netns, veth pairs,
#                                addresses, routes and cgroups, start the process
#   sudo bash THIS-SCRIPT down   kill the processes, remove everything 'up' made
#
# Needs iproute2, util-linux (nsenter, unshare, setpriv) and a static busybox
# (busybox-static): after pivot_root the rootfs has no umount or setpriv, so
# the host's busybox is run once through the old root before it is unmounted.
# Not done here (no shell command does it): the seccomp filter hutch loads.
set -euo pipefail
[ -x /bin/busybox ] || { echo "needs a static busybox at /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
`

// upFunc writes the function up_NAME: the container's resources in order,
// then its process started in the background, its output in script.log of
// the bundle.
func upFunc(b *strings.Builder, c *plan.Container, h Host) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\nup_%s() {\n", fn(c.Name))
	var proc *plan.Process
	for _, r := range c.Resources {
		if pr, ok := r.(*plan.Process); ok {
			proc = pr
			continue
		}
		step(b, r, c, h)
	}
	if proc != nil {
		s := Explain(&plan.Change{ID: proc.ID(), Kind: proc.Kind(), Action: plan.Create, After: proc}, c, h)
		p("\n  # --- %s: %s\n", proc.ID(), s.Kernel)
		for _, l := range s.Seed {
			p("  # ! %s\n", l)
		}
		log := path.Join(proc.Bundle, "script.log")
		p("  mkdir -p %s\n  (\n", proc.Bundle)
		for _, l := range s.Shell {
			p("    %s\n", l)
		}
		p("  ) </dev/null >%s 2>&1 &\n", log)
		p("  echo \"%s: started (pid $!), output in %s\"\n", c.Name, log)
	}
	p("}\n")
}

// downFunc writes the function down_NAME: the processes killed first (they
// are the cgroup's), then the other resources in reverse, each only if it
// is still there, since the script may have stopped half way up.
func downFunc(b *strings.Builder, c *plan.Container, h Host) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\ndown_%s() {\n  set +e\n", fn(c.Name))
	rs := c.Resources
	for _, r := range rs {
		if cg, ok := r.(*plan.Cgroup); ok {
			ctrls, dirs := cgroupFolders(cg, h)
			p("  # --- %s: SIGKILL to every process in the cgroup, until it is empty\n", r.ID())
			p("  for i in $(seq 50); do\n    pids=\"$(cat %s/cgroup.procs 2>/dev/null)\"\n", dirs[ctrls[0]])
			p("    [ -z \"$pids\" ] && break\n    kill -9 $pids 2>/dev/null; sleep 0.1\n  done\n")
		}
	}
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		switch r.(type) {
		case *plan.Process, *plan.Address, *plan.Route:
			continue // gone with the process, the link, the namespace
		}
		kernel, cmds := teardown(r, h)
		p("  # --- %s: %s\n", r.ID(), kernel)
		for _, l := range cmds {
			if l, ok := scriptDown(l, h); ok {
				p("  %s\n", l)
			}
		}
		if cg, ok := r.(*plan.Cgroup); ok {
			// The parent goes too once no container uses it, as hutch
			// removes it (only a parent named hutch*).
			ctrls, dirs := cgroupFolders(cg, h)
			for _, c := range ctrls {
				if parent := path.Dir(dirs[c]); strings.HasPrefix(path.Base(parent), "hutch") {
					p("  rmdir %s 2>/dev/null || true\n", parent)
				}
			}
		}
	}
	p("}\n")
}

// scriptDown is a teardown command as the down function runs it: false for
// one it leaves out, guarded for one that fails when its object is gone.
func scriptDown(l string, h Host) (string, bool) {
	switch {
	case strings.HasPrefix(l, "xargs"):
		return "", false // the processes were killed first
	case strings.HasPrefix(l, "umount "):
		return "", false // the script's rootfs is a plain folder, never mounted on the host
	case strings.HasPrefix(l, "ip link delete "):
		return "if ip link show " + strings.TrimPrefix(l, "ip link delete ") + " >/dev/null 2>&1; then " + l + "; fi", true
	case strings.HasPrefix(l, "ip netns delete "):
		return "if [ -e " + netnsPath(h, strings.TrimPrefix(l, "ip netns delete ")) + " ]; then " + l + "; fi", true
	case strings.HasPrefix(l, "rmdir "):
		dir := strings.TrimPrefix(l, "rmdir ")
		return "for i in $(seq 50); do [ -d " + dir + " ] || break; " + l + " 2>/dev/null && break; sleep 0.1; done", true
	}
	return l, true
}

// step writes the up commands of one resource, with its explanation.
func step(b *strings.Builder, r plan.Resource, c *plan.Container, h Host) {
	s := Explain(&plan.Change{ID: r.ID(), Kind: r.Kind(), Action: plan.Create, After: r}, c, h)
	fmt.Fprintf(b, "\n  # --- %s: %s\n", r.ID(), s.Kernel)
	for _, l := range s.Seed {
		fmt.Fprintf(b, "  # ! %s\n", l)
	}
	lines := s.Shell
	if rf, ok := r.(*plan.Rootfs); ok {
		lines = rootfsUp(rf, h.Files[rf.Container], path.Join(rf.Bundle, "rootfs")) // every line
	}
	for _, l := range lines {
		fmt.Fprintf(b, "  %s\n", l)
	}
}

// fn makes a container name usable in a bash function name.
func fn(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}
