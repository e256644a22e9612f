//go:build linux

package process

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/plan"
)

// supervisorConfig is what the driver writes to supervisor.json for the
// supervisor: the Process resource and the cgroup path. The supervisor reads
// it at start and again on SIGHUP (an in-place update of the restart, stop
// and log policies).
type supervisorConfig struct {
	Process plan.Process `json:"process"`
	Cgroup  string       `json:"cgroup,omitempty"` // relative to each hierarchy's root
}

// launch is what supervisor.c needs, beyond the policies, to start the
// container's init itself (sup_clone) without a Go process: what startInit
// reads from config.json and asks the cgroup driver, worked out by the
// driver when it writes supervisor.conf.
type launch struct {
	OOMFile     string   // the cgroup file with the oom_kill line (v1 memory.oom_control, v2 memory.events)
	CloneFlags  uintptr  // CLONE_NEW* of the init's new namespaces
	Netns       string   // the network namespace to join, "" for none
	UIDMap      []string // lines of /proc/PID/uid_map ("0 100000 65536"), for a user namespace
	GIDMap      []string
	CgroupProcs []string // the cgroup.procs file of each hierarchy (CgroupJoiner.ProcsFiles)
}

// newLaunch works out the launch of spec's init for the cgroup at cgPath
// ("" for none) through cg.
func newLaunch(spec *specs.Spec, cg CgroupJoiner, cgPath string) (*launch, error) {
	attr, netns, err := initAttr(spec)
	if err != nil {
		return nil, err
	}
	l := &launch{CloneFlags: attr.Cloneflags, Netns: netns}
	for _, m := range attr.UidMappings {
		l.UIDMap = append(l.UIDMap, fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size))
	}
	for _, m := range attr.GidMappings {
		l.GIDMap = append(l.GIDMap, fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size))
	}
	if cgPath != "" && cg != nil {
		if l.OOMFile, err = cg.OOMFile(cgPath); err != nil {
			return nil, err
		}
		if l.CgroupProcs, err = cg.ProcsFiles(cgPath); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// writeConf writes supervisor.conf for the supervisor in C: the policies
// of p and the launch of its init, as "key value" lines (a key with
// several values repeats).
func writeConf(bundle string, p *plan.Process, l *launch) error {
	sig, err := parseSignal(p.StopSignal)
	if err != nil {
		return fmt.Errorf("container %s: stop signal: %w", p.Container, err)
	}
	b := fmt.Appendf(nil, "container %s\ndigest %s\nrestart %s\nmax_retries %d\nstop_signal %d\nstop_timeout_ns %d\nlog_max_size %d\nlog_max_files %d\n",
		p.Container, p.Digest, p.Restart.Policy, p.Restart.MaxRetries, int(sig), int64(p.StopTimeout), p.Logs.MaxSize, p.Logs.MaxFiles)
	// supervisor.c holds up to 16 cgroup.procs files and 1 KiB of each map.
	if len(l.CgroupProcs) > 16 || len(strings.Join(l.UIDMap, "\n")) > 1000 || len(strings.Join(l.GIDMap, "\n")) > 1000 {
		return fmt.Errorf("container %s: %d cgroup hierarchies, %d uid and %d gid mappings: more than the supervisor holds", p.Container, len(l.CgroupProcs), len(l.UIDMap), len(l.GIDMap))
	}
	b = fmt.Appendf(b, "clone_flags %d\n", l.CloneFlags)
	kv := [][2]string{{"oom_file", l.OOMFile}, {"netns", l.Netns}}
	if h := p.Health; h != nil {
		// supervisor_health.c holds 64 arguments in 16 KiB.
		n := 0
		for _, a := range h.Command {
			n += len(a) + 1
		}
		if len(h.Command) > 64 || n > 16<<10 {
			return fmt.Errorf("container %s: health check: %d arguments of %d bytes: more than the supervisor holds (64, 16 KiB)", p.Container, len(h.Command), n)
		}
		b = fmt.Appendf(b, "health_kind %s\nhealth_port %d\nhealth_interval_ns %d\nhealth_start_interval_ns %d\nhealth_timeout_ns %d\nhealth_retries %d\nhealth_start_period_ns %d\n",
			h.Kind, h.Port, int64(h.Interval), int64(h.StartInterval), int64(h.Timeout), h.Retries, int64(h.StartPeriod))
		kv = append(kv, [2]string{"health_path", h.Path})
		for _, a := range h.Command {
			if strings.Contains(a, "\x00") {
				return fmt.Errorf("container %s: health check: argument %q holds a NUL byte", p.Container, a)
			}
			// One line each, a newline in it written as \n (and \ as \\).
			kv = append(kv, [2]string{"health_arg", confEscaper.Replace(a)})
		}
	}
	for _, m := range l.UIDMap {
		kv = append(kv, [2]string{"uid_map", m})
	}
	for _, m := range l.GIDMap {
		kv = append(kv, [2]string{"gid_map", m})
	}
	for _, f := range l.CgroupProcs {
		kv = append(kv, [2]string{"cgroup_procs", f})
	}
	for _, e := range kv {
		if e[1] == "" && e[0] != "health_arg" {
			continue
		}
		// The C supervisor reads lines of up to 4 KiB.
		if strings.ContainsAny(e[1], "\n\x00") || len(e[1]) > 4000 {
			return fmt.Errorf("container %s: %s %q: not a line supervisor.conf can hold", p.Container, e[0], e[1])
		}
		b = fmt.Appendf(b, "%s %s\n", e[0], e[1])
	}
	return writeAtomic(filepath.Join(bundle, confFile), b)
}

// confEscaper writes a value that may hold newlines as one line of
// supervisor.conf (hc_unescape in supervisor_health.c reads it back).
var confEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n")
