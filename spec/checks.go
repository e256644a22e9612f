package spec

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
)

// crossChecks are the rules that span fields or documents, each a small
// named function. They skip values the field rules already refuse, so one
// mistake gives one error.
func crossChecks(m *Manifest) Errors {
	var errs Errors
	errs = append(errs, checkUniqueNames(m)...)
	errs = append(errs, checkNetnsNames(m)...)
	errs = append(errs, checkInterfaceNames(m)...)
	errs = append(errs, checkAddresses(m)...)
	errs = append(errs, checkHostPorts(m)...)
	errs = append(errs, checkMACs(m)...)
	errs = append(errs, labChecks(m)...)
	errs = append(errs, orchestrationChecks(m)...)
	for _, c := range m.Containers {
		errs = append(errs, checkVethSubnets(c)...)
		errs = append(errs, checkRoutes(m, c)...)
		errs = append(errs, checkPorts(m, c)...)
		errs = append(errs, checkResources(c)...)
		errs = append(errs, checkMounts(c)...)
		errs = append(errs, checkRlimits(c)...)
		errs = append(errs, checkCapabilities(c)...)
		errs = append(errs, checkIDMappings(c)...)
		errs = append(errs, checkUserMapped(c)...)
		errs = append(errs, checkRootfsPaths(c)...)
		errs = append(errs, checkArgs(c)...)
	}
	return errs
}

// place is where a value was first seen, for "also at FILE:LINE" notes.
type place struct {
	c    *Container
	path string
}

func (p place) String() string {
	pos := p.c.Source.Pos(p.path)
	return fmt.Sprintf("%s:%d (%s of %s)", p.c.Source.File, pos.Line, p.path, p.c.Metadata.Name)
}

// checkUniqueNames: every container's name is unique among all documents,
// since it names its state folder, cgroup and default netns.
func checkUniqueNames(m *Manifest) Errors {
	var errs Errors
	seen := map[string]place{}
	for _, c := range m.Containers {
		n := c.Metadata.Name
		if !isDNSLabel(n) {
			continue
		}
		if first, dup := seen[n]; dup {
			errs = append(errs, c.errorAt("metadata.name", fmt.Sprintf("container %q is defined twice, first at %s (expected a unique name)", n, first)))
			continue
		}
		seen[n] = place{c, "metadata.name"}
	}
	return errs
}

// netnsName is the network namespace a container gets: the one it names,
// else its own name (as Defaults sets it), "" without a network.
func netnsName(c *Container) (name, path string) {
	if c.Spec.Network == nil {
		return "", ""
	}
	if c.Spec.Network.Namespace != "" {
		return c.Spec.Network.Namespace, "spec.network.namespace"
	}
	return c.Metadata.Name, "metadata.name"
}

// checkNetnsNames: two containers never share a network namespace; each
// owns its own and deletes it with itself.
func checkNetnsNames(m *Manifest) Errors {
	var errs Errors
	seen := map[string]place{}
	for _, c := range m.Containers {
		n, path := netnsName(c)
		if n == "" {
			continue
		}
		if first, dup := seen[n]; dup {
			errs = append(errs, c.errorAt(path, fmt.Sprintf("network namespace %q is also used at %s (expected a namespace of its own per container)", n, first)))
			continue
		}
		seen[n] = place{c, path}
	}
	return errs
}

// checkInterfaceNames: host ends live together in the host's namespace, so
// their names are unique across all documents; the ends inside a container
// are unique in its namespace and are not "lo", which every namespace has.
// A container end never takes a host end's name either: should the kernel
// refuse to create the peer inside the namespace, it is made on the host and
// moved, and would meet the host end there.
func checkInterfaceNames(m *Manifest) Errors {
	var errs Errors
	hosts := map[string]place{}
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		for i, itf := range c.Spec.Network.Interfaces {
			path := fmt.Sprintf("spec.network.interfaces[%d].host.name", i)
			n := itf.Host.Name
			if what, _ := checkIfname(n); what != "" {
				continue
			}
			if n == "lo" {
				errs = append(errs, c.errorAt(path, `"lo" is the host's loopback interface (expected another name)`))
				continue
			}
			if first, dup := hosts[n]; dup {
				errs = append(errs, c.errorAt(path, fmt.Sprintf("host interface %q is also named at %s (expected a unique name on the host)", n, first)))
				continue
			}
			hosts[n] = place{c, path}
		}
	}
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		inside := map[string]place{}
		for i, itf := range c.Spec.Network.Interfaces {
			path := fmt.Sprintf("spec.network.interfaces[%d].name", i)
			n := itf.Name
			if what, _ := checkIfname(n); what != "" {
				continue
			}
			switch first, dup := inside[n]; {
			case n == "lo":
				errs = append(errs, c.errorAt(path, `"lo" already exists in every network namespace (expected another name)`))
			case dup:
				errs = append(errs, c.errorAt(path, fmt.Sprintf("interface %q is also named at %s (expected a unique name in the container)", n, first)))
			default:
				if h, clash := hosts[n]; clash {
					errs = append(errs, c.errorAt(path, fmt.Sprintf("interface %q is a host interface's name at %s (expected a name no host end uses)", n, h)))
				}
				inside[n] = place{c, path}
			}
		}
	}
	return errs
}

