package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"hutch/spec"
)

// portTarget is where a container's published ports of one family go: its
// first address of that family (IPv6: the first that is not link-local,
// as spec's portFamilies counts them), the interface it is on (inside),
// and the host-side interface that reaches it (a veth's host end, or a
// network's bridge) with the ID of that interface's resource.
type portTarget struct {
	addr     netip.Prefix
	egress   string
	egressID string
	// routed says the container has a default route of the family: it
	// can answer any client itself, which then keeps its own address.
	routed bool
}

// portFamily is the index of a's family in a container's port targets: 0
// for IPv4, 1 for IPv6, -1 for an address ports never go to (link-local).
func portFamily(a netip.Addr) int {
	switch {
	case a.Is4():
		return 0
	case a.IsLinkLocalUnicast():
		return -1
	}
	return 1
}

// PortRuleName is the name of a published port's rule of container c:
// "c/port-tcp-8080[-HOSTIP]-DIR", DIR "in" (prerouting) or "out" (output)
// for IPv4, "in6" or "out6" for IPv6.
func PortRuleName(c string, p spec.Port, dir string) string {
	n := c + "/port-" + p.Protocol + "-" + strconv.Itoa(p.HostPort)
	if p.HostIP != "" {
		n += "-" + p.HostIP
	}
	return n + "-" + dir
}

// PortRule is what the name of a published port's rule says.
type PortRule struct {
	Container string
	Proto     string
	HostPort  int
	// HostIP is as the manifest wrote it: "" for every address.
	HostIP string
	Dir    string
}

// ParsePortRuleName reads a name PortRuleName made; ok is false for the
// name of any other rule (a network's, or a container's masquerades).
func ParsePortRuleName(name string) (r PortRule, ok bool) {
	c, rest, _ := strings.Cut(name, "/")
	rest, found := strings.CutPrefix(rest, "port-")
	f := strings.Split(rest, "-")
	if !found || len(f) < 3 || len(f) > 4 || (f[0] != "tcp" && f[0] != "udp") {
		return PortRule{}, false
	}
	port, err := strconv.Atoi(f[1])
	if err != nil {
		return PortRule{}, false
	}
	r = PortRule{Container: c, Proto: f[0], HostPort: port, Dir: f[len(f)-1]}
	if len(f) == 4 {
		r.HostIP = f[2]
	}
	switch r.Dir {
	case "in", "out", "in6", "out6":
		return r, true
	}
	return PortRule{}, false
}

// Overlaps says whether two published ports take a common port of the
// host: the same protocol and port on a common address
// (spec.HostIPsOverlap: no hostIP is every address of both families).
func (r PortRule) Overlaps(o PortRule) bool {
	return r.Proto == o.Proto && r.HostPort == o.HostPort && spec.HostIPsOverlap(r.HostIP, o.HostIP)
}

