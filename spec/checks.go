package spec

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
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
	var errs Errors
	inside := map[string]int{"lo": -1}
	for i, itf := range n.Interfaces {
		inside[itf.Name] = i
	}
	for k, name := range linkEnds(m, c) {
		inside[name] = len(n.Interfaces) + k
	}
	// The container's subnets: its addresses, its link ends' addresses,
	// and the subnets of the networks it is on (an address there may come
	// from the network's pool).
	own := append(containerAddresses(c), linkAddresses(m, c)...)
	for i, itf := range n.Interfaces {
		if net := m.network(itf.Network); net != nil {
			for _, s := range net.Spec.Subnets {
				if p, ok := subnetOf(s); ok {
					own = append(own, addrAt{prefix: p, at: place{c, fmt.Sprintf("spec.network.interfaces[%d].network", i)}, veth: i})
				}
			}
		}
	}
	// dsts maps each routed destination to the path of the route or
	// defaultRoute that sets it.
	dsts := map[netip.Prefix]string{}
	claim := func(dst netip.Prefix, path, at string) {
		first, dup := dsts[dst]
		switch {
		case !dup:
			dsts[dst] = path
		case dst.Bits() == 0:
			errs = append(errs, c.errorAt(at, fmt.Sprintf("a default %s route is also set by %s (expected one default route per family)", family(dst.Addr()), first)))
		default:
			errs = append(errs, c.errorAt(at, fmt.Sprintf("a route to %s is also set by %s (expected one route per destination)", dst, first)))
		}
	}
	for i, itf := range n.Interfaces {
		if !itf.DefaultRoute {
			continue
		}
		path := fmt.Sprintf("spec.network.interfaces[%d].defaultRoute", i)
		if itf.Network != "" {
			// Through the network's gateways: one route per subnet.
			if net := m.network(itf.Network); net != nil {
				for _, s := range net.Spec.Subnets {
					if p, ok := subnetOf(s); ok {
						claim(anyRoute(p.Addr()), path, path)
					}
				}
			}
			continue
		}
		// Through the host end's first address of each family.
		var gws []netip.Prefix
		for _, h := range own {
			if h.host && h.veth == i && !hasFamily(gws, h.prefix.Addr()) {
				gws = append(gws, h.prefix)
			}
		}
		if len(gws) == 0 {
			errs = append(errs, c.errorAt(path, "the host end has no address to route through (expected host.addresses)"))
		}
		for _, gw := range gws {
			claim(anyRoute(gw.Addr()), path, path)
			reached := false
			for _, a := range own {
				reached = reached || (!a.host && a.veth == i && a.prefix.Masked().Contains(gw.Addr()))
			}
			if !reached {
				errs = append(errs, c.errorAt(path, fmt.Sprintf("the default %s route goes via the host end's %s, and no address of %s is in %s (expected an address in %s in addresses)",
					family(gw.Addr()), gw.Addr(), itf.Name, gw.Masked(), gw.Masked())))
			}
		}
	}
	for i, r := range n.Routes {
		base := fmt.Sprintf("spec.network.routes[%d]", i)
		dst, isDefault, err := ParseRouteDst(r.To)
		if what, _ := checkRouteDst(r.To); what != "" || (err != nil && !isDefault) {
			continue
		}
		dev := -2
		if r.Dev != "" {
			d, ok := inside[r.Dev]
			if !ok {
				errs = append(errs, c.errorAt(base+".dev", fmt.Sprintf("no interface %q in this container (expected lo or one of spec.network.interfaces[].name)", r.Dev)))
				continue
			}
			dev = d
		}
		var via netip.Addr
		if r.Via != "" {
			if via, err = netip.ParseAddr(r.Via); err != nil {
				continue // the ip rule reports it
			}
		}
		if !via.IsValid() && r.Dev == "" {
			errs = append(errs, c.errorAt(base, "a route needs via or dev (expected a gateway address, an interface, or both)"))
			continue
		}
		switch {
		case isDefault && via.IsValid():
			dst = anyRoute(via)
		case isDefault:
			dst = anyRoute(netip.IPv4Unspecified()) // a device route: IPv4's
		case via.IsValid() && dst.Addr().Is4() != via.Is4():
			errs = append(errs, c.errorAt(base+".via", fmt.Sprintf("gateway %s is not of the family of %s (expected an %s gateway)", via, r.To, family(dst.Addr()))))
			continue
		}
		claim(dst.Masked(), base, base+".to")
		if !via.IsValid() {
			continue
		}
		linkLocal := via.Is6() && via.IsLinkLocalUnicast()
		switch {
		case linkLocal && dev == -1:
			errs = append(errs, c.errorAt(base+".dev", fmt.Sprintf("the kernel refuses a link-local gateway %s through lo (expected the interface the gateway is on)", via)))
			continue
		case linkLocal && dev >= 0:
			continue // fe80:: gateways are on the link of dev
		}
		reachable := false
		for _, a := range own {
			if !a.host && (dev < -1 || a.veth == dev) && a.prefix.Masked().Contains(via) {
				reachable = true
			}
		}
		switch {
		case reachable:
		case linkLocal:
			errs = append(errs, c.errorAt(base+".via", fmt.Sprintf("link-local gateway %s without dev (expected dev: the interface the gateway is on)", via)))
		default:
			errs = append(errs, c.errorAt(base+".via", fmt.Sprintf("gateway %s is in none of the container's subnets (expected an address on the link of one of its interfaces)", via)))
		}
	}
	return errs
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

