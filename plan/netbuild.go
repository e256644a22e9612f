package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"hutch/spec"
)

// buildNetwork makes the netns, a veth pair per interface, the addresses on
// both ends, the manifest's routes, the default routes of interfaces that
// ask for one and the rules of the published ports. No network block means
// no host resources: the container gets a new, empty network namespace from
// the runtime.
//
// The steps run in the manifest's order (interfaces, the ends of links,
// routes, default routes, ports), so the first error reported is the one
// of the earliest field.
func buildNetwork(sc *spec.Container, lab *lab) ([]Resource, error) {
	n := sc.Spec.Network
	if n == nil {
		return nil, nil
	}
	name := sc.Metadata.Name
	b := &netBuilder{
		name:      name,
		net:       n,
		lab:       lab,
		ns:        &Netns{Container: name, Name: n.Namespace},
		hostFirst: map[string][2]netip.Prefix{},
		ends:      map[string]string{},
	}
	for i, it := range n.Interfaces {
		if err := b.addInterface(i, it); err != nil {
			return nil, err
		}
	}
	if err := b.addLinkEnds(); err != nil {
		return nil, err
	}
	for i, rt := range n.Routes {
		if err := b.addRoute(i, rt); err != nil {
			return nil, err
		}
	}
	if err := b.addDefaultRoutes(); err != nil {
		return nil, err
	}
	ports, err := buildPorts(sc, b.portTargets())
	if err != nil {
		return nil, err
	}
	veths := make([]Resource, len(b.veths))
	for i, v := range b.veths {
		veths[i] = v
	}
	sortByID(veths)
	sortByID(b.addrs)
	sortByID(b.routes)
	out := []Resource{b.ns}
	out = append(out, veths...)
	out = append(out, b.addrs...)
	out = append(out, b.routes...)
	out = append(out, ports...)
	return out, nil
}

// netBuilder holds what buildNetwork's steps make and what the later steps
// look up: a route finds the address that reaches its gateway, a default
// route the host end's first address, a published port the first address of
// its family.
type netBuilder struct {
	name string // the container
	net  *spec.Network
	lab  *lab
	ns   *Netns

	veths         []*Veth // one per interface, in the manifest's order
	addrs, routes []Resource
	// inside are the container-side addresses, to find the link and the
	// address that make a gateway reachable.
	inside []ifAddr
	// hostFirst is, per interface, the first host-side address of each
	// family (v4, v6): a default route's gateway.
	hostFirst map[string][2]netip.Prefix
	ends      map[string]string // interface -> link ID, for the ends of links
}

// ifAddr is a container-side address: its interface, the ID of the veth or
// link it is on, and its own resource ID.
type ifAddr struct {
	iface  string
	veth   string
	prefix netip.Prefix
	id     string
}

