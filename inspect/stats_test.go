//go:build linux

package inspect

import (
	"testing"
	"time"

	cgroupdrv "hutch/drivers/cgroup"
)

// TestCPUPercent: the CPU time a cgroup used between two readings over the
// time between them; a container without an earlier reading, a counter
// that went back (the cgroup was made again) or no cgroup gets none.
func TestCPUPercent(t *testing.T) {
	now := time.Now()
	prev := []*Stats{
		{Name: "busy", at: now, Stats: cgroupdrv.Stats{CPUUsageNs: 1e9}},
		{Name: "remade", at: now, Stats: cgroupdrv.Stats{CPUUsageNs: 5e9}},
		{Name: "idle", at: now, Stats: cgroupdrv.Stats{CPUUsageNs: 1e9}},
	}
	rows := []*Stats{
		{Name: "busy", at: now.Add(time.Second), Stats: cgroupdrv.Stats{CPUUsageNs: 2.5e9}},
		{Name: "remade", at: now.Add(time.Second), Stats: cgroupdrv.Stats{CPUUsageNs: 1e9}},
		{Name: "idle", at: now.Add(2 * time.Second), Stats: cgroupdrv.Stats{CPUUsageNs: 1.1e9}},
		{Name: "new", at: now.Add(time.Second), Stats: cgroupdrv.Stats{CPUUsageNs: 1e9}},
		{Name: "gone"},
	}
	CPUPercent(rows, prev)
	for i, want := range []float64{150, 0, 5, 0, 0} {
		if got := rows[i].CPUPercent; got != want {
			t.Errorf("%s: cpu %v%%, want %v", rows[i].Name, got, want)
		}
	}
}
