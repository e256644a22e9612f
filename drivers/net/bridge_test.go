//go:build linux

package net

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// mustNoLink fails when the host has a link called name.
func mustNoLink(t *testing.T, name string) {
	t.Helper()
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("link %s still exists", name)
	}
}

// kernelBridge reads the bridge called name straight from the kernel.
func kernelBridge(t *testing.T, name string) *netlink.Bridge {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		t.Fatalf("link %s is a %s", name, l.Type())
	}
	return br
}

func TestBridgeLifecycle(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	b := &plan.Bridge{Network: "labnet", Name: testutil.Name("hbr"), MTU: 1400}
	t.Cleanup(func() { delLink(t, "", b.Name) })

	if got, err := d.Bridge().Observe(ctx, b); err != nil || got != nil {
		t.Fatalf("before create: %v, %v", got, err)
	}
	if err := d.Bridge().Apply(ctx, create(b)); err != nil {
		t.Fatal(err)
	}
	br := kernelBridge(t, b.Name)
	if a := br.Attrs(); a.Alias != "hutch:net:labnet" || a.MTU != 1400 || a.Flags&unix.IFF_UP == 0 || a.Group != bridgeGroup {
		t.Errorf("kernel has alias %q mtu %d flags %v group %#x", a.Alias, a.MTU, a.Flags, a.Group)
	}
	got, err := d.Bridge().Observe(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := d.Bridge().Diff(got, b); len(f) != 0 {
		t.Errorf("after create: diff %v (%+v)", f, got)
	}
	// A second apply changes nothing and fails nothing.
	if err := d.Bridge().Apply(ctx, create(b)); err != nil {
		t.Fatal(err)
	}

	// Drift by hand: down and another MTU, shown and repaired in place.
	mustRun(t, "ip", "link", "set", b.Name, "down", "mtu", "1300")
	got, _ = d.Bridge().Observe(ctx, b)
	f, replace := d.Bridge().Diff(got, b)
	if strings.Join(f, ",") != "mtu,up" || len(replace) != 0 {
		t.Errorf("drift: fields %v replace %v", f, replace)
	}
	if err := d.Bridge().Apply(ctx, &plan.Change{ID: b.ID(), Kind: b.Kind(), Action: plan.Update, Before: got, After: b}); err != nil {
		t.Fatal(err)
	}
	if a := kernelBridge(t, b.Name).Attrs(); a.MTU != 1400 || a.Flags&unix.IFF_UP == 0 {
		t.Errorf("after repair: mtu %d flags %v", a.MTU, a.Flags)
	}

	// A port attached by hand is listed, and stays when the bridge goes.
	port := testutil.Name("hbp")
	peer := testutil.Name("hbq")
	mustRun(t, "ip", "link", "add", port, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { delLink(t, "", port) })
	mustRun(t, "ip", "link", "set", port, "master", b.Name)
	if ports, err := d.BridgePorts(b.Name); err != nil || len(ports) != 1 || ports[0] != port {
		t.Errorf("ports %v, %v", ports, err)
	}

	if err := d.Bridge().Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	mustNoLink(t, b.Name)
	if l, err := netlink.LinkByName(port); err != nil || l.Attrs().MasterIndex != 0 {
		t.Errorf("the port after delete: %v, %v", l, err)
	}
	if err := d.Bridge().Delete(ctx, b); err != nil {
		t.Errorf("delete of a deleted bridge: %v", err)
	}
}

// A bridge made but not yet marked (apply killed between RTM_NEWLINK and the
// alias) carries hutch's group: observed as needing repair, then finished.
func TestBridgeHalfMadeAdopted(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	b := &plan.Bridge{Network: "labnet", Name: testutil.Name("hbr")}
	t.Cleanup(func() { delLink(t, "", b.Name) })
	mustRun(t, "ip", "link", "add", b.Name, "group", strconv.Itoa(bridgeGroup), "type", "bridge")
	got, err := d.Bridge().Observe(ctx, b)
	if err != nil || got == nil {
		t.Fatalf("half-made bridge: %v, %v", got, err)
	}
	if f, _ := d.Bridge().Diff(got, b); len(f) == 0 {
		t.Errorf("a half-made bridge shows no change")
	}
	if err := d.Bridge().Apply(ctx, create(b)); err != nil {
		t.Fatal(err)
	}
	if a := kernelBridge(t, b.Name).Attrs(); a.Alias != "hutch:net:labnet" || a.Flags&unix.IFF_UP == 0 {
		t.Errorf("finished bridge: alias %q flags %v", a.Alias, a.Flags)
	}
}

// A link of the wanted name that hutch did not make for this network is a
// conflict: apply and delete name it and leave it as it is.
func TestBridgeNotOwned(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup []string
		want  string
	}{
		{"unmarked bridge", []string{"type", "bridge"}, "its alias is"},
		{"veth", []string{"type", "veth"}, "not a bridge"},
		{"another network's bridge", []string{"alias", "x", "type", "bridge"}, "belongs to network other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &plan.Bridge{Network: "labnet", Name: testutil.Name("hbr")}
			t.Cleanup(func() { delLink(t, "", b.Name) })
			mustRun(t, append([]string{"ip", "link", "add", b.Name}, tc.setup...)...)
			if tc.name == "another network's bridge" {
				mustRun(t, "ip", "link", "set", b.Name, "alias", "hutch:net:other")
			}
			_, err := d.Bridge().Observe(ctx, b)
			if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("observe: %v, want ErrNotOwned with %q", err, tc.want)
			}
			if err := d.Bridge().Apply(ctx, create(b)); !errors.Is(err, ErrNotOwned) {
				t.Errorf("apply: %v", err)
			}
			if err := d.Bridge().Delete(ctx, b); !errors.Is(err, ErrNotOwned) {
				t.Errorf("delete: %v", err)
			}
			if _, err := netlink.LinkByName(b.Name); err != nil {
				t.Errorf("the link is gone: %v", err)
			}
		})
	}
}

// mustRun runs a command (iproute2, standing in for a user's hand).
func mustRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
