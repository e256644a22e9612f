package main

import (
	"strings"
	"testing"

	cgroupdrv "hutch/drivers/cgroup"
	netdrv "hutch/drivers/net"
	"hutch/inspect"
)

func TestStatsTableFits80Columns(t *testing.T) {
	rows := []*inspect.Stats{{
		Name: "a-container-name-longer-than-16", Cgroup: "hutch/x", CPUPercent: 150,
		Stats: cgroupdrv.Stats{MemoryUsage: 1023 << 20, MemoryLimit: 50 << 20, MemoryPeak: 1 << 40, CPUUsageNs: 2.5e9,
			NrThrottled: 123456, ThrottledNs: 98765e9, PidsCurrent: 12345, PidsLimit: 32768, OOMKills: 999},
		Interfaces: []inspect.InterfaceStats{{LinkStats: netdrv.LinkStats{RxBytes: 999_999_999_999, TxBytes: 12_345_678_901}}},
	}, {Name: "gone"}}
	var b strings.Builder
	if err := writeStats(&b, "table", rows); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if n := len([]rune(line)); n > 80 {
			t.Errorf("%d columns:\n%s", n, line)
		}
	}
	for _, want := range []string{"1023M/50M", "1T", "150%", "12345/32768", "123456/27h", "1000GB/12.3GB", "gone"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1K", 52428800: "50M", 9437184 + 1<<19: "9.5M"} {
		if got := bytesIEC(in); got != want {
			t.Errorf("bytesIEC(%d) = %q, want %q", in, got, want)
		}
	}
	if got := bytesSI(1500); got != "1.5kB" {
		t.Errorf("bytesSI(1500) = %q", got)
	}
}
