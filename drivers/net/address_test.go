//go:build linux

package net

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// kernelAddrs lists the addresses on a link as the library dumps them, as
// CIDR strings without link-local IPv6 ones.
func kernelAddrs(t testing.TB, h *netlink.Handle, name string) []string {
	t.Helper()
	l := link(t, h, name)
	if l == nil {
		return nil
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		p, _ := netip.ParsePrefix(a.IPNet.String())
		out = append(out, p.String())
	}
	return out
}

// addresses makes a netns, a veth pair and the IPv4 and IPv6 address
// resources of both ends (not yet applied).
func addresses(t testing.TB, d *Driver) (*plan.Netns, *plan.Veth, []*plan.Address) {
	ns := mustNetns(t, d, "web")
	v := mustVeth(t, d, ns)
	h4, p4, h6, p6 := subnet()
	mk := func(netns, link, cidr string) *plan.Address {
		return &plan.Address{Container: "web", Netns: netns, Link: link, CIDR: cidr, Veth: v.ID()}
	}
	return ns, v, []*plan.Address{
		mk("", v.Host.Name, h4), mk("", v.Host.Name, h6),
		mk(ns.Name, v.Peer.Name, p4), mk(ns.Name, v.Peer.Name, p6),
	}
}

func TestAddressLifecycle(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ad := d.Address()
	ns, v, as := addresses(t, d)
	hh, nh := nsHandle(t, ""), nsHandle(t, d.netnsPath(ns.Name))
	for _, a := range as {
		if got, err := ad.Observe(ctx, a); err != nil || got != nil {
			t.Fatalf("Observe %s before Apply = %v, %v", a.ID(), got, err)
		}
		if err := ad.Apply(ctx, create(a)); err != nil {
			t.Fatal(err)
		}
		if err := ad.Apply(ctx, create(a)); err != nil {
			t.Fatalf("a second Apply of %s: %v", a.ID(), err)
		}
	}
	if diff := cmp.Diff([]string{as[0].CIDR, as[1].CIDR}, kernelAddrs(t, hh, v.Host.Name)); diff != "" {
		t.Fatalf("host end's addresses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{as[2].CIDR, as[3].CIDR}, kernelAddrs(t, nh, v.Peer.Name)); diff != "" {
		t.Fatalf("peer's addresses (-want +got):\n%s", diff)
	}
	for _, a := range as {
		got, err := ad.Observe(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(plan.Resource(a), got); diff != "" {
			t.Fatalf("Observe %s (-want +got):\n%s", a.ID(), diff)
		}
		if f, fr := ad.Diff(got, a); len(f)+len(fr) != 0 {
			t.Fatalf("Diff of observed %s = %v, %v", a.ID(), f, fr)
		}
	}

	// The outside check: iproute2 sees the peer's addresses in the namespace.
	if _, err := exec.LookPath("ip"); err == nil {
		out, err := exec.Command("nsenter", "--net="+d.netnsPath(ns.Name), "ip", "-o", "addr", "show", "dev", v.Peer.Name).CombinedOutput()
		if err != nil {
			t.Fatalf("ip -o addr in the namespace: %v: %s", err, out)
		}
		for _, a := range as[2:] {
			if !strings.Contains(string(out), " "+a.CIDR+" ") {
				t.Errorf("ip -o addr inside does not show %s:\n%s", a.CIDR, out)
			}
		}
	}

	// Changed by hand: the peer's IPv4 address gets a /24 instead of its /30.
	p4 := as[2]
	pl := link(t, nh, v.Peer.Name)
	old, _ := netlink.ParseAddr(p4.CIDR)
	if err := nh.AddrDel(pl, old); err != nil {
		t.Fatal(err)
	}
	hand, _ := netlink.ParseAddr(ip(p4.CIDR) + "/24")
	if err := nh.AddrAdd(pl, hand); err != nil {
		t.Fatal(err)
	}
	got, err := ad.Observe(ctx, p4)
	if err != nil {
		t.Fatal(err)
	}
	if g := got.(*plan.Address); g.CIDR != ip(p4.CIDR)+"/24" {
		t.Fatalf("Observe after a change by hand: cidr %s, want the kernel's /24", g.CIDR)
	}
	if f, fr := ad.Diff(got, p4); !slicesEq(f, "cidr") || !slicesEq(fr, "cidr") {
		t.Fatalf("Diff of the drifted address = %v, %v", f, fr)
	}
	// The replace: delete what is there, add what is wanted.
	if err := ad.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := ad.Apply(ctx, create(p4)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{as[2].CIDR, as[3].CIDR}, kernelAddrs(t, nh, v.Peer.Name)); diff != "" {
		t.Fatalf("peer's addresses after the replace (-want +got):\n%s", diff)
	}

	for _, a := range as {
		if err := ad.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := ad.Delete(ctx, a); err != nil {
			t.Fatalf("second Delete of %s: %v", a.ID(), err)
		}
	}
	if got := append(kernelAddrs(t, hh, v.Host.Name), kernelAddrs(t, nh, v.Peer.Name)...); len(got) != 0 {
		t.Fatalf("addresses left after Delete: %v", got)
	}
	// With the link and then the namespace gone, Observe and Delete still
	// answer.
	if err := d.Veth().Delete(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := d.Netns().Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if got, err := ad.Observe(ctx, a); err != nil || got != nil {
			t.Fatalf("Observe %s with its link gone = %v, %v", a.ID(), got, err)
		}
		if err := ad.Delete(ctx, a); err != nil {
			t.Fatalf("Delete %s with its link gone: %v", a.ID(), err)
		}
	}
}

// hutch puts addresses only on links it owns.
func TestAddressNotOwned(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	hh := nsHandle(t, "")
	la := netlink.NewLinkAttrs()
	la.Name = testutil.Name("hv")
	t.Cleanup(func() { delLink(t, "", la.Name) })
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: testutil.Name("pv"), PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	h4, _, _, _ := subnet()
	hand, _ := netlink.ParseAddr(h4)
	if err := hh.AddrAdd(link(t, hh, la.Name), hand); err != nil {
		t.Fatal(err)
	}
	a := &plan.Address{Container: "web", Link: la.Name, CIDR: h4, Veth: plan.VethID(la.Name)}
	if _, err := d.Address().Observe(ctx, a); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe on a foreign link: %v, want ErrNotOwned", err)
	}
	if err := d.Address().Delete(ctx, a); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Delete on a foreign link: %v, want ErrNotOwned", err)
	}
	if got := kernelAddrs(t, hh, la.Name); len(got) != 1 {
		t.Fatalf("the foreign link's address was touched: %v", got)
	}
}