// portFamilies says which families a container's published ports can go
// to: IPv4 when it has an IPv4 address, IPv6 when it has one that is not
// link-local (fe80::/10 is on every link: a dnat to it names no one
// interface), its interfaces' own or from a network's subnet. plan's
// portTargets picks the addresses by the same rule.
func portFamilies(m *Manifest, c *Container) (v4, v6 bool) {
	take := func(a netip.Addr) {
		switch {
		case a.Is4():
			v4 = true
		case !a.IsLinkLocalUnicast():
			v6 = true
		}
	}
	for _, a := range containerAddresses(c) {
		if !a.host {
			take(a.prefix.Addr())
		}
	}
	for _, itf := range c.Spec.Network.Interfaces {
		if net := m.network(itf.Network); net != nil {
			for _, s := range net.Spec.Subnets {
				if p, ok := subnetOf(s); ok {
					take(p.Addr())
				}
			}
		}
	}
	return v4, v6
}

// checkPorts: a port forward needs an address in the container to forward
// to, of the family of its hostIP when one is given. ::1 is refused: the
// kernel routes a loopback destination only through lo (rt6_need_strict,
// net/ipv6/route.c), so the container's answer, translated back to ::1,
// is dropped on the way in, and IPv6 has no route_localnet to change that
// (docs/labs.md#published-ports).
func checkPorts(m *Manifest, c *Container) Errors {
	n := c.Spec.Network
	if n == nil || len(n.Ports) == 0 {
		return nil
	}
	v4, v6 := portFamilies(m, c)
	if !v4 && !v6 {
		return Errors{c.errorAt("spec.network.ports", "a port forward needs an address in the container (expected an interface with an IPv4 or a non-link-local IPv6 address, or on a network with a subnet)")}
	}
	var errs Errors
	for i, p := range n.Ports {
		a, err := netip.ParseAddr(p.HostIP)
		if p.HostIP == "" || err != nil {
			continue // none, or not an address (the ip rule says so)
		}
		path := fmt.Sprintf("spec.network.ports[%d].hostIP", i)
		switch {
		case a.Is4In6():
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%q is an IPv4-mapped IPv6 address (expected the IPv4 address itself, %s)", p.HostIP, a.Unmap())))
		case a.Is6() && a.IsLoopback():
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%q cannot be forwarded: the kernel routes the answer to ::1 only through lo, and IPv6 has no route_localnet (expected 127.0.0.1, another address of the host, or none for all of them)", p.HostIP)))
		case a.Is6() && a.IsLinkLocalUnicast():
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%q is link-local, an address of one link and not of the host (expected a global or unique local address of the host, or none for all of them)", p.HostIP)))
		case a.Is4() && !v4:
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%q is an IPv4 address, but the container has none to forward to (expected an IPv6 address of the host, or none)", p.HostIP)))
		case a.Is6() && !v6:
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%q is an IPv6 address, but the container has no IPv6 address to forward to, link-local ones aside (expected an IPv4 address of the host, or none)", p.HostIP)))
		}
	}
	return errs
}

