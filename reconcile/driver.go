// Package reconcile observes the host through the drivers, diffs what it finds
// against the desired resources of plan.Build, and converges: create, update
// in place, replace, delete, prune. It keeps the state store (what hutch owns)
// and the per-container locks. It touches the host only through drivers.
package reconcile

import (
	"context"

	"hutch/plan"
)

// Driver is the only code that touches one kind of host resource.
//
// Observe reads the host: it returns the resource as the kernel has it now, of
// the same Go type as want, or nil when it is absent (absence is a value, not an
// error). want may be a value decoded from the state store for a resource that
// is no longer desired.
//
// Diff is pure: it compares an observed value with a desired one and says
// which fields differ, and which of them force a replace because the kernel
// cannot change them in place. An empty fields list means no change.
//
// Apply makes the host match ch.After for a create, update or the create half
// of a replace. Delete removes the resource; it succeeds when the resource is
// already gone, and it never removes an object hutch does not own.
type Driver interface {
	Kind() plan.Kind
	Observe(ctx context.Context, want plan.Resource) (plan.Resource, error)
	Diff(got, want plan.Resource) (fields, forceReplace []string)
	Apply(ctx context.Context, ch *plan.Change) error
	Delete(ctx context.Context, r plan.Resource) error
}

// CarriedDeleter is a Driver whose resources the kernel removes by itself
// with their carrier (plan.Carried), asynchronously: a veth pair goes with
// the network namespace of its peer, once the namespace's cleanup work has
// run. DeleteCarried is Delete of a resource whose carrier was just torn
// down: it waits, within a bound, for the kernel to remove the resource,
// and then removes what is left as Delete does. A driver without it gets
// Delete, which finds the resource gone or removes it.
type CarriedDeleter interface {
	DeleteCarried(ctx context.Context, r plan.Resource) error
}