func TestAddressDiff(t *testing.T) {
	ad := (&Driver{}).Address()
	a := &plan.Address{Container: "web", Netns: "ns", Link: "veth1", CIDR: "fd00::2/64", Veth: "veth/veth0"}
	same := *a
	same.CIDR = "fd00:0::2/64"
	if f, fr := ad.Diff(&same, a); len(f)+len(fr) != 0 {
		t.Errorf("the same address written two ways: %v, %v", f, fr)
	}
	other := *a
	other.CIDR = "fd00::2/48"
	if f, fr := ad.Diff(&other, a); !slicesEq(f, "cidr") || !slicesEq(fr, "cidr") {
		t.Errorf("another prefix: %v, %v", f, fr)
	}
	if f, _ := ad.Diff(nil, a); len(f) == 0 {
		t.Error("Diff against nothing lists no field")
	}
}

// An IP that a link hutch does not own already has, in the same namespace,
// is a conflict before anything is made (the preflight) and is never added.
func TestAddressHeldByForeignLink(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	hh, nh := nsHandle(t, ""), nsHandle(t, d.netnsPath(ns.Name))
	h4, p4, _, p6 := subnet()

	// On the host: a foreign veth holds the host end's IP, with another
	// prefix length.
	la := netlink.NewLinkAttrs()
	la.Name = testutil.Name("hx")
	t.Cleanup(func() { delLink(t, "", la.Name) })
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: testutil.Name("hx"), PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	foreign, _ := netlink.ParseAddr(ip(h4) + "/24")
	if err := hh.AddrAdd(link(t, hh, la.Name), foreign); err != nil {
		t.Fatal(err)
	}
	hostEnd := testutil.Name("hv")
	a := &plan.Address{Container: "web", Link: hostEnd, CIDR: h4, Veth: plan.VethID(hostEnd)}
	_, err := d.Address().Observe(ctx, a)
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe of an IP on a foreign link, before its own link exists: %v, want ErrNotOwned", err)
	}
	for _, s := range []string{ip(h4), la.Name, "host"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the conflict %q does not name %q", err, s)
		}
	}

	// Also once the link exists, and Apply refuses to add it.
	v := mustVeth(t, d, ns)
	a.Link, a.Veth = v.Host.Name, v.ID()
	if _, err := d.Address().Observe(ctx, a); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe of an IP on a foreign link: %v, want ErrNotOwned", err)
	}
	if err := d.Address().Apply(ctx, create(a)); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Apply of an IP on a foreign link: %v, want ErrNotOwned", err)
	}
	if got := kernelAddrs(t, hh, v.Host.Name); len(got) != 0 {
		t.Fatalf("Apply added %v next to the foreign link's", got)
	}
	if got := kernelAddrs(t, hh, la.Name); len(got) != 1 || got[0] != ip(h4)+"/24" {
		t.Fatalf("the foreign link's addresses changed: %v", got)
	}

	// Inside a namespace: a foreign link there (a veth made inside, as this
	// kernel has no dummy links) holds the peer's IPv6.
	dummy := netlink.NewLinkAttrs()
	dummy.Name = testutil.Name("dx")
	if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: dummy, PeerName: testutil.Name("dx"), PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	held, _ := netlink.ParseAddr(p6)
	held.Flags = unix.IFA_F_NODAD
	if err := nh.AddrAdd(link(t, nh, dummy.Name), held); err != nil {
		t.Fatal(err)
	}
	pa := &plan.Address{Container: "web", Netns: ns.Name, Link: v.Peer.Name, CIDR: p6, Veth: v.ID()}
	_, err = d.Address().Observe(ctx, pa)
	if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "netns "+ns.Name) || !strings.Contains(err.Error(), dummy.Name) {
		t.Fatalf("Observe of an IP on a foreign link in netns %s: %v, want ErrNotOwned naming it", ns.Name, err)
	}

	// The same IP on another link of hutch's is no conflict, nor is an
	// address already in place on the wanted link.
	v2 := mustVeth(t, d, ns)
	if err := d.Address().Apply(ctx, create(&plan.Address{Container: "web", Netns: ns.Name, Link: v2.Peer.Name, CIDR: p4, Veth: v2.ID()})); err != nil {
		t.Fatal(err)
	}
	pa4 := &plan.Address{Container: "web", Netns: ns.Name, Link: v.Peer.Name, CIDR: p4, Veth: v.ID()}
	if got, err := d.Address().Observe(ctx, pa4); err != nil || got != nil {
		t.Fatalf("Observe of an IP on another hutch link = %v, %v; want nil, nil", got, err)
	}
	if err := d.Address().Apply(ctx, create(pa4)); err != nil {
		t.Fatal(err)
	}
	if err := nh.AddrAdd(link(t, nh, dummy.Name), mustAddr(t, p4)); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Address().Observe(ctx, pa4); err != nil || got == nil {
		t.Fatalf("Observe of an address in place, also held by a foreign link = %v, %v; want it", got, err)
	}
	if err := d.Address().Delete(ctx, pa4); err != nil {
		t.Fatal(err)
	}
	if got := kernelAddrs(t, nh, v.Peer.Name); len(got) != 0 {
		t.Fatalf("Delete left %v", got)
	}
}

