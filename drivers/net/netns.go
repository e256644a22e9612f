//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"hutch/plan"
)

// NetnsDriver manages named network namespaces (plan.KindNetns): a
// namespace bind-mounted at NetnsDir/NAME, as `ip netns add NAME` makes it,
// with its loopback device up and marked "hutch:<container>".
type NetnsDriver struct{ d *Driver }

// Kind is plan.KindNetns.
func (n *NetnsDriver) Kind() plan.Kind { return plan.KindNetns }

func asNetns(r plan.Resource) (*plan.Netns, error) {
	ns, ok := r.(*plan.Netns)
	if !ok || ns == nil {
		return nil, fmt.Errorf("netns driver: resource %T is not a *plan.Netns", r)
	}
	if ns.Name == "" || ns.Name == "." || ns.Name == ".." || strings.ContainsRune(ns.Name, '/') {
		return nil, fmt.Errorf("netns %q: not a valid name", ns.Name)
	}
	return ns, nil
}

// Observe opens the namespace's bind mount and reads the mark off its
// loopback device. It returns nil when nothing is mounted there (a plain
// file left by an interrupted create counts as nothing: Apply replaces it),
// an ErrNotOwned error for a namespace hutch did not make (`ip netns add`),
// and an ErrOtherContainer error for one marked for another container,
// which apply must not take over.
func (n *NetnsDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	ns, err := asNetns(want)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	container, err := n.owner(ns.Name)
	if errors.Is(err, errNoNetns) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if container != ns.Container {
		return nil, otherContainer("netns "+ns.Name, container, ns.Container)
	}
	return &plan.Netns{Container: container, Name: ns.Name}, nil
}

// owner returns the container named by the mark of the namespace's loopback
// device, an error wrapping errNoNetns when the namespace is not mounted,
// or an ErrNotOwned error when it is not hutch's.
func (n *NetnsDriver) owner(name string) (string, error) {
	h, err := n.d.handle(name)
	if err != nil {
		return "", err
	}
	defer h.Close()
	lo, err := h.link("lo")
	if err != nil {
		return "", fmt.Errorf("netns %s: read lo: %w", name, err)
	}
	if lo == nil {
		return "", fmt.Errorf("netns %s: %w (it has no loopback device)", name, ErrNotOwned)
	}
	c, ok := owner(lo)
	if !ok {
		return "", fmt.Errorf("netns %s: %w (its lo has alias %q, hutch marks lo %q)",
			name, ErrNotOwned, lo.Attrs().Alias, markPrefix+"<container>")
	}
	return c, nil
}

// Diff: a namespace cannot be renamed (its name is a mount point, and
// processes joined it by that path), so another name is another namespace.
// The owning container is only the mark, rewritten in place.
func (n *NetnsDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, gerr := asNetns(got)
	w, werr := asNetns(want)
	if werr != nil {
		return []string{"name"}, []string{"name"}
	}
	if gerr != nil {
		return plan.FieldDiff(nil, w), nil
	}
	if g.Name != w.Name {
		return []string{"name"}, []string{"name"}
	}
	if g.Container != w.Container {
		fields = append(fields, "container")
	}
	return fields, nil
}

// Apply creates the namespace when it is missing (making NetnsDir a shared
// mount point first, as iproute2 does), marking its loopback device and
// setting it up before the bind mount gives the namespace its name. For an
// existing namespace of hutch's it rewrites the mark and sets lo up.
func (n *NetnsDriver) Apply(ctx context.Context, ch *plan.Change) error {
	ns, err := asNetns(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := prepareNetnsDir(n.d.netnsDir); err != nil {
		return fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	path := n.d.netnsPath(ns.Name)
	owner, err := n.owner(ns.Name)
	switch {
	case err == nil && owner != ns.Container:
		return otherContainer("netns "+ns.Name, owner, ns.Container)
	case err == nil:
		h, err := n.d.handle(ns.Name)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := setupLoopback(h.Handle, ns.Container); err != nil {
			return fmt.Errorf("netns %s: %w", ns.Name, err)
		}
		return nil
	case !errors.Is(err, errNoNetns):
		return err
	}
	if exists(path) {
		// An empty file left by a create that stopped before its mount.
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("netns %s: remove leftover %s: %w", ns.Name, path, err)
		}
	}
	err = createNetns(path, func(h *netlink.Handle) error {
		return setupLoopback(h, ns.Container)
	})
	if err != nil {
		return fmt.Errorf("netns %s: create: %w", ns.Name, err)
	}
	return nil
}

// setupLoopback marks the namespace's lo with the owner's alias and sets it
// up (RTM_NEWLINK with IFLA_IFALIAS, then IFF_UP): `ip link set lo alias
// hutch:C` and `ip link set lo up`. A new namespace's lo is down, so even
// 127.0.0.1 is unreachable inside until this.
func setupLoopback(h *netlink.Handle, container string) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if lo.Attrs().Alias != mark(container) {
		if err := h.LinkSetAlias(lo, mark(container)); err != nil {
			return fmt.Errorf("lo: set alias %s: %w", mark(container), err)
		}
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo: set up: %w", err)
	}
	return nil
}

// Delete unmounts the namespace (MNT_DETACH) and removes its file. The
// kernel frees the namespace, and with it every interface inside (a veth
// end inside takes its peer with it), once no process and no open file
// holds it. Delete succeeds when the namespace or its mount is already
// gone, and refuses a namespace hutch did not make and one marked for
// another container than the resource's.
func (n *NetnsDriver) Delete(ctx context.Context, r plan.Resource) error {
	ns, err := asNetns(r)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	owner, err := n.owner(ns.Name)
	if err != nil && !errors.Is(err, errNoNetns) {
		return err
	}
	if err == nil && owner != ns.Container {
		return fmt.Errorf("delete: %w", otherContainer("netns "+ns.Name, owner, ns.Container))
	}
	if err := removeNetns(n.d.netnsPath(ns.Name)); err != nil {
		return fmt.Errorf("netns %s: delete: %w", ns.Name, err)
	}
	return nil
}
