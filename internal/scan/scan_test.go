package scan

import (
	"context"
	"testing"
)

func TestMemo(t *testing.T) {
	n := 0
	f := func() (int, error) { n++; return n, nil }
	if a, _ := Memo(context.Background(), "x", f); a != 1 {
		t.Fatal(a)
	}
	if b, _ := Memo(context.Background(), "x", f); b != 2 {
		t.Errorf("without a cache: %d, want a new scan", b)
	}
	ctx := With(context.Background())
	a, _ := Memo(ctx, "x", f)
	b, _ := Memo(ctx, "x", f)
	c, _ := Memo(ctx, "y", f)
	if a != 3 || b != 3 || c != 4 {
		t.Errorf("with a cache: %d %d %d, want 3 3 4", a, b, c)
	}
}
