package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"hutch/plan"
)

// A delete removes what the state store records. When the store lost its
// record (its folder was removed, a disk wiped, an apply killed before its
// first write), the host objects stay, and only the marks hutch puts on
// them still say whose they are. Drivers that can find their objects by
// those marks implement Finder; Delete merges what they find with the
// store's records, so that no marked object is left that delete cannot
// find. Ownership is always proven by the mark (an interface alias, a
// namespace's lo alias, the cgroup parent, a mount under the state root, a
// supervisor's environment naming its bundle), never guessed from a name.

// Finder is implemented by a driver that can find, read-only, the host
// objects of its kind that carry hutch's mark.
type Finder interface {
	// Owned returns the objects marked for container, as values the
	// driver's Delete accepts.
	Owned(ctx context.Context, container string) ([]plan.Resource, error)
	// Marked lists the containers that objects of the driver's kind are
	// marked for.
	Marked(ctx context.Context) ([]string, error)
}

// Claimer is implemented by a driver whose objects also say which state
// root they belong to (a supervisor's bundle, an overlay's mount point).
// Elsewhere names the other state roots that have a live container of the
// given name: its namespaces, interfaces and cgroup, marked by container
// name only, are then that root's, and a delete in this root leaves them.
type Claimer interface {
	Elsewhere(container string) ([]string, error)
}

// finders returns the drivers that implement Finder, in kind order.
func (r *Reconciler) finders() []Finder {
	kinds := make([]plan.Kind, 0, len(r.Drivers))
	for k := range r.Drivers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var fs []Finder
	for _, k := range kinds {
		if f, ok := r.Drivers[k].(Finder); ok {
			fs = append(fs, f)
		}
	}
	return fs
}

// elsewhere lists the other state roots the Claimer drivers say have a
// live container called name.
func (r *Reconciler) elsewhere(name string) ([]string, error) {
	var roots []string
	for _, d := range r.Drivers {
		c, ok := d.(Claimer)
		if !ok {
			continue
		}
		rs, err := c.Elsewhere(name)
		if err != nil {
			return nil, err
		}
		for _, root := range rs {
			if !slices.Contains(roots, root) {
				roots = append(roots, root)
			}
		}
	}
	sort.Strings(roots)
	return roots, nil
}

// Owned returns what the Finder drivers find on the host marked for
// container, sorted by ID.
func (r *Reconciler) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	var out []plan.Resource
	var errs []error
	for _, f := range r.finders() {
		rs, err := f.Owned(ctx, container)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("container %s: find marked objects: %w", container, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}

// orphansKey marks the context of a Delete started by DeleteOrphans.
type orphansKey struct{}

// loadForDelete is the state Delete works from: the store's records of the
// container merged with the objects the Finder drivers find marked for it
// that the store does not record. It wraps ErrNotFound when there is
// neither. The store's record of an ID wins over what is found: it says
// more (the names a half-made object will have).
//
// When the store has no record at all and another state root has a live
// container of that name, what is marked for the name is that root's: it
// is left alone, and the error says where to delete it. Called from
// DeleteOrphans, a container that has records is no orphan (an apply made
// it meanwhile): it wraps ErrNotFound too.
func (r *Reconciler) loadForDelete(ctx context.Context, name string) (*State, error) {
	st, ids, err := r.merged(ctx, name)
	if len(ids) > 0 {
		fmt.Fprintf(r.Out, "container %s: found on the host without a record in the state store: %s\n", name, strings.Join(ids, ", "))
	}
	return st, err
}

// known says, before the lock, whether there is anything to delete (an
// error wrapping ErrNotFound if not). A container the store has a folder
// for is known without asking the drivers: loadForDelete asks them, once,
// under the lock.
func (r *Reconciler) known(ctx context.Context, name string) error {
	if _, err := r.Store.Load(name); !errors.Is(err, ErrNotFound) {
		return nil
	}
	_, _, err := r.merged(ctx, name)
	return err
}

// merged is loadForDelete, and the IDs of the objects found without a
// record.
func (r *Reconciler) merged(ctx context.Context, name string) (*State, []string, error) {
	if err := CheckName(name); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	st, err := r.Store.Load(name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, nil, err
	}
	if st != nil && len(st.Resources) > 0 && ctx.Value(orphansKey{}) != nil {
		return nil, nil, fmt.Errorf("container %s: %w (applied again meanwhile: not an orphan)", name, ErrNotFound)
	}
	found, ferr := r.Owned(ctx, name)
	if ferr != nil {
		return nil, nil, ferr
	}
	if st == nil || len(st.Resources) == 0 {
		roots, err := r.elsewhere(name)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s: %w", name, err)
		}
		if len(roots) > 0 {
			return nil, nil, fmt.Errorf("container %s: %w in this state root; the objects marked for it are those of the container %s in state root %s (delete it with --root %s)",
				name, ErrNotFound, name, strings.Join(roots, ", "), roots[0])
		}
	}
	if st == nil && len(found) == 0 {
		return nil, nil, fmt.Errorf("container %s: %w", name, ErrNotFound)
	}
	if st == nil {
		st = &State{Version: StateVersion, Container: name}
	}
	var ids []string
	for _, res := range found {
		if st.record(res.ID()) != nil {
			continue
		}
		if err := st.set(res, StatusDone); err != nil {
			return nil, nil, err
		}
		ids = append(ids, res.ID())
	}
	// A process found without a record is stopped first: it needs every
	// other object of the container (its rootfs, cgroup, network).
	for _, id := range ids {
		rec := st.record(id)
		if rec.Kind != plan.KindProcess {
			continue
		}
		res, err := rec.Resource()
		if err != nil {
			return nil, nil, err
		}
		p := res.(*plan.Process)
		for _, other := range st.Resources {
			if other.Kind != plan.KindProcess && !slices.Contains(p.Needs, other.ID) {
				p.Needs = append(p.Needs, other.ID)
			}
		}
		if err := st.set(p, StatusDone); err != nil {
			return nil, nil, err
		}
	}
	return st, ids, nil
}

// Orphans lists the containers that objects on the host are marked for
// (by the Finder drivers) but that have no record in the state store,
// sorted. A container with a live namesake in another state root (see
// Claimer) is left out.
func (r *Reconciler) Orphans(ctx context.Context) ([]string, error) {
	var names []string
	for _, f := range r.finders() {
		ns, err := f.Marked(ctx)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			// A mark is only text: one that is no container name (a
			// path) must never reach the store's paths.
			if CheckName(n) != nil {
				continue
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		st, err := r.Store.Load(n)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if st != nil && len(st.Resources) > 0 {
			continue
		}
		roots, err := r.elsewhere(n)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", n, err)
		}
		if len(roots) > 0 {
			fmt.Fprintf(r.Out, "container %s: not an orphan: it runs in state root %s\n", n, strings.Join(roots, ", "))
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// DeleteOrphans deletes, as Delete does, every container that Orphans
// lists, checking again under each container's lock that the store still
// has no record of it.
func (r *Reconciler) DeleteOrphans(ctx context.Context) error {
	names, err := r.Orphans(ctx)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		fmt.Fprintln(r.Out, "no orphans: every object marked by hutch belongs to a container of the state store")
		return nil
	}
	return r.Delete(context.WithValue(ctx, orphansKey{}, true), names, true)
}
