package spec

// The checks of published ports (spec.network.ports).

import (
	"fmt"
	"net/netip"
)

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
