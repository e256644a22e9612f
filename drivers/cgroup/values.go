//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// write sets every limit of cg in the controllers' files. Zero values are
// written as the kernel's defaults, so that an update that removes a limit
// takes it off.
func (d *Driver) write(cg *plan.Cgroup) error {
	var errs []error
	if m, v2, ok := d.ctl("memory"); ok {
		dir := filepath.Join(m, cg.Path)
		if v2 {
			errs = append(errs, memoryV2(dir, cg.Memory))
		} else {
			errs = append(errs, memoryV1(dir, cg.Memory))
		}
	}
	if m, v2, ok := d.ctl("cpu"); ok {
		dir := filepath.Join(m, cg.Path)
		if v2 {
			errs = append(errs, cpuV2(dir, cg.CPU))
		} else {
			errs = append(errs, cpuV1(dir, cg.CPU))
		}
	}
	if m, v2, ok := d.ctl("cpuset"); ok {
		errs = append(errs, cpuset(filepath.Join(m, cg.Path), cg.CPU, v2))
	}
	if m, _, ok := d.ctl("pids"); ok {
		errs = append(errs, writeFile(filepath.Join(m, cg.Path), "pids.max", maxOr(cg.Pids)))
	}
	return errors.Join(errs...)
}

// maxOr renders a limit for files where "max" means none (pids.max and the
// v2 memory files).
func maxOr(v int64) string {
	if v <= 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// memoryV1 writes memory.limit_in_bytes and, when the kernel accounts swap
// (swapaccount=1), memory.memsw.limit_in_bytes, the limit of memory plus swap.
// The kernel refuses a memsw limit below the memory limit, so when the memory
// limit rises above the current memsw limit memsw is written first, and
// otherwise second. -1 means no limit in both files.
func memoryV1(dir string, m plan.CgroupMemory) error {
	limit, swap := m.Limit, m.Swap
	if limit <= 0 {
		limit = -1
	}
	if swap <= 0 {
		swap = -1
	}
	lim := strconv.FormatInt(limit, 10)
	if !exists(filepath.Join(dir, "memory.memsw.limit_in_bytes")) {
		if m.Swap > 0 {
			return fmt.Errorf("memory.swap: %s has no memory.memsw.limit_in_bytes (the kernel does not account swap: boot with swapaccount=1)", dir)
		}
		return writeFile(dir, "memory.limit_in_bytes", lim)
	}
	cur, err := readInt(dir, "memory.memsw.limit_in_bytes")
	if err != nil {
		return err
	}
	sw := strconv.FormatInt(swap, 10)
	if limit == -1 || limit > cur {
		if err := writeFile(dir, "memory.memsw.limit_in_bytes", sw); err != nil {
			return err
		}
		return writeFile(dir, "memory.limit_in_bytes", lim)
	}
	if err := writeFile(dir, "memory.limit_in_bytes", lim); err != nil {
		return err
	}
	return writeFile(dir, "memory.memsw.limit_in_bytes", sw)
}

// memoryV2 writes memory.max and memory.swap.max. cgroup2 limits swap alone,
// where OCI (and plan.CgroupMemory.Swap) give memory plus swap: swap.max is
// Swap - Limit. The two files are independent, so any order works.
func memoryV2(dir string, m plan.CgroupMemory) error {
	if err := writeFile(dir, "memory.max", maxOr(m.Limit)); err != nil {
		return err
	}
	if !exists(filepath.Join(dir, "memory.swap.max")) {
		if m.Swap > 0 {
			return fmt.Errorf("memory.swap: %s has no memory.swap.max (the kernel does not account swap)", dir)
		}
		return nil
	}
	swap := "max"
	if m.Swap > 0 {
		swap = strconv.FormatInt(m.Swap-m.Limit, 10)
	}
	return writeFile(dir, "memory.swap.max", swap)
}

// cpuV1 writes cpu.cfs_period_us, cpu.cfs_quota_us (-1 = no quota) and
// cpu.shares (from the weight). The kernel checks the quota against the
// period it has: the period goes first, and when the kernel refuses it
// (EINVAL: the old quota does not fit the new period), the quota goes first.
func cpuV1(dir string, c plan.CgroupCPU) error {
	period := c.Period
	if period == 0 {
		period = 100000
	}
	quota := c.Quota
	if quota <= 0 {
		quota = -1
	}
	p, q := strconv.FormatUint(period, 10), strconv.FormatInt(quota, 10)
	if err := writeFile(dir, "cpu.cfs_period_us", p); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		if err := writeFile(dir, "cpu.cfs_quota_us", q); err != nil {
			return err
		}
		if err := writeFile(dir, "cpu.cfs_period_us", p); err != nil {
			return err
		}
	} else if err := writeFile(dir, "cpu.cfs_quota_us", q); err != nil {
		return err
	}
	shares := WeightToShares(c.Weight)
	if shares == 0 {
		shares = 1024
	}
	return writeFile(dir, "cpu.shares", strconv.FormatUint(shares, 10))
}