// HostIPsOverlap says whether two published ports' hostIPs take a common
// address of the host: none ("") is every address of both families,
// 0.0.0.0 every IPv4 one and :: every IPv6 one, as Docker reads them.
// Unparsable addresses overlap nothing.
func HostIPsOverlap(a, b string) bool {
	if a == "" || b == "" {
		return true
	}
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil || x.Is4() != y.Is4() {
		return false
	}
	return x.IsUnspecified() || y.IsUnspecified() || x == y
}

// checkHostPorts: one host port and protocol is forwarded to one container
// on any one address of the host (HostIPsOverlap).
func checkHostPorts(m *Manifest) Errors {
	var errs Errors
	type forward struct {
		port Port
		at   place
	}
	var seen []forward
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		for i, p := range c.Spec.Network.Ports {
			if p.HostPort < 1 || p.HostPort > 65535 {
				continue
			}
			if _, err := netip.ParseAddr(p.HostIP); p.HostIP != "" && err != nil {
				continue // not an address (the ip rule says so)
			}
			f := forward{p, place{c, fmt.Sprintf("spec.network.ports[%d].hostPort", i)}}
			for _, s := range seen {
				if s.port.HostPort == p.HostPort && proto(s.port) == proto(p) && HostIPsOverlap(s.port.HostIP, p.HostIP) {
					errs = append(errs, c.errorAt(f.at.path, fmt.Sprintf("host port %d/%s is also forwarded at %s (expected each host port once)", p.HostPort, proto(p), s.at)))
					break
				}
			}
			seen = append(seen, f)
		}
	}
	return errs
}

func proto(p Port) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// defaultCPUPeriod is the CFS period the kernel starts a cgroup with, and
// the one plan uses when only cpu is given; minCPUQuota is the smallest
// quota the kernel takes (1 ms).
const (
	defaultCPUPeriod = 100000
	minCPUQuota      = 1000
)

// checkResources: cpu and cpuQuota both set the CFS quota, so only one may
// be given, and cpu must give a quota the kernel takes; memorySwap (memory plus swap, as docker's --memory-swap) is at
// least memory, and needs it.
func checkResources(c *Container) Errors {
	var errs Errors
	r := c.Spec.Resources
	if r.CPU != "" && r.CPUQuota != 0 {
		errs = append(errs, c.errorAt("spec.resources.cpuQuota", "cpu and cpuQuota both set the CPU quota (expected one of them)"))
	} else if milli, err := ParseCPU(r.CPU); err == nil {
		// cpu becomes quota = cores x period; the kernel refuses a quota
		// below 1 ms (EINVAL from cpu.cfs_quota_us and cpu.max).
		period := int64(defaultCPUPeriod)
		if r.CPUPeriod >= 1000 && r.CPUPeriod <= 1000000 {
			period = int64(r.CPUPeriod)
		}
		if quota := milli * period / 1000; quota < minCPUQuota {
			need := (minCPUQuota*1000 + period - 1) / period
			errs = append(errs, c.errorAt("spec.resources.cpu", fmt.Sprintf("%s gives a quota of %d us per %d us period (expected at least %dm at this period, the kernel's smallest quota being 1000 us)", r.CPU, quota, period, need)))
		}
	}
	if r.MemorySwap == "" || r.MemorySwap == "-1" {
		return errs
	}
	swap, err := ParseMemory(r.MemorySwap)
	if err != nil {
		return errs
	}
	if r.Memory == "" {
		return append(errs, c.errorAt("spec.resources.memorySwap", "memorySwap without memory (expected memory as well)"))
	}
	mem, err := ParseMemory(r.Memory)
	if err != nil || mem == 0 {
		return errs
	}
	if swap < mem {
		errs = append(errs, c.errorAt("spec.resources.memorySwap", fmt.Sprintf("%s (%d bytes) is below memory %s (%d bytes) (expected memory plus swap, at least memory, or -1)", r.MemorySwap, swap, r.Memory, mem)))
	}
	return errs
}