// addInterface makes the veth pair of interface i and the addresses of
// both its ends. An interface plugged into a network's bridge gets its host
// end's name from hutch, the network's MTU unless it has its own, the
// addresses IPAM gave it and the network's gateways as its default routes'.
func (b *netBuilder) addInterface(i int, it spec.Interface) error {
	path := fmt.Sprintf("spec.network.interfaces[%d]", i)
	n := b.net
	v := &Veth{
		Container: b.name,
		Host:      LinkEnd{Name: it.Host.Name, MAC: strings.ToLower(it.Host.MAC), MTU: it.MTU},
		Peer:      LinkEnd{Name: it.Name, MAC: strings.ToLower(it.MAC), MTU: it.MTU},
		Netns:     n.Namespace,
	}
	addrList := it.Addresses
	var onNet *labNet
	if it.Network != "" {
		// Plugged into a network's bridge: hutch names the host end;
		// the addresses are the static ones and IPAM's.
		if onNet = b.lab.nets[it.Network]; onNet == nil {
			return fieldErrorf(path+".network", "no network %q in the manifest", it.Network)
		}
		v.Host.Name = spec.AttachName(b.name, it.Name)
		v.Bridge = onNet.bridge
		if it.MTU == 0 {
			v.Host.MTU, v.Peer.MTU = onNet.doc.Spec.MTU, onNet.doc.Spec.MTU
		}
		addrList = nil
		for _, p := range b.lab.addrs[b.name+"/"+it.Name] {
			addrList = append(addrList, p.String())
		}
	}
	b.veths = append(b.veths, v)
	for j, a := range addrList {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return atField(fmt.Sprintf("%s.addresses[%d]", path, j), err)
		}
		ad := &Address{Container: b.name, Netns: n.Namespace, Link: it.Name, CIDR: p.String(), Veth: v.ID()}
		b.addrs = append(b.addrs, ad)
		b.inside = append(b.inside, ifAddr{iface: it.Name, veth: v.ID(), prefix: p, id: ad.ID()})
	}
	var inside []*Address
	for _, r := range b.addrs {
		if ad, ok := r.(*Address); ok && ad.Veth == v.ID() && ad.Netns != HostNetns {
			inside = append(inside, ad)
		}
	}
	var first [2]netip.Prefix
	for j, a := range it.Host.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return atField(fmt.Sprintf("%s.host.addresses[%d]", path, j), err)
		}
		ha := &Address{Container: b.name, Netns: HostNetns, Link: it.Host.Name, CIDR: p.String(), Veth: v.ID()}
		for _, in := range inside {
			if ip, err := netip.ParsePrefix(in.CIDR); err == nil && ip.Addr().Is6() == p.Addr().Is6() {
				ha.Needs = append(ha.Needs, in.ID())
				if ha.Peer == nil {
					ha.Peer = &AddressPeer{Netns: in.Netns, Link: in.Link}
				}
				ha.Peer.IPs = append(ha.Peer.IPs, ip.Addr().String())
			}
		}
		b.addrs = append(b.addrs, ha)
		fam := 0
		if p.Addr().Is6() {
			fam = 1
		}
		if !first[fam].IsValid() {
			first[fam] = p
		}
	}
	if onNet != nil {
		// The default routes go via the network's gateways.
		for k, gw := range onNet.gateways {
			fam := 0
			if gw.Is6() {
				fam = 1
			}
			first[fam] = netip.PrefixFrom(gw, onNet.subnets[k].Bits())
		}
	}
	b.hostFirst[it.Name] = first
	return nil
}

// addLinkEnds makes the addresses of the container's ends of links (kind:
// Link), which routes may then go through.
func (b *netBuilder) addLinkEnds() error {
	for _, le := range b.lab.linkEnds(b.name) {
		b.ends[le.e.Interface] = le.id
		for _, a := range le.e.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return fmt.Errorf("link %s: %s: %w", le.id, a, err)
			}
			ad := &Address{Container: b.name, Netns: b.net.Namespace, Link: le.e.Interface, CIDR: p.String(), Veth: le.id}
			b.addrs = append(b.addrs, ad)
			b.inside = append(b.inside, ifAddr{iface: le.e.Interface, veth: le.id, prefix: p, id: ad.ID()})
		}
	}
	return nil
}

// reach finds the container-side address whose subnet holds gw, on dev
// when dev is given.
func (b *netBuilder) reach(gw netip.Addr, dev string) (ifAddr, bool) {
	for _, a := range b.inside {
		if (dev == "" || a.iface == dev) && a.prefix.Masked().Contains(gw) {
			return a, true
		}
	}
	return ifAddr{}, false
}

// vethOf is the ID of the veth or link whose container end is dev, or ""
// for a device of the namespace itself.
func (b *netBuilder) vethOf(dev string) string {
	for i, it := range b.net.Interfaces {
		if it.Name == dev {
			return b.veths[i].ID()
		}
	}
	return b.ends[dev]
}

