//go:build linux

package cgroup

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hutch/plan"
)

// benchCgroup is the seed's container's cgroup (memory 50M, quota 100000 of
// 100000 µs) with a pids limit and a weight.
func benchCgroup(d *Driver, name string) *plan.Cgroup {
	return &plan.Cgroup{
		Container: name, Path: d.parent + "/" + name,
		Memory: plan.CgroupMemory{Limit: 50 << 20},
		CPU:    plan.CgroupCPU{Quota: 100000, Period: 100000, Weight: 100},
		Pids:   100,
	}
}

// BenchmarkCreateDelete is one cgroup with limits made (every hierarchy,
// every limit file written) and removed again, on the host's cgroupfs.
func BenchmarkCreateDelete(b *testing.B) {
	d := realDriver(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		cg := benchCgroup(d, fmt.Sprintf("b%d", i))
		if err := d.Apply(ctx, &plan.Change{Action: plan.Create, After: cg}); err != nil {
			b.Fatal(err)
		}
		if err := d.Delete(ctx, cg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateDeleteShell does the same through a shell (mkdir, echo >
// file, rmdir), the way a script would, for comparison.
func BenchmarkCreateDeleteShell(b *testing.B) {
	d := realDriver(b)
	if d.version == V2 {
		b.Skip("the shell script below writes v1 files")
	}
	for i := 0; b.Loop(); i++ {
		path := fmt.Sprintf("%s/s%d", d.parent, i)
		dirs := d.Dirs(path)
		var s strings.Builder
		for _, m := range d.mounts() {
			fmt.Fprintf(&s, "mkdir -p %s\n", filepath.Join(m, path))
		}
		fmt.Fprintf(&s, "cat %[1]s/../cpuset.cpus > %[1]s/cpuset.cpus; cat %[1]s/../cpuset.mems > %[1]s/cpuset.mems\n", dirs["cpuset"])
		fmt.Fprintf(&s, "echo 52428800 > %s/memory.limit_in_bytes\n", dirs["memory"])
		fmt.Fprintf(&s, "echo 100000 > %[1]s/cpu.cfs_period_us; echo 100000 > %[1]s/cpu.cfs_quota_us; echo 1024 > %[1]s/cpu.shares\n", dirs["cpu"])
		fmt.Fprintf(&s, "echo 100 > %s/pids.max\n", dirs["pids"])
		for _, m := range d.mounts() {
			fmt.Fprintf(&s, "rmdir %s\n", filepath.Join(m, path))
		}
		if out, err := exec.Command("/bin/sh", "-ec", s.String()).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