// checkMounts: a bind mount has a source on the host, a tmpfs has none and
// is the only kind with a size and mode; a destination is mounted once.
func checkMounts(c *Container) Errors {
	var errs Errors
	seen := map[string]string{}
	for i, mt := range c.Spec.Mounts {
		base := fmt.Sprintf("spec.mounts[%d]", i)
		switch mt.Type {
		case "bind":
			if mt.Source == "" {
				errs = append(errs, c.errorAt(base+".source", "missing (expected the absolute path of the host file or folder to bind)"))
			}
			if mt.Size != "" {
				errs = append(errs, c.errorAt(base+".size", "a bind mount has no size (expected size only with type tmpfs)"))
			}
			if mt.Mode != "" {
				errs = append(errs, c.errorAt(base+".mode", "a bind mount has no mode (expected mode only with type tmpfs)"))
			}
		case "tmpfs":
			if mt.Source != "" {
				errs = append(errs, c.errorAt(base+".source", "a tmpfs has no source (expected no source with type tmpfs)"))
			}
		}
		if what, _ := checkAbsPath(mt.Destination); what != "" {
			continue
		}
		if mt.Destination == "/" {
			errs = append(errs, c.errorAt(base+".destination", `"/" is the container's root (expected a path below it)`))
			continue
		}
		if first, dup := seen[mt.Destination]; dup {
			errs = append(errs, c.errorAt(base+".destination", fmt.Sprintf("%s is also mounted by %s (expected each destination once)", mt.Destination, first)))
			continue
		}
		seen[mt.Destination] = base
	}
	return errs
}

// checkRlimits: the soft limit is at most the hard one (setrlimit(2) fails
// with EINVAL otherwise), and each resource is set once.
func checkRlimits(c *Container) Errors {
	var errs Errors
	seen := map[string]string{}
	for i, rl := range c.Spec.Process.Rlimits {
		base := fmt.Sprintf("spec.process.rlimits[%d]", i)
		if rl.Soft > rl.Hard {
			errs = append(errs, c.errorAt(base+".soft", fmt.Sprintf("soft limit %d is above the hard limit %d (expected soft <= hard)", rl.Soft, rl.Hard)))
		}
		n := RlimitName(rl.Type)
		if n == "" {
			continue
		}
		if first, dup := seen[n]; dup {
			errs = append(errs, c.errorAt(base+".type", fmt.Sprintf("%s is also set by %s (expected each resource once)", n, first)))
			continue
		}
		seen[n] = base
	}
	return errs
}

// checkCapabilities: a capability both added and dropped is a contradiction
// (dropping ALL and adding some back is not).
func checkCapabilities(c *Container) Errors {
	var errs Errors
	caps := c.Spec.Security.Capabilities
	dropped := map[string]bool{}
	for _, d := range caps.Drop {
		dropped[CapabilityName(d)] = true
	}
	for i, a := range caps.Add {
		n := CapabilityName(a)
		if n != "" && dropped[n] {
			errs = append(errs, c.errorAt(fmt.Sprintf("spec.security.capabilities.add[%d]", i), fmt.Sprintf("%s is both added and dropped (expected it in one list)", n)))
		}
	}
	return errs
}

// checkIDMappings: the ranges of a user namespace map are disjoint on both
// sides and stay within 32-bit ids; the kernel refuses a uid_map write with
// overlapping ranges (EINVAL, kernel/user_namespace.c mappings_overlap).
func checkIDMappings(c *Container) Errors {
	u := c.Spec.Security.UserNamespace
	if u == nil {
		return nil
	}
	var errs Errors
	for _, set := range []struct {
		name string
		maps []IDMapping
	}{{"uidMappings", u.UIDMappings}, {"gidMappings", u.GIDMappings}} {
		for i, a := range set.maps {
			base := fmt.Sprintf("spec.security.userNamespace.%s[%d]", set.name, i)
			if a.Size == 0 {
				continue
			}
			if uint64(a.ContainerID)+uint64(a.Size) > 1<<32 || uint64(a.HostID)+uint64(a.Size) > 1<<32 {
				errs = append(errs, c.errorAt(base+".size", fmt.Sprintf("size %d runs past the last id 4294967295 (expected a smaller size)", a.Size)))
				continue
			}
			for j, b := range set.maps[:i] {
				if b.Size == 0 {
					continue
				}
				other := fmt.Sprintf("%s[%d]", set.name, j)
				if overlaps(a.ContainerID, a.Size, b.ContainerID, b.Size) {
					errs = append(errs, c.errorAt(base+".containerID", fmt.Sprintf("container ids %s overlap %s of %s (expected disjoint ranges)", idRange(a.ContainerID, a.Size), idRange(b.ContainerID, b.Size), other)))
					break
				}
				if overlaps(a.HostID, a.Size, b.HostID, b.Size) {
					errs = append(errs, c.errorAt(base+".hostID", fmt.Sprintf("host ids %s overlap %s of %s (expected disjoint ranges)", idRange(a.HostID, a.Size), idRange(b.HostID, b.Size), other)))
					break
				}
			}
		}
	}
	return errs
}

