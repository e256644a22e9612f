package net

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"hutch/plan"
)

// A host end's address sets the host's neighbour entries of the peer's IPs
// from the peer's MAC: the first packet to the container needs no ARP, and
// an entry a client's early try left unanswered is resolved at once.
func TestHostAddressSetsThePeersNeighbourEntries(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ad := d.Address()
	ns, v, as := addresses(t, d)
	host4, host6, peer4, peer6 := as[0], as[1], as[2], as[3]
	for _, pair := range [][2]*plan.Address{{host4, peer4}, {host6, peer6}} {
		ip := netip.MustParsePrefix(pair[1].CIDR).Addr().String()
		pair[0].Peer = &plan.AddressPeer{Netns: ns.Name, Link: v.Peer.Name, IPs: []string{ip}}
	}
	hh, nh := nsHandle(t, ""), nsHandle(t, d.netnsPath(ns.Name))
	peerMAC := link(t, nh, v.Peer.Name).Attrs().HardwareAddr.String()
	for _, a := range []*plan.Address{peer4, peer6, host4, host6} {
		if err := ad.Apply(ctx, create(a)); err != nil {
			t.Fatal(err)
		}
	}
	hostEnd := link(t, hh, v.Host.Name)
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return hh.NeighList(hostEnd.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range neighs {
		if n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
			got[n.IP.String()] = n.HardwareAddr.String()
		}
	}
	for _, a := range []*plan.Address{peer4, peer6} {
		ip := netip.MustParsePrefix(a.CIDR).Addr().String()
		if got[ip] != peerMAC {
			t.Errorf("host's neighbour entry of %s on %s: lladdr %q, want the peer's %s (all: %v)", ip, v.Host.Name, got[ip], peerMAC, got)
		}
	}
}
