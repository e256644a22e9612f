package reconcile

import (
	"context"
	"fmt"
	"io"
	"testing"

	"hutch/plan"
)

// BenchmarkNoOpApply measures what an apply of an unchanged manifest costs
// in the reconciler itself (locks, store reads, observe and diff through a
// fake driver backed by files, plan and render), for 1 and 20 containers.
func BenchmarkNoOpApply(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			root := b.TempDir()
			h := &fakeHost{dir: b.TempDir(), fail: map[string]error{}, force: map[plan.Kind][]string{}}
			opts := plan.DefaultOptions()
			opts.StateRoot = root
			r := &Reconciler{Drivers: h.drivers(), Store: NewStore(opts), Out: io.Discard}
			var cs []*Container
			for i := range n {
				cs = append(cs, web(fmt.Sprintf("c%d", i)).container(root))
			}
			if err := r.Apply(context.Background(), cs, ApplyOptions{}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := r.Apply(context.Background(), cs, ApplyOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