// checkUserMapped: in a user namespace the process's uid, gid and
// supplementary groups exist only if a mapping covers them; setresuid(2)
// and setgroups(2) fail with EINVAL for an unmapped id.
func checkUserMapped(c *Container) Errors {
	u := c.Spec.Security.UserNamespace
	p := c.Spec.Process
	if u == nil || len(u.UIDMappings) == 0 || len(u.GIDMappings) == 0 {
		return nil
	}
	for _, m := range append(append([]IDMapping(nil), u.UIDMappings...), u.GIDMappings...) {
		if m.Size == 0 {
			return nil // the size rule reports the empty mapping
		}
	}
	var uid, gid uint64
	if p.User != "" {
		if what, _ := checkUIDGID(p.User); what != "" {
			return nil
		}
		us, gs, _ := strings.Cut(p.User, ":")
		uid, _ = strconv.ParseUint(us, 10, 32)
		if gs != "" {
			gid, _ = strconv.ParseUint(gs, 10, 32)
		}
	}
	var errs Errors
	userPath := "spec.process.user"
	if p.User == "" {
		userPath = "spec.security.userNamespace.uidMappings"
	}
	if !mapped(u.UIDMappings, uint32(uid)) {
		errs = append(errs, c.errorAt(userPath, fmt.Sprintf("uid %d of the process is not mapped in the user namespace (expected a uidMappings range that holds it)", uid)))
	}
	if !mapped(u.GIDMappings, uint32(gid)) {
		path := userPath
		if p.User == "" {
			path = "spec.security.userNamespace.gidMappings"
		}
		errs = append(errs, c.errorAt(path, fmt.Sprintf("gid %d of the process is not mapped in the user namespace (expected a gidMappings range that holds it)", gid)))
	}
	for i, g := range p.AdditionalGids {
		if !mapped(u.GIDMappings, g) {
			errs = append(errs, c.errorAt(fmt.Sprintf("spec.process.additionalGids[%d]", i), fmt.Sprintf("gid %d is not mapped in the user namespace (expected a gidMappings range that holds it)", g)))
		}
	}
	return errs
}

func mapped(ms []IDMapping, id uint32) bool {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

func idRange(start, size uint32) string {
	return fmt.Sprintf("%d-%d", start, uint64(start)+uint64(size)-1)
}

// checkRootfsPaths: each path of the rootfs is written by one entry of
// copy, files or dirs.
func checkRootfsPaths(c *Container) Errors {
	var errs Errors
	seen := map[string]string{}
	add := func(p, path string) {
		if what, _ := checkAbsPath(p); what != "" {
			return
		}
		if first, dup := seen[p]; dup {
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%s is also written by %s (expected each rootfs path once)", p, first)))
			return
		}
		seen[p] = path
	}
	r := c.Spec.Rootfs
	for i, f := range r.Files {
		add(f.Path, fmt.Sprintf("spec.rootfs.files[%d].path", i))
	}
	for i, d := range r.Dirs {
		add(d.Path, fmt.Sprintf("spec.rootfs.dirs[%d].path", i))
	}
	for i, cp := range r.Copy {
		to, path := cp.To, fmt.Sprintf("spec.rootfs.copy[%d].to", i)
		if to == "" {
			to, path = cp.From, fmt.Sprintf("spec.rootfs.copy[%d].from", i)
		}
		add(to, path)
	}
	return errs
}
