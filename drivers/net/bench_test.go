//go:build linux

package net

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// benchObjects are the seed's network for one container: a namespace, a
// veth pair with its peer inside, and an IPv4 and an IPv6 address on each
// end.
func benchObjects(name string, i int) (*plan.Netns, *plan.Veth, []*plan.Address) {
	ns := &plan.Netns{Container: name, Name: fmt.Sprintf("%s%d", name, i)}
	v := &plan.Veth{Container: name, Host: plan.LinkEnd{Name: fmt.Sprintf("%sh%d", name, i)},
		Peer: plan.LinkEnd{Name: "eth0"}, Netns: ns.Name}
	h4, p4, h6, p6 := subnet()
	mk := func(netns, link, cidr string) *plan.Address {
		return &plan.Address{Container: name, Netns: netns, Link: link, CIDR: cidr, Veth: v.ID()}
	}
	return ns, v, []*plan.Address{mk("", v.Host.Name, h4), mk("", v.Host.Name, h6),
		mk(ns.Name, "eth0", p4), mk(ns.Name, "eth0", p6)}
}

// BenchmarkNetworkCreateDelete is one container's network made through the
// drivers (netns with lo up, veth pair with both ends up, four addresses)
// and removed again (the pair, then the namespace).
func BenchmarkNetworkCreateDelete(b *testing.B) { benchDrivers(b, false) }

// BenchmarkNetworkCreate times only the creation of the same objects; their
// deletion runs with the timer stopped. Deleting a veth pair costs the
// kernel tens of milliseconds (unregister_netdevice waits for RCU grace
// periods) however it is asked, so this is the part where netlink and
// spawning ip differ.
func BenchmarkNetworkCreate(b *testing.B) { benchDrivers(b, true) }

func benchDrivers(b *testing.B, createOnly bool) {
	d := tempDriver(b)
	ctx := context.Background()
	name := testutil.Name("hb")[:8]
	for i := 0; b.Loop(); i++ {
		ns, v, as := benchObjects(name, i)
		b.Cleanup(func() { delLink(b, "", v.Host.Name); removeNetns(d.netnsPath(ns.Name)) })
		if err := d.Netns().Apply(ctx, create(ns)); err != nil {
			b.Fatal(err)
		}
		if err := d.Veth().Apply(ctx, create(v)); err != nil {
			b.Fatal(err)
		}
		for _, a := range as {
			if err := d.Address().Apply(ctx, create(a)); err != nil {
				b.Fatal(err)
			}
		}
		if createOnly {
			b.StopTimer()
		}
		if err := d.Veth().Delete(ctx, v); err != nil {
			b.Fatal(err)
		}
		if err := d.Netns().Delete(ctx, ns); err != nil {
			b.Fatal(err)
		}
		if createOnly {
			b.StartTimer()
		}
	}
}

// BenchmarkNetworkCreateDeleteIP does the same with iproute2 commands, one
// process each, as the seed tutorial does by hand, for comparison only
// (hutch itself never runs ip). It uses /var/run/netns, the only place
// `ip netns` knows.
func BenchmarkNetworkCreateDeleteIP(b *testing.B) { benchIP(b, false) }

// BenchmarkNetworkCreateIP times only the ip commands that create.
func BenchmarkNetworkCreateIP(b *testing.B) { benchIP(b, true) }

func benchIP(b *testing.B, createOnly bool) {
	testutil.RequireRoot(b)
	if _, err := exec.LookPath("ip"); err != nil {
		b.Skip("iproute2 is not installed")
	}
	restoreDefaultNetnsDir(b)
	name := testutil.Name("hb")[:8]
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			b.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	for i := 0; b.Loop(); i++ {
		ns, v, as := benchObjects(name, i)
		b.Cleanup(func() {
			exec.Command("ip", "link", "del", v.Host.Name).Run()
			exec.Command("ip", "netns", "del", ns.Name).Run()
		})
		run("netns", "add", ns.Name)
		run("-n", ns.Name, "link", "set", "lo", "up")
		run("link", "add", v.Host.Name, "type", "veth", "peer", "name", v.Peer.Name, "netns", ns.Name)
		run("link", "set", v.Host.Name, "alias", mark(name), "up")
		run("-n", ns.Name, "link", "set", v.Peer.Name, "alias", mark(name), "up")
		run("addr", "add", as[0].CIDR, "dev", v.Host.Name)
		run("addr", "add", as[1].CIDR, "dev", v.Host.Name, "nodad")
		run("-n", ns.Name, "addr", "add", as[2].CIDR, "dev", v.Peer.Name)
		run("-n", ns.Name, "addr", "add", as[3].CIDR, "dev", v.Peer.Name, "nodad")
		if createOnly {
			b.StopTimer()
		}
		run("link", "del", v.Host.Name)
		run("netns", "del", ns.Name)
		if createOnly {
			b.StartTimer()
		}
	}
}