func mustAddr(t testing.TB, cidr string) *netlink.Addr {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A host address whose subnet the host already routes through a link that
// is not hutch's is a conflict before anything is made: the host would
// have two connected routes and reach only one side.
func TestAddressSubnetRoutedElsewhere(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")
	v := mustVeth(t, d, ns)
	h4, _, _, _ := subnet()
	foreign := testutil.Name("hx")
	mustRun(t, "ip", "link", "add", foreign, "type", "veth", "peer", "name", testutil.Name("hx"))
	t.Cleanup(func() { delLink(t, "", foreign) })
	mustRun(t, "ip", "link", "set", foreign, "up")
	wider := netip.PrefixFrom(netip.MustParsePrefix(h4).Addr(), 29).Masked().String()
	mustRun(t, "ip", "route", "add", wider, "dev", foreign)
	a := &plan.Address{Container: "web", Link: v.Host.Name, CIDR: h4, Veth: v.ID()}
	_, err := d.Address().Observe(ctx, a)
	if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), wider) || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("Observe with the subnet routed through %s: %v", foreign, err)
	}
	// Once the route is gone, the address is free to make.
	mustRun(t, "ip", "route", "del", wider, "dev", foreign)
	if got, err := d.Address().Observe(ctx, a); err != nil || got != nil {
		t.Errorf("without the route: %v, %v", got, err)
	}
}
