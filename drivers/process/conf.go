//go:build linux

package process

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/plan"
)

// supervisorConfig is what the driver writes to supervisor.json: the
// Process resource and the cgroup path, which Observe reads back, and
// Stop, Exec, `hutch run` and the cgroup-kill stage read for the cgroup.
// The supervisor reads the same policies from supervisor.conf (confBytes),
// at its start and again on SIGHUP (an update in place).
type supervisorConfig struct {
	Process plan.Process `json:"process"`
	Cgroup  string       `json:"cgroup,omitempty"` // relative to each hierarchy's root
}

// launch is what the supervisor needs, beyond the policies, to start the
// container's init itself (sup_clone in supervisor_clone.c) without a Go
// process: what startInit
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

// writeConf writes supervisor.conf for the supervisor: the policies of p
// and the launch of its init (confBytes).
func writeConf(bundle string, p *plan.Process, l *launch) error {
	b, err := confBytes(p, l)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(bundle, confFile), b)
}

// confBytes is supervisor.conf's text: "key value" lines (protocol.go has
// the keys), a key with several values repeated. What the supervisor
// could not hold (protocol.go's limits), or a value a line cannot hold,
// is refused before anything is written.
func confBytes(p *plan.Process, l *launch) ([]byte, error) {
	sig, err := parseSignal(p.StopSignal)
	if err != nil {
		return nil, fmt.Errorf("container %s: stop signal: %w", p.Container, err)
	}
	var b []byte
	line := func(key string, v any) { b = fmt.Appendf(b, "%s %v\n", key, v) }
	line(keyContainer, p.Container)
	line(keyDigest, p.Digest)
	line(keyRestart, p.Restart.Policy)
	line(keyMaxRetries, p.Restart.MaxRetries)
	line(keyStopSignal, int(sig))
	line(keyStopTimeoutNs, int64(p.StopTimeout))
	line(keyLogMaxSize, p.Logs.MaxSize)
	line(keyLogMaxFiles, p.Logs.MaxFiles)
	if len(l.CgroupProcs) > confMaxCgroups || len(strings.Join(l.UIDMap, "\n")) > confMaxMap || len(strings.Join(l.GIDMap, "\n")) > confMaxMap {
		return nil, fmt.Errorf("container %s: %d cgroup hierarchies, %d uid and %d gid mappings: more than the supervisor holds", p.Container, len(l.CgroupProcs), len(l.UIDMap), len(l.GIDMap))
	}
	line(keyCloneFlags, l.CloneFlags)
	kv := [][2]string{{keyOOMFile, l.OOMFile}, {keyNetns, l.Netns}}
	if h := p.Health; h != nil {
		n := 0
		for _, a := range h.Command {
			n += len(a) + 1
		}
		if len(h.Command) > healthMaxArgs || n > healthMaxArgBytes {
			return nil, fmt.Errorf("container %s: health check: %d arguments of %d bytes: more than the supervisor holds (%d, %d KiB)", p.Container, len(h.Command), n, healthMaxArgs, healthMaxArgBytes>>10)
		}
		line(keyHealthKind, h.Kind)
		line(keyHealthPort, h.Port)
		line(keyHealthIntervalNs, int64(h.Interval))
		line(keyHealthStartIntervalNs, int64(h.StartInterval))
		line(keyHealthTimeoutNs, int64(h.Timeout))
		line(keyHealthRetries, h.Retries)
		line(keyHealthStartPeriodNs, int64(h.StartPeriod))
		kv = append(kv, [2]string{keyHealthPath, h.Path})
		for _, a := range h.Command {
			if strings.Contains(a, "\x00") {
				return nil, fmt.Errorf("container %s: health check: argument %q holds a NUL byte", p.Container, a)
			}
			// One line each, a newline in it written as \n (and \ as \\).
			kv = append(kv, [2]string{keyHealthArg, confEscaper.Replace(a)})
		}
	}
	for _, m := range l.UIDMap {
		kv = append(kv, [2]string{keyUIDMap, m})
	}
	for _, m := range l.GIDMap {
		kv = append(kv, [2]string{keyGIDMap, m})
	}
	for _, f := range l.CgroupProcs {
		kv = append(kv, [2]string{keyCgroupProcs, f})
	}
	for _, e := range kv {
		if e[1] == "" && e[0] != keyHealthArg {
			continue
		}
		if strings.ContainsAny(e[1], "\n\x00") || len(e[1]) > confMaxValue {
			return nil, fmt.Errorf("container %s: %s %q: not a line supervisor.conf can hold", p.Container, e[0], e[1])
		}
		line(e[0], e[1])
	}
	return b, nil
}

// confEscaper writes a value that may hold newlines as one line of
// supervisor.conf (hc_unescape in supervisor_health.c reads it back).
var confEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n")