// addrAt is one parsed interface address and where it is written.
type addrAt struct {
	prefix netip.Prefix
	at     place
	host   bool // on the host end
	veth   int  // index of the interface in its container
}

// addresses lists every valid address of the manifest's interfaces.
func addresses(m *Manifest) []addrAt {
	var out []addrAt
	for _, c := range m.Containers {
		out = append(out, containerAddresses(c)...)
	}
	return out
}

func containerAddresses(c *Container) []addrAt {
	if c.Spec.Network == nil {
		return nil
	}
	var out []addrAt
	for i, itf := range c.Spec.Network.Interfaces {
		for j, a := range itf.Addresses {
			if p, ok := validPrefix(a); ok {
				out = append(out, addrAt{p, place{c, fmt.Sprintf("spec.network.interfaces[%d].addresses[%d]", i, j)}, false, i})
			}
		}
		for j, a := range itf.Host.Addresses {
			if p, ok := validPrefix(a); ok {
				out = append(out, addrAt{p, place{c, fmt.Sprintf("spec.network.interfaces[%d].host.addresses[%d]", i, j)}, true, i})
			}
		}
	}
	return out
}

func validPrefix(s string) (netip.Prefix, bool) {
	if what, _ := checkCIDRAddr(s); what != "" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	return p, err == nil
}

// checkAddresses: an address is used once in the whole manifest (two ends
// with one address make traffic go to whichever answers ARP first), and no
// two host ends have overlapping subnets (the host would have two connected
// routes for one destination and reach only one container).
func checkAddresses(m *Manifest) Errors {
	var errs Errors
	seen := map[netip.Addr]place{}
	var hostNets []addrAt
	for _, a := range addresses(m) {
		if first, dup := seen[a.prefix.Addr()]; dup {
			errs = append(errs, a.at.c.errorAt(a.at.path, fmt.Sprintf("address %s is also used at %s (expected each address once)", a.prefix.Addr(), first)))
			continue
		}
		seen[a.prefix.Addr()] = a.at
		if !a.host {
			continue
		}
		for _, h := range hostNets {
			if h.at.c == a.at.c && h.veth == a.veth {
				continue
			}
			if h.prefix.Overlaps(a.prefix) {
				errs = append(errs, a.at.c.errorAt(a.at.path, fmt.Sprintf("subnet %s overlaps %s of another host end at %s (expected a separate subnet per veth)", a.prefix.Masked(), h.prefix.Masked(), h.at)))
				break
			}
		}
		hostNets = append(hostNets, a)
	}
	return errs
}

// checkMACs: a hardware address given for a veth end is unicast (the
// kernel refuses a multicast one with EADDRNOTAVAIL) and used once in the
// manifest, since the ends of all veths meet on the host.
func checkMACs(m *Manifest) Errors {
	var errs Errors
	seen := map[string]place{}
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		for i, itf := range c.Spec.Network.Interfaces {
			for _, end := range []struct{ mac, path string }{
				{itf.MAC, fmt.Sprintf("spec.network.interfaces[%d].mac", i)},
				{itf.Host.MAC, fmt.Sprintf("spec.network.interfaces[%d].host.mac", i)},
			} {
				hw, err := net.ParseMAC(end.mac)
				if end.mac == "" || err != nil || len(hw) != 6 {
					continue // the mac rule reports what does not parse
				}
				if hw[0]&1 != 0 || bytes.Equal(hw, make([]byte, 6)) {
					errs = append(errs, c.errorAt(end.path, fmt.Sprintf("%s is not a unicast address (expected the lowest bit of the first byte clear, such as 02:42:ac:10:00:02)", end.mac)))
					continue
				}
				key := hw.String()
				if first, dup := seen[key]; dup {
					errs = append(errs, c.errorAt(end.path, fmt.Sprintf("%s is also used at %s (expected each hardware address once)", end.mac, first)))
					continue
				}
				seen[key] = place{c, end.path}
			}
		}
	}
	return errs
}