// buildPorts makes the host resources of a container's published ports
// (spec.network.ports), all in hutch's nftables table. A port without
// hostIP goes to the container's IPv4 address and to its IPv6 one, as it
// has them; a port on an IPv4 hostIP (0.0.0.0: every IPv4 address) to the
// IPv4 one only, and on an IPv6 hostIP (::: every IPv6 address) to the
// IPv6 one only. For each family:
//
//   - a dnat in prerouting, for connections that come to the host's own
//     addresses from elsewhere (another namespace, another machine);
//   - the same dnat in output, for the host's own connections, 127.0.0.1
//     included; for IPv6, ::1 excluded (ip6 daddr != ::1, as Docker's
//     ip6tables rules): the kernel routes a loopback destination only
//     through lo (rt6_need_strict, net/ipv6/route.c), so the container's
//     answer, translated back to ::1, would be dropped as it comes in and
//     the connection would hang; left alone it is refused at once;
//   - a masquerade of connections from the host's own addresses (fib saddr
//     type local; of every connection when the container has no default
//     route of the family to answer others); for IPv4 also route_localnet
//     on the interface to the container: a packet from 127.0.0.1 rerouted
//     to the container is otherwise dropped as a martian, and the
//     container could answer neither 127.0.0.1 nor a host address it has
//     no route to;
//   - a masquerade of connections from the container's own subnet to it
//     through the host address (hairpin): the answer would otherwise go
//     straight back over the link and miss the translation;
//   - the host's forwarding (net.ipv4.ip_forward,
//     net.ipv6.conf.all.forwarding), held while the container has ports.
func buildPorts(sc *spec.Container, t [2]portTarget) ([]Resource, error) {
	n := sc.Spec.Network
	name := sc.Metadata.Name
	if len(n.Ports) == 0 {
		return nil, nil
	}
	if !t[0].addr.IsValid() && !t[1].addr.IsValid() {
		return nil, posErr(sc.Source, "spec.network.ports", "a published port needs an address in the container (expected an interface with an IPv4 or a non-link-local IPv6 address)")
	}
	var out []Resource
	var used [2]bool
	for i, p := range n.Ports {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		// fams are the families the port goes to; dst the host address
		// it is on (none: every local address of the family).
		fams := []int{0, 1}
		var dst netip.Addr
		if p.HostIP != "" {
			path := fmt.Sprintf("spec.network.ports[%d].hostIP", i)
			a, err := netip.ParseAddr(p.HostIP)
			if err != nil || a.Is4In6() || (a.Is6() && (a.IsLoopback() || a.IsLinkLocalUnicast())) {
				return nil, posErr(sc.Source, path, "%q is not an address of the host a port can be published on (hutch validate says why)", p.HostIP)
			}
			fam := portFamily(a)
			if !t[fam].addr.IsValid() {
				return nil, posErr(sc.Source, path, "%q is an IPv%d address, but the container has none to forward to", p.HostIP, 4+2*fam)
			}
			fams = []int{fam}
			// 0.0.0.0 and :: are every address of their family, as
			// validation (one forward per port) and Docker read them:
			// no packet is ever addressed to them.
			if !a.IsUnspecified() {
				dst = a
			}
		}
		for _, fam := range fams {
			if !t[fam].addr.IsValid() {
				continue // no hostIP, and no address of this family
			}
			used[fam] = true
			to := netip.AddrPortFrom(t[fam].addr.Addr(), uint16(p.ContainerPort)).String()
			suffix := []string{"", "6"}[fam]
			for _, chain := range []struct{ chain, dir string }{{NftPrerouting, "in"}, {NftOutput, "out"}} {
				r := &NftRule{Network: name, Name: PortRuleName(name, p, chain.dir+suffix), Chain: chain.chain,
					Proto: p.Protocol, DPort: p.HostPort, To: to, Verdict: NftDNAT}
				if dst.IsValid() {
					r.Dst = dst.String()
				} else {
					r.LocalDst = true
					if fam == 1 && chain.chain == NftOutput {
						r.NotDst = netip.IPv6Loopback().String()
					}
				}
				out = append(out, r)
			}
		}
	}
	if used[0] {
		a := t[0]
		out = append(out,
			// Without a default route the container can answer only its own
			// subnet: then every forwarded connection is masqueraded.
			&NftRule{Network: name, Name: name + "/port-host", Chain: NftPostrouting, LocalSrc: a.routed, Dst: a.addr.Addr().String(), DNATed: true, Verdict: NftMasquerade},
			&NftRule{Network: name, Name: name + "/port-hairpin", Chain: NftPostrouting, Src: a.addr.Masked().String(), Dst: a.addr.Addr().String(), DNATed: true, Verdict: NftMasquerade},
			&Sysctl{Holder: name, Netns: HostNetns, Key: "net.ipv4.conf." + a.egress + ".route_localnet", Value: "1", Needs: []string{a.egressID}},
			&Sysctl{Holder: name, Netns: HostNetns, Key: "net.ipv4.ip_forward", Value: "1"},
		)
	}
	if used[1] {
		a := t[1]
		out = append(out,
			&NftRule{Network: name, Name: name + "/port-host6", Chain: NftPostrouting, LocalSrc: a.routed, Dst: a.addr.Addr().String(), DNATed: true, Verdict: NftMasquerade},
			&NftRule{Network: name, Name: name + "/port-hairpin6", Chain: NftPostrouting, Src: a.addr.Masked().String(), Dst: a.addr.Addr().String(), DNATed: true, Verdict: NftMasquerade},
			// Setting all.forwarding sets every interface's forwarding
			// (addrconf_fixup_forwarding), and an interface that forwards
			// ignores router advertisements unless its accept_ra is 2.
			&Sysctl{Holder: name, Netns: HostNetns, Key: "net.ipv6.conf.all.forwarding", Value: "1"},
		)
	}
	return out, nil
}

// hostSide says whether r is a host-side object the container's process
// does not wait for: a published port's rules and the host parameters
// they hold.
func hostSide(r Resource) bool {
	switch r := r.(type) {
	case *NftRule:
		return true
	case *Sysctl:
		return r.Netns == HostNetns
	}
	return false
}
