//go:build linux

package process

import (
	"context"
	"testing"
	"time"

	"hutch/plan"
)

// BenchmarkStartStop measures one container's life under hutch's runtime:
// Apply (spawn, supervisor, sealed copy of the binary, namespaces, mounts,
// pivot_root, privileges, exec) until the workload runs, then Stop.
func BenchmarkStartStop(b *testing.B) {
	c := newContainer(b, []string{"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"}, containerOpts{})
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := c.d.Apply(ctx, &plan.Change{Action: plan.Create, After: c.proc}); err != nil {
			b.Fatal(err)
		}
		if err := c.d.Stop(ctx, c.bundle, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExec measures `hutch exec` of true into a running container.
func BenchmarkExec(b *testing.B) {
	c := newContainer(b, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	b.ResetTimer()
	for range b.N {
		if code, err := c.d.Exec(context.Background(), c.bundle, []string{"true"}, Stdio{}, false, nil); err != nil || code != 0 {
			b.Fatalf("exec: %d %v", code, err)
		}
	}
}
