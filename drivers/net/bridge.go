//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// BridgeDriver manages Linux bridges (plan.KindBridge) in the host's network
// namespace, the switches of hutch networks (`ip link add NAME type bridge`).
type BridgeDriver struct{ d *Driver }

// Bridge is the reconcile driver of plan.KindBridge.
func (d *Driver) Bridge() *BridgeDriver { return &BridgeDriver{d} }

// Kind is plan.KindBridge.
func (b *BridgeDriver) Kind() plan.Kind { return plan.KindBridge }

// netMarkPrefix starts the mark of a network's objects: the alias
// "hutch:net:<network>". Its owner part, "net:<network>", can never be a
// container's name (a DNS label has no colon), so a finder of containers'
// objects never takes a network's for one of them.
const netMarkPrefix = markPrefix + "net:"

// netMark is the alias of the objects hutch makes for network.
func netMark(network string) string { return netMarkPrefix + network }

// bridgeGroup is the device group (IFLA_GROUP, `ip link set DEV group N`)
// of every bridge hutch makes. The kernel takes no alias in the
// RTM_NEWLINK that creates a link, only in a later RTM_SETLINK, but it
// does take a group: a bridge stopped between the two (a kill -9) carries
// the group and is known to be hutch's. The value spells "hutc".
const bridgeGroup = 0x68757463

// groupOnly says whether l carries hutch's group and no mark yet: made by
// hutch (a bridge, or a link's first end) and stopped before its alias.
func groupOnly(l netlink.Link) bool {
	return l != nil && l.Attrs().Alias == "" && l.Attrs().Group == bridgeGroup
}

func asBridge(r plan.Resource) (*plan.Bridge, error) {
	b, ok := r.(*plan.Bridge)
	if !ok || b == nil {
		return nil, fmt.Errorf("bridge driver: resource %T is not a *plan.Bridge", r)
	}
	return b, nil
}

// ownedBridge returns the bridge called name when hutch made it for
// network, nil when there is no link of that name, and an error naming the
// owner when the link is someone else's: not a bridge, without hutch's
// mark or group, or marked for another network (a conflict apply reports
// and delete leaves alone).
func ownedBridge(h *handle, name, network string) (*netlink.Bridge, error) {
	l, err := h.link(name)
	if err != nil || l == nil {
		return nil, err
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("link %s: %w (it is a %s, not a bridge)", name, ErrNotOwned, l.Type())
	}
	switch a := br.Attrs().Alias; {
	case a == netMark(network):
		return br, nil
	case groupOnly(br):
		return br, nil
	case strings.HasPrefix(a, netMarkPrefix):
		return nil, fmt.Errorf("bridge %s: %w: it belongs to network %s", name, ErrNotOwned, strings.TrimPrefix(a, netMarkPrefix))
	default:
		return nil, fmt.Errorf("bridge %s: %w (its alias is %q, hutch marks its bridges %q)", name, ErrNotOwned, a, netMark(network))
	}
}

// Observe reads the bridge back (RTM_GETLINK): nil when there is none.
func (b *BridgeDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asBridge(want)
	if err != nil {
		return nil, err
	}
	h, err := b.d.handle(plan.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", w.Name, err)
	}
	defer h.Close()
	br, err := ownedBridge(h, w.Name, w.Network)
	if err != nil || br == nil {
		return nil, err
	}
	a := br.Attrs()
	got := &plan.Bridge{Network: w.Network, Name: a.Name, Down: a.Flags&unix.IFF_UP == 0}
	if w.MTU != 0 {
		got.MTU = a.MTU
	}
	if a.Alias != netMark(w.Network) {
		// Made but not yet marked: Apply finishes it.
		got.Down = true
	}
	return got, nil
}

// Diff: the kernel changes a bridge's MTU and up/down state in place; its
// name is its ID.
func (b *BridgeDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, err1 := asBridge(got)
	w, err2 := asBridge(want)
	if err1 != nil || err2 != nil {
		return []string{"type"}, []string{"type"}
	}
	if w.MTU != 0 && g.MTU != w.MTU {
		fields = append(fields, "mtu")
	}
	if g.Down {
		fields = append(fields, "up")
	}
	return fields, nil
}

// open finds the bridge a change or delete is about, on a host handle the
// caller closes: nil when there is none, an error when it is not hutch's
// for this network.
func (b *BridgeDriver) open(ctx context.Context, r plan.Resource) (*plan.Bridge, *handle, *netlink.Bridge, error) {
	w, err := asBridge(r)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	h, err := b.d.handle(plan.HostNetns)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bridge %s: %w", w.Name, err)
	}
	br, err := ownedBridge(h, w.Name, w.Network)
	if err != nil {
		h.Close()
		return nil, nil, nil, err
	}
	return w, h, br, nil
}

// Apply creates the bridge when it is missing (RTM_NEWLINK with
// IFLA_INFO_KIND "bridge", its MTU and hutch's group), marks it with its
// network's alias, sets its MTU and brings it up. Every part is idempotent:
// a bridge left half made by a killed apply is finished.
func (b *BridgeDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, h, br, err := b.open(ctx, ch.After)
	if err != nil {
		return err
	}
	defer h.Close()
	if br == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = w.Name
		attrs.MTU = w.MTU
		attrs.Group = bridgeGroup
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("bridge %s: create: %w", w.Name, err)
		}
		if br, err = ownedBridge(h, w.Name, w.Network); err != nil {
			return err
		}
		if br == nil {
			return fmt.Errorf("bridge %s: created, then not found", w.Name)
		}
	}
	a := br.Attrs()
	if a.Alias != netMark(w.Network) {
		if err := h.LinkSetAlias(br, netMark(w.Network)); err != nil {
			return fmt.Errorf("bridge %s: set alias %s: %w", w.Name, netMark(w.Network), err)
		}
	}
	if w.MTU != 0 && a.MTU != w.MTU {
		if err := h.LinkSetMTU(br, w.MTU); err != nil {
			return fmt.Errorf("bridge %s: set mtu %d: %w", w.Name, w.MTU, err)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge %s: set up: %w", w.Name, err)
	}
	return nil
}

// Delete removes the bridge (RTM_DELLINK); the kernel detaches its ports
// first, which stay (a container's veth is the veth driver's to remove).
// It succeeds when the bridge is gone and refuses one hutch did not make
// for this network.
func (b *BridgeDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, h, br, err := b.open(ctx, r)
	if err != nil {
		return err
	}
	defer h.Close()
	if br == nil {
		return nil
	}
	if err := h.LinkDel(br); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("bridge %s: delete: %w", w.Name, err)
	}
	return nil
}

// BridgePorts returns the names of the links attached to the bridge called
// name (IFLA_MASTER equal to its index), sorted; nil when there is no such
// bridge. inspect and the tests read a network's ports with it.
func (d *Driver) BridgePorts(name string) ([]string, error) {
	h, err := d.handle(plan.HostNetns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	br, err := h.link(name)
	if err != nil || br == nil {
		return nil, err
	}
	links, err := retryDump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: list links: %w", name, err)
	}
	var ports []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			ports = append(ports, l.Attrs().Name)
		}
	}
	slices.Sort(ports)
	return ports, nil
}
