// Package progress lets a driver say how far a long step has got (files
// and bytes of a rootfs copied) without knowing who listens: the reconciler
// puts a Meter in the step's context and prints its latest word while the
// step runs. Without a Meter, Report does nothing.
package progress

import (
	"context"
	"fmt"
	"sync"
)

type key struct{}

// Meter holds the latest report of one step.
type Meter struct {
	mu   sync.Mutex
	last string
}

// With returns a context whose reports go to m.
func With(ctx context.Context, m *Meter) context.Context {
	return context.WithValue(ctx, key{}, m)
}

// Report records how far the step of ctx has got, as a short phrase such
// as "1200 of 3400 files, 41 MB of 130 MB".
func Report(ctx context.Context, format string, args ...any) {
	m, _ := ctx.Value(key{}).(*Meter)
	if m == nil {
		return
	}
	s := fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.last = s
	m.mu.Unlock()
}

// Enabled says whether anyone listens to the reports of ctx, so a driver
// can skip the counting otherwise.
func Enabled(ctx context.Context) bool {
	m, _ := ctx.Value(key{}).(*Meter)
	return m != nil
}

// Last is the latest report, "" before the first.
func (m *Meter) Last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Bytes is n bytes for people: 512 B, 41.2 MB (powers of 1000, as du -h
// --si and progress bars of copy tools print them).
func Bytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
