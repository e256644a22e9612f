//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Stats is what the kernel counts for one cgroup. Limits read 0 when there
// is none.
type Stats struct {
	MemoryUsage uint64 `json:"memoryUsage"` // bytes: v1 memory.usage_in_bytes, v2 memory.current
	MemoryLimit uint64 `json:"memoryLimit"` // bytes: v1 memory.limit_in_bytes, v2 memory.max
	MemoryPeak  uint64 `json:"memoryPeak"`  // bytes: v1 memory.max_usage_in_bytes, v2 memory.peak
	CPUUsageNs  uint64 `json:"cpuUsageNs"`  // v1 cpuacct.usage, v2 cpu.stat usage_usec
	NrPeriods   uint64 `json:"nrPeriods"`   // cpu.stat nr_periods: CFS periods with runnable tasks
	NrThrottled uint64 `json:"nrThrottled"` // cpu.stat nr_throttled: periods the quota ran out
	ThrottledNs uint64 `json:"throttledNs"` // v1 cpu.stat throttled_time, v2 throttled_usec
	PidsCurrent uint64 `json:"pidsCurrent"` // pids.current (tasks: threads count)
	PidsLimit   uint64 `json:"pidsLimit"`   // pids.max
	OOMKills    uint64 `json:"oomKills"`    // processes the OOM killer killed in the cgroup
}

// OOMKills says how many processes the kernel's OOM killer killed in the
// cgroup because of its memory limit: oom_kill in v1 memory.oom_control,
// in v2 memory.events (which counts the cgroup's subtree).
func (d *Driver) OOMKills(path string) (uint64, error) {
	if err := d.own(path); err != nil {
		return 0, err
	}
	n, err := d.oomKills(path)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: oom kills: %w", path, err)
	}
	return n, nil
}

// OOMFile returns the absolute path of the file whose oom_kill line
// OOMKills reads (v1 memory.oom_control, v2 memory.events), for a reader
// that is not Go: the C supervisor reads it when the container's process
// ends. It is "" when the host has no memory controller. It only computes
// the path; the folder may not exist yet.
func (d *Driver) OOMFile(path string) (string, error) {
	if err := d.own(path); err != nil {
		return "", err
	}
	m, v2, ok := d.ctl("memory")
	if !ok {
		return "", nil
	}
	if v2 {
		return filepath.Join(m, path, "memory.events"), nil
	}
	return filepath.Join(m, path, "memory.oom_control"), nil
}

func (d *Driver) oomKills(path string) (uint64, error) {
	m, v2, ok := d.ctl("memory")
	if !ok {
		return 0, d.missingError("memory")
	}
	file := "memory.oom_control"
	if v2 {
		file = "memory.events"
	}
	kv, err := readKeyed(filepath.Join(m, path), file)
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}

// Stats reads the cgroup's counters. Controllers the host lacks leave their
// fields at 0.
func (d *Driver) Stats(path string) (*Stats, error) {
	if err := d.own(path); err != nil {
		return nil, err
	}
	s, err := d.stats(path)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: stats: %w", path, err)
	}
	return s, nil
}

func (d *Driver) stats(path string) (*Stats, error) {
	s := &Stats{}
	u := func(v int64) uint64 {
		if v < 0 || v >= unlimitedV1 {
			return 0
		}
		return uint64(v)
	}
	var errs []error
	read := func(dst *uint64, dir, file string) {
		v, err := readInt(dir, file)
		errs = append(errs, err)
		*dst = u(v)
	}
	if m, v2, ok := d.ctl("memory"); ok {
		dir := filepath.Join(m, path)
		if v2 {
			read(&s.MemoryUsage, dir, "memory.current")
			read(&s.MemoryLimit, dir, "memory.max")
			if exists(filepath.Join(dir, "memory.peak")) { // kernel 5.19+
				read(&s.MemoryPeak, dir, "memory.peak")
			}
		} else {
			read(&s.MemoryUsage, dir, "memory.usage_in_bytes")
			read(&s.MemoryLimit, dir, "memory.limit_in_bytes")
			read(&s.MemoryPeak, dir, "memory.max_usage_in_bytes")
		}
		n, err := d.oomKills(path)
		errs = append(errs, err)
		s.OOMKills = n
	}
	if m, v2, ok := d.ctl("cpu"); ok {
		kv, err := readKeyed(filepath.Join(m, path), "cpu.stat")
		errs = append(errs, err)
		s.NrPeriods, s.NrThrottled = kv["nr_periods"], kv["nr_throttled"]
		if v2 {
			s.ThrottledNs = kv["throttled_usec"] * 1000
			s.CPUUsageNs = kv["usage_usec"] * 1000
		} else {
			s.ThrottledNs = kv["throttled_time"]
		}
	}
	if m, v2, ok := d.ctl("cpuacct"); ok && !v2 {
		read(&s.CPUUsageNs, filepath.Join(m, path), "cpuacct.usage")
	} else if d.unified != "" && s.CPUUsageNs == 0 {
		// cpu.stat usage_usec is a core cgroup2 file, present without the
		// cpu controller.
		if kv, err := readKeyed(filepath.Join(d.unified, path), "cpu.stat"); err == nil {
			s.CPUUsageNs = kv["usage_usec"] * 1000
		}
	}
	if m, _, ok := d.ctl("pids"); ok {
		dir := filepath.Join(m, path)
		read(&s.PidsCurrent, dir, "pids.current")
		read(&s.PidsLimit, dir, "pids.max")
	}
	return s, errors.Join(errs...)
}
