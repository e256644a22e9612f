//go:build linux

package tutorial

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// statsRow is the part of `hutch stats -o json` the tests read.
type statsRow struct {
	Name        string `json:"name"`
	MemoryUsage uint64 `json:"memoryUsage"`
	MemoryLimit uint64 `json:"memoryLimit"`
	MemoryPeak  uint64 `json:"memoryPeak"`
	CPUUsageNs  uint64 `json:"cpuUsageNs"`
	NrPeriods   uint64 `json:"nrPeriods"`
	NrThrottled uint64 `json:"nrThrottled"`
	ThrottledNs uint64 `json:"throttledNs"`
	PidsCurrent uint64 `json:"pidsCurrent"`
	OOMKills    uint64 `json:"oomKills"`
	Interfaces  []struct {
		Netns     string `json:"netns"`
		Name      string `json:"name"`
		RxBytes   uint64 `json:"rxBytes"`
		TxBytes   uint64 `json:"txBytes"`
		RxPackets uint64 `json:"rxPackets"`
	} `json:"interfaces"`
}

func (l *lab) stats() statsRow {
	l.T.Helper()
	var rows []statsRow
	out := l.Must("stats", "-o", "json", l.Name)
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		l.T.Fatalf("stats -o json: %v\n%s", err, out)
	}
	return rows[0]
}

// between checks that got lies between two direct readings of a counter,
// taken before and after hutch's.
func between(t *testing.T, what string, lo, got, hi uint64) {
	t.Helper()
	if lo > hi {
		lo, hi = hi, lo
	}
	if got < lo || got > hi {
		t.Errorf("%s: hutch stats says %d, the kernel said %d before and %d after", what, got, lo, hi)
	}
}

func (l *lab) linkCounter(file string) uint64 {
	l.T.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.Netns, "cat", "/sys/class/net/"+l.PeerIf+"/statistics/"+file).Output()
	if err != nil {
		l.T.Fatal(err)
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	return n
}

func TestStatsMatchTheCgroupFiles(t *testing.T) {
	l := newLab(t)
	l.Must("apply", "-f", l.Manifest)
	l.Serving()

	cpu0, rx0, peak0 := l.cgroupInt("cpuacct", "cpuacct.usage"), l.linkCounter("rx_bytes"), l.cgroupInt("memory", "memory.max_usage_in_bytes")
	s := l.stats()
	cpu1, rx1, peak1 := l.cgroupInt("cpuacct", "cpuacct.usage"), l.linkCounter("rx_bytes"), l.cgroupInt("memory", "memory.max_usage_in_bytes")

	if want := l.cgroupInt("memory", "memory.limit_in_bytes"); s.MemoryLimit != want || want != 50<<20 {
		t.Errorf("memory limit: hutch stats %d, memory.limit_in_bytes %d, manifest 50M = %d", s.MemoryLimit, want, 50<<20)
	}
	between(t, "cpuacct.usage", cpu0, s.CPUUsageNs, cpu1)
	between(t, "rx_bytes of "+l.PeerIf, rx0, s.Interfaces[0].RxBytes, rx1)
	between(t, "memory.max_usage_in_bytes", peak0, s.MemoryPeak, peak1)
	if want := l.cgroupInt("pids", "pids.current"); s.PidsCurrent != want {
		t.Errorf("pids: hutch stats %d, pids.current %d", s.PidsCurrent, want)
	}
	if want := l.keyed("cpu", "cpu.stat", "nr_periods"); s.NrPeriods > want {
		t.Errorf("nr_periods: hutch stats %d, cpu.stat later %d", s.NrPeriods, want)
	}
	if want := l.keyed("memory", "memory.oom_control", "oom_kill"); s.OOMKills != want {
		t.Errorf("oom kills: hutch stats %d, memory.oom_control %d", s.OOMKills, want)
	}
	// Usage moves both ways; it must be near the file's, far from any other number.
	use := l.cgroupInt("memory", "memory.usage_in_bytes")
	if d := int64(s.MemoryUsage) - int64(use); d > 4<<20 || d < -4<<20 {
		t.Errorf("memory usage: hutch stats %d, memory.usage_in_bytes %d", s.MemoryUsage, use)
	}
	if len(s.Interfaces) != 1 || s.Interfaces[0].Name != l.PeerIf || s.Interfaces[0].Netns != l.Netns {
		t.Errorf("interfaces: %+v, want %s in %s", s.Interfaces, l.PeerIf, l.Netns)
	}
	table := l.Must("stats", l.Name)
	for _, line := range strings.Split(table, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("stats table line wider than 80 columns:\n%s", line)
		}
	}
	if !strings.Contains(table, "/50M") {
		t.Errorf("stats table does not show the 50M limit:\n%s", table)
	}
}

