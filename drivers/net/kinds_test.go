//go:build linux

package net

import (
	"context"
	"testing"

	"hutch/plan"
)

// driver is reconcile.Driver's method set, repeated here because drivers do
// not import reconcile.
type driver interface {
	Kind() plan.Kind
	Observe(ctx context.Context, want plan.Resource) (plan.Resource, error)
	Diff(got, want plan.Resource) (fields, forceReplace []string)
	Apply(ctx context.Context, ch *plan.Change) error
	Delete(ctx context.Context, r plan.Resource) error
}

func TestKinds(t *testing.T) {
	d := New("")
	for want, dr := range map[plan.Kind]driver{
		plan.KindNetns: d.Netns(), plan.KindVeth: d.Veth(),
		plan.KindAddress: d.Address(), plan.KindRoute: d.Route(),
	} {
		if dr.Kind() != want {
			t.Errorf("%T.Kind() = %s, want %s", dr, dr.Kind(), want)
		}
		// A resource of another kind is an error, never a panic.
		if _, err := dr.Observe(context.Background(), &plan.Cgroup{Path: "hutch/x"}); err == nil {
			t.Errorf("%T.Observe of a cgroup: no error", dr)
		}
	}
}