// cpuV2 writes cpu.max ("QUOTA PERIOD", QUOTA "max" for none) and cpu.weight.
func cpuV2(dir string, c plan.CgroupCPU) error {
	period := c.Period
	if period == 0 {
		period = 100000
	}
	if err := writeFile(dir, "cpu.max", maxOr(c.Quota)+" "+strconv.FormatUint(period, 10)); err != nil {
		return err
	}
	weight := c.Weight
	if weight == 0 {
		weight = 100
	}
	return writeFile(dir, "cpu.weight", strconv.FormatUint(weight, 10))
}

// cpuset writes cpuset.cpus and cpuset.mems. An empty value means "as the
// parent": on v2 writing "" does that; a v1 cpuset cannot be empty and gets
// the parent's value.
func cpuset(dir string, c plan.CgroupCPU, v2 bool) error {
	for _, f := range []struct{ name, val string }{{"cpuset.cpus", c.Cpus}, {"cpuset.mems", c.Mems}} {
		val := f.val
		if val == "" && !v2 {
			p, err := readFile(filepath.Dir(dir), f.name)
			if err != nil {
				return err
			}
			val = p
		}
		if err := writeFile(dir, f.name, val); err != nil {
			return err
		}
	}
	return nil
}

// read fills cg's limits from the controllers' files, in the form Apply
// takes them: 0 for no limit or the default. want only decides how an
// inherited v1 cpuset reads (see readCpuset).
func (d *Driver) read(cg, want *plan.Cgroup) error {
	if m, v2, ok := d.ctl("memory"); ok {
		if err := readMemory(filepath.Join(m, cg.Path), v2, &cg.Memory); err != nil {
			return err
		}
	}
	if m, v2, ok := d.ctl("cpu"); ok {
		if err := readCPU(filepath.Join(m, cg.Path), v2, &cg.CPU); err != nil {
			return err
		}
	}
	if m, v2, ok := d.ctl("cpuset"); ok {
		if err := readCpuset(filepath.Join(m, cg.Path), v2, &cg.CPU, want.CPU); err != nil {
			return err
		}
	}
	if m, _, ok := d.ctl("pids"); ok {
		v, err := readInt(filepath.Join(m, cg.Path), "pids.max")
		if err != nil {
			return err
		}
		cg.Pids = max(v, 0)
	}
	return nil
}

func readMemory(dir string, v2 bool, m *plan.CgroupMemory) error {
	limFile, swFile := "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if v2 {
		limFile, swFile = "memory.max", "memory.swap.max"
	}
	lim, err := readInt(dir, limFile)
	if err != nil {
		return err
	}
	if lim < 0 || lim >= unlimitedV1 {
		lim = 0
	}
	m.Limit = lim
	m.Swap = 0
	if !exists(filepath.Join(dir, swFile)) {
		return nil
	}
	sw, err := readInt(dir, swFile)
	if err != nil {
		return err
	}
	switch {
	case sw < 0 || sw >= unlimitedV1:
		// no swap limit: the kernel default
	case v2:
		m.Swap = lim + sw // memory.swap.max is swap alone
	default:
		m.Swap = sw
	}
	return nil
}

func readCPU(dir string, v2 bool, c *plan.CgroupCPU) error {
	if v2 {
		s, err := readFile(dir, "cpu.max")
		if err != nil {
			return err
		}
		q, p, _ := strings.Cut(s, " ")
		if q != "max" {
			if c.Quota, err = strconv.ParseInt(q, 10, 64); err != nil {
				return fmt.Errorf("read %s: %q: %w", filepath.Join(dir, "cpu.max"), s, err)
			}
		}
		if c.Period, err = strconv.ParseUint(p, 10, 64); err != nil {
			return fmt.Errorf("read %s: %q: %w", filepath.Join(dir, "cpu.max"), s, err)
		}
		w, err := readInt(dir, "cpu.weight")
		if err != nil {
			return err
		}
		c.Weight = uint64(max(w, 0))
		return nil
	}
	q, err := readInt(dir, "cpu.cfs_quota_us")
	if err != nil {
		return err
	}
	c.Quota = max(q, 0)
	p, err := readInt(dir, "cpu.cfs_period_us")
	if err != nil {
		return err
	}
	c.Period = uint64(max(p, 0))
	sh, err := readInt(dir, "cpu.shares")
	if err != nil {
		return err
	}
	c.Weight = SharesToWeight(uint64(max(sh, 0)))
	return nil
}

// readCpuset reads cpuset.cpus and cpuset.mems. A v1 cpuset is never empty:
// when the desired value is "" (as the parent) and the value equals the
// parent's, it reads as "", the form Apply takes it in.
func readCpuset(dir string, v2 bool, c *plan.CgroupCPU, want plan.CgroupCPU) error {
	for _, f := range []struct {
		name string
		dst  *string
		want string
	}{{"cpuset.cpus", &c.Cpus, want.Cpus}, {"cpuset.mems", &c.Mems, want.Mems}} {
		v, err := readFile(dir, f.name)
		if err != nil {
			return err
		}
		if !v2 && f.want == "" {
			p, err := readFile(filepath.Dir(dir), f.name)
			if err != nil {
				return err
			}
			if cpuList(p) == cpuList(v) {
				v = ""
			}
		}
		*f.dst = v
	}
	return nil
}
