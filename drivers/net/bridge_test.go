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

// Two containers' veths plugged into one bridge reach each other: the
// kernel lists both host ends as the bridge's ports and a ping crosses.
// Unplugged by hand, a veth is shown as drift and plugged in again.
func TestVethOnBridge(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	b := &plan.Bridge{Network: "labnet", Name: testutil.Name("hbr")}
	t.Cleanup(func() { delLink(t, "", b.Name) })
	if err := d.Bridge().Apply(ctx, create(b)); err != nil {
		t.Fatal(err)
	}
	var veths []*plan.Veth
	for i, addr := range []string{"10.77.0.2/24", "10.77.0.3/24"} {
		ns := mustNetns(t, d, "c"+strconv.Itoa(i))
		v := &plan.Veth{Container: ns.Container, Host: plan.LinkEnd{Name: testutil.Name("hv")}, Peer: plan.LinkEnd{Name: "eth0"}, Netns: ns.Name, Bridge: b.Name}
		t.Cleanup(func() { delLink(t, "", v.Host.Name) })
		if err := d.Veth().Apply(ctx, create(v)); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "nsenter", "--net="+d.netnsPath(ns.Name), "ip", "addr", "add", addr, "dev", "eth0")
		mustRun(t, "nsenter", "--net="+d.netnsPath(ns.Name), "ip", "link", "set", "eth0", "up")
		veths = append(veths, v)
	}
	ports, err := d.BridgePorts(b.Name)
	if err != nil || len(ports) != 2 {
		t.Fatalf("bridge ports %v, %v", ports, err)
	}
	mustRun(t, "nsenter", "--net="+d.netnsPath(veths[0].Netns), "busybox", "ping", "-c", "1", "-W", "2", "10.77.0.3")

	v := veths[1]
	got, err := d.Veth().Observe(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := d.Veth().Diff(got, v); len(f) != 0 {
		t.Errorf("a plugged veth: diff %v", f)
	}
	mustRun(t, "ip", "link", "set", v.Host.Name, "nomaster")
	got, _ = d.Veth().Observe(ctx, v)
	if f, replace := d.Veth().Diff(got, v); strings.Join(f, ",") != "bridge" || len(replace) != 0 {
		t.Errorf("unplugged by hand: fields %v replace %v", f, replace)
	}
	if err := d.Veth().Apply(ctx, &plan.Change{ID: v.ID(), Kind: v.Kind(), Action: plan.Update, Before: got, After: v}); err != nil {
		t.Fatal(err)
	}
	if ports, _ := d.BridgePorts(b.Name); len(ports) != 2 {
		t.Errorf("after repair the bridge has ports %v", ports)
	}
	// A veth is never plugged into a bridge hutch did not make.
	theirs := testutil.Name("hbx")
	mustRun(t, "ip", "link", "add", theirs, "type", "bridge")
	t.Cleanup(func() { delLink(t, "", theirs) })
	w := *v
	w.Bridge = theirs
	if err := d.Veth().Apply(ctx, &plan.Change{ID: w.ID(), Kind: w.Kind(), Action: plan.Update, Before: v, After: &w}); !errors.Is(err, ErrNotOwned) {
		t.Errorf("plug into someone else's bridge: %v", err)
	}
}