// checkVethSubnets: the two ends of a veth are one link, so for each family
// both ends have, each container address lies in the subnet of a host
// address (same network, same prefix length); otherwise neither end can
// reach the other without extra routes.
func checkVethSubnets(c *Container) Errors {
	var errs Errors
	all := containerAddresses(c)
	for _, a := range all {
		if a.host {
			continue
		}
		var hostSame []netip.Prefix
		for _, h := range all {
			if h.host && h.veth == a.veth && h.prefix.Addr().Is4() == a.prefix.Addr().Is4() {
				hostSame = append(hostSame, h.prefix)
			}
		}
		if len(hostSame) == 0 {
			continue
		}
		ok := false
		for _, h := range hostSame {
			ok = ok || h.Masked() == a.prefix.Masked()
		}
		if !ok {
			errs = append(errs, c.errorAt(a.at.path, fmt.Sprintf("%s is not in the host end's subnet %s (expected an address in %s)", a.prefix, hostSame[0].Masked(), hostSame[0].Masked())))
		}
	}
	return errs
}

// checkRoutes: a route has a gateway or a device; its gateway has the
// family of its destination and is reachable through one of the
// container's subnets (the kernel refuses RTM_NEWROUTE with "Nexthop has
// invalid gateway" otherwise), or is an IPv6 link-local address on the
// named device, which must not be lo (ip6_validate_gw: "Egress device not
// specified", "Egress device can not be loopback device for this route");
// dev names one of the container's interfaces; each destination is routed
// once, the default routes of interfaces' defaultRoute included (the main
// table keeps one route per destination and metric, and hutch one per
// destination); an interface with defaultRoute has, for each family of its
// host end, an address in the subnet of the host end's first address of
// that family, the gateway.
func checkRoutes(m *Manifest, c *Container) Errors {
	n := c.Spec.Network
	if n == nil {
		return nil
	}
	rc := newRouteCheck(m, c)
	for i, itf := range n.Interfaces {
		if itf.DefaultRoute {
			rc.defaultRoute(i, itf)
		}
	}
	for i, r := range n.Routes {
		rc.route(i, r)
	}
	return rc.errs
}

// routeCheck is what checkRoutes knows of one container's network.
type routeCheck struct {
	m *Manifest
	c *Container
	// inside numbers the container's devices: lo -1, its interfaces from
	// 0, then its ends of links.
	inside map[string]int
	// own are the container's subnets: its addresses, its link ends'
	// addresses, and the subnets of the networks it is on (an address
	// there may come from the network's pool).
	own []addrAt
	// dsts maps each routed destination to the path of the route or
	// defaultRoute that sets it.
	dsts map[netip.Prefix]string
	errs Errors
}

func newRouteCheck(m *Manifest, c *Container) *routeCheck {
	n := c.Spec.Network
	rc := &routeCheck{m: m, c: c, inside: map[string]int{"lo": -1}, dsts: map[netip.Prefix]string{}}
	for i, itf := range n.Interfaces {
		rc.inside[itf.Name] = i
	}
	for k, name := range linkEnds(m, c) {
		rc.inside[name] = len(n.Interfaces) + k
	}
	rc.own = append(containerAddresses(c), linkAddresses(m, c)...)
	for i, itf := range n.Interfaces {
		if net := m.network(itf.Network); net != nil {
			for _, s := range net.Spec.Subnets {
				if p, ok := subnetOf(s); ok {
					rc.own = append(rc.own, addrAt{prefix: p, at: place{c, fmt.Sprintf("spec.network.interfaces[%d].network", i)}, veth: i})
				}
			}
		}
	}
	return rc
}

// claim records that path routes dst, or reports the route or defaultRoute
// that already does, at the field at.
func (rc *routeCheck) claim(dst netip.Prefix, path, at string) {
	first, dup := rc.dsts[dst]
	switch {
	case !dup:
		rc.dsts[dst] = path
	case dst.Bits() == 0:
		rc.errs = append(rc.errs, rc.c.errorAt(at, fmt.Sprintf("a default %s route is also set by %s (expected one default route per family)", family(dst.Addr()), first)))
	default:
		rc.errs = append(rc.errs, rc.c.errorAt(at, fmt.Sprintf("a route to %s is also set by %s (expected one route per destination)", dst, first)))
	}
}

