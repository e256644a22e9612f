package progress

import (
	"context"
	"testing"
)

func TestReport(t *testing.T) {
	Report(context.Background(), "nobody listens") // no Meter: no panic
	m := &Meter{}
	ctx := With(context.Background(), m)
	if !Enabled(ctx) || Enabled(context.Background()) {
		t.Error("Enabled")
	}
	if m.Last() != "" {
		t.Errorf("Last before any report: %q", m.Last())
	}
	Report(ctx, "%d of %d files", 3, 10)
	Report(ctx, "%d of %d files", 4, 10)
	if m.Last() != "4 of 10 files" {
		t.Errorf("Last %q", m.Last())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 41_200_000: "41.2 MB", 3_000_000_000: "3.0 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