// addRoute makes the manifest's route i. It needs the device it leaves
// through and, with a gateway, the address whose subnet holds the gateway:
// the kernel takes a gateway only on a link that reaches it.
func (b *netBuilder) addRoute(i int, rt spec.Route) error {
	path := fmt.Sprintf("spec.network.routes[%d]", i)
	r := &Route{Container: b.name, Netns: b.net.Namespace, Dev: rt.Dev, Metric: rt.Metric}
	var gw netip.Addr
	if rt.Via != "" {
		var err error
		if gw, err = netip.ParseAddr(rt.Via); err != nil {
			return atField(path+".via", err)
		}
		r.Via = gw.String()
	}
	switch {
	case rt.To == "default" && gw.Is6():
		r.Dst = "::/0"
	case rt.To == "default":
		r.Dst = "0.0.0.0/0"
	default:
		p, err := netip.ParsePrefix(rt.To)
		if err != nil {
			return atField(path+".to", err)
		}
		r.Dst = p.Masked().String()
	}
	needs := map[string]bool{}
	if gw.IsValid() {
		a, ok := b.reach(gw, rt.Dev)
		switch {
		case ok:
			r.Dev = a.iface
			needs[a.veth], needs[a.id] = true, true
		case linkLocalVia(gw, rt.Dev):
			// An IPv6 link-local gateway (fe80::/10) is on the link of
			// dev, which every IPv6 interface has its own fe80::/64
			// on: the kernel takes it with the device named
			// (RTA_OIF; ip6_validate_gw refuses it without one, or
			// through lo). The route needs dev up, not an address.
		default:
			return fieldErrorf(path+".via", "%s is in the subnet of no address of %s", gw, devOr(rt.Dev, "any interface"))
		}
	} else if rt.Dev == "" {
		return fieldErrorf(path, "neither via nor dev given")
	}
	if v := b.vethOf(r.Dev); v != "" {
		needs[v] = true
	} else {
		needs[b.ns.ID()] = true // a device of the namespace itself, such as lo
	}
	r.Needs = sortedKeys(needs)
	b.routes = append(b.routes, r)
	return nil
}

// addDefaultRoutes makes the default routes of the interfaces that ask for
// one (defaultRoute: true), one per family the host end has an address of,
// via that address.
func (b *netBuilder) addDefaultRoutes() error {
	for i, it := range b.net.Interfaces {
		if !it.DefaultRoute {
			continue
		}
		first := b.hostFirst[it.Name]
		if !first[0].IsValid() && !first[1].IsValid() {
			return fieldErrorf(fmt.Sprintf("spec.network.interfaces[%d].defaultRoute", i), "the host end has no address to route through")
		}
		for fam, p := range first {
			if !p.IsValid() {
				continue
			}
			gw := p.Addr()
			a, ok := b.reach(gw, it.Name)
			if !ok {
				return fieldErrorf(fmt.Sprintf("spec.network.interfaces[%d].defaultRoute", i), "host address %s is in the subnet of no address of %s", p, it.Name)
			}
			dst := "0.0.0.0/0"
			if fam == 1 {
				dst = "::/0"
			}
			b.routes = append(b.routes, &Route{Container: b.name, Netns: b.net.Namespace, Dst: dst, Via: gw.String(),
				Dev: it.Name, Needs: sortedKeys(map[string]bool{b.veths[i].ID(): true, a.id: true})})
		}
	}
	return nil
}

// portTargets says where published ports go: the container's first IPv4
// address and its first IPv6 one that is not link-local, each with the
// host-side interface that reaches it, and whether the container has a
// default route of the family.
func (b *netBuilder) portTargets() [2]portTarget {
	var target [2]portTarget
	for i, it := range b.net.Interfaces {
		v := b.veths[i]
		for _, a := range b.inside {
			fam := portFamily(a.prefix.Addr())
			if a.iface == it.Name && fam >= 0 && !target[fam].addr.IsValid() {
				target[fam] = portTarget{addr: a.prefix, egress: v.Host.Name, egressID: v.ID()}
				if v.Bridge != "" {
					target[fam].egress, target[fam].egressID = v.Bridge, BridgeID(v.Bridge)
				}
			}
		}
	}
	for _, r := range b.routes {
		target[0].routed = target[0].routed || r.(*Route).Dst == "0.0.0.0/0"
		target[1].routed = target[1].routed || r.(*Route).Dst == "::/0"
	}
	return target
}

// linkLocalVia reports whether gw is an IPv6 link-local gateway that the
// kernel reaches through dev: dev must be named, and not lo.
func linkLocalVia(gw netip.Addr, dev string) bool {
	return gw.Is6() && gw.IsLinkLocalUnicast() && dev != "" && dev != "lo"
}

func devOr(dev, none string) string {
	if dev == "" {
		return none
	}
	return dev
}