// defaultRoute checks interface i's defaultRoute: through a network's
// gateways (one route per subnet), or through the host end's first address
// of each family, which an address of the container's end must reach.
func (rc *routeCheck) defaultRoute(i int, itf Interface) {
	path := fmt.Sprintf("spec.network.interfaces[%d].defaultRoute", i)
	if itf.Network != "" {
		if net := rc.m.network(itf.Network); net != nil {
			for _, s := range net.Spec.Subnets {
				if p, ok := subnetOf(s); ok {
					rc.claim(anyRoute(p.Addr()), path, path)
				}
			}
		}
		return
	}
	var gws []netip.Prefix
	for _, h := range rc.own {
		if h.host && h.veth == i && !hasFamily(gws, h.prefix.Addr()) {
			gws = append(gws, h.prefix)
		}
	}
	if len(gws) == 0 {
		rc.errs = append(rc.errs, rc.c.errorAt(path, "the host end has no address to route through (expected host.addresses)"))
	}
	for _, gw := range gws {
		rc.claim(anyRoute(gw.Addr()), path, path)
		reached := false
		for _, a := range rc.own {
			reached = reached || (!a.host && a.veth == i && a.prefix.Masked().Contains(gw.Addr()))
		}
		if !reached {
			rc.errs = append(rc.errs, rc.c.errorAt(path, fmt.Sprintf("the default %s route goes via the host end's %s, and no address of %s is in %s (expected an address in %s in addresses)",
				family(gw.Addr()), gw.Addr(), itf.Name, gw.Masked(), gw.Masked())))
		}
	}
}

// route checks the manifest's route i: its device, that it has a gateway
// or a device, its gateway's family, its destination's uniqueness and that
// its gateway is reachable. What the field rules refuse is skipped.
func (rc *routeCheck) route(i int, r Route) {
	c := rc.c
	base := fmt.Sprintf("spec.network.routes[%d]", i)
	dst, isDefault, err := ParseRouteDst(r.To)
	if what, _ := checkRouteDst(r.To); what != "" || (err != nil && !isDefault) {
		return
	}
	dev := -2 // no dev given
	if r.Dev != "" {
		d, ok := rc.inside[r.Dev]
		if !ok {
			rc.errs = append(rc.errs, c.errorAt(base+".dev", fmt.Sprintf("no interface %q in this container (expected lo or one of spec.network.interfaces[].name)", r.Dev)))
			return
		}
		dev = d
	}
	var via netip.Addr
	if r.Via != "" {
		if via, err = netip.ParseAddr(r.Via); err != nil {
			return // the ip rule reports it
		}
	}
	if !via.IsValid() && r.Dev == "" {
		rc.errs = append(rc.errs, c.errorAt(base, "a route needs via or dev (expected a gateway address, an interface, or both)"))
		return
	}
	switch {
	case isDefault && via.IsValid():
		dst = anyRoute(via)
	case isDefault:
		dst = anyRoute(netip.IPv4Unspecified()) // a device route: IPv4's
	case via.IsValid() && dst.Addr().Is4() != via.Is4():
		rc.errs = append(rc.errs, c.errorAt(base+".via", fmt.Sprintf("gateway %s is not of the family of %s (expected an %s gateway)", via, r.To, family(dst.Addr()))))
		return
	}
	rc.claim(dst.Masked(), base, base+".to")
	if via.IsValid() {
		rc.gateway(base, via, dev)
	}
}

// gateway checks that route base's gateway via is reachable through dev
// (-2: any interface): in one of the container's subnets, or an IPv6
// link-local address on a named device that is not lo.
func (rc *routeCheck) gateway(base string, via netip.Addr, dev int) {
	c := rc.c
	linkLocal := via.Is6() && via.IsLinkLocalUnicast()
	switch {
	case linkLocal && dev == -1:
		rc.errs = append(rc.errs, c.errorAt(base+".dev", fmt.Sprintf("the kernel refuses a link-local gateway %s through lo (expected the interface the gateway is on)", via)))
		return
	case linkLocal && dev >= 0:
		return // fe80:: gateways are on the link of dev
	}
	reachable := false
	for _, a := range rc.own {
		if !a.host && (dev < -1 || a.veth == dev) && a.prefix.Masked().Contains(via) {
			reachable = true
		}
	}
	switch {
	case reachable:
	case linkLocal:
		rc.errs = append(rc.errs, c.errorAt(base+".via", fmt.Sprintf("link-local gateway %s without dev (expected dev: the interface the gateway is on)", via)))
	default:
		rc.errs = append(rc.errs, c.errorAt(base+".via", fmt.Sprintf("gateway %s is in none of the container's subnets (expected an address on the link of one of its interfaces)", via)))
	}
}

// anyRoute is the default route's destination of a's family: 0.0.0.0/0 or
// ::/0.
func anyRoute(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

// hasFamily reports whether one of ps has a's family.
func hasFamily(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Addr().Is4() == a.Is4() {
			return true
		}
	}
	return false
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