// manifestLine is the line and column of the value of "key: value" in the
// lab's manifest, as inspect should cite it.
func (l *lab) manifestLine(key string) string {
	l.T.Helper()
	b, _ := os.ReadFile(l.Manifest)
	for i, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, key+":") {
			col := strings.Index(line, key+":") + len(key) + 3
			return fmt.Sprintf("%s:%d:%d", l.Manifest, i+1, col)
		}
	}
	l.T.Fatalf("no %s: in %s", key, l.Manifest)
	return ""
}

// The seed's memory exercise, with its missing * put back: the OOM killer
// ends it, the cgroup counts it, stats reports it and inspect names the
// manifest line of the limit.
func TestStatsCountTheMemoryExercisesOOMKill(t *testing.T) {
	l := newLab(t)
	l.Must("apply", "-f", l.Manifest)
	l.Serving()
	before := l.stats().OOMKills
	code, out := l.Hutch("exec", l.Name, "--", "python3", "-c", "x = []\nwhile True:\n    x.append(\" \" * 1000000)")
	if code != 137 {
		t.Fatalf("memory exercise: exit %d, want 137 (SIGKILL by the OOM killer)\n%s", code, out)
	}
	after := l.stats().OOMKills
	if after <= before {
		t.Errorf("OOM kills: %d before the exercise, %d after", before, after)
	}
	if file := l.keyed("memory", "memory.oom_control", "oom_kill"); file != after {
		t.Errorf("OOM kills: hutch stats %d, memory.oom_control %d", after, file)
	}
	want := "memory: 50M at " + l.manifestLine("memory")
	if in := l.Must("inspect", l.Name); !strings.Contains(in, want) {
		t.Errorf("inspect does not say %q:\n%s", want, in)
	}
}

// A busy loop in two processes wants two CPUs; the quota gives one, so the
// kernel throttles the cgroup.
func TestStatsShowThrottlingUnderABusyLoop(t *testing.T) {
	l := newLab(t)
	l.Must("apply", "-f", l.Manifest)
	l.Serving()
	if n := l.stats().NrThrottled; n != 0 {
		t.Logf("already %d throttled periods before the loop", n)
	}
	l.Must("exec", l.Name, "--", "python3", "-c",
		"import os, time\nos.fork()\nend = time.time() + 1.5\nwhile time.time() < end: pass")
	s := l.stats()
	if s.NrThrottled == 0 || s.ThrottledNs == 0 {
		t.Errorf("after a busy loop on two CPUs with a one-CPU quota: %d periods throttled (%d ns)", s.NrThrottled, s.ThrottledNs)
	}
	if file := l.keyed("cpu", "cpu.stat", "nr_throttled"); s.NrThrottled > file || s.NrThrottled == 0 {
		t.Errorf("nr_throttled: hutch stats %d, cpu.stat %d", s.NrThrottled, file)
	}
	want := "cpuQuota: 100000 at " + l.manifestLine("cpuQuota")
	if in := l.Must("inspect", l.Name); !strings.Contains(in, want) {
		t.Errorf("inspect does not say %q:\n%s", want, in)
	}
}
