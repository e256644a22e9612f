package plan

import (
	"fmt"
	"net/netip"
	"strconv"

	"hutch/spec"
)

// portTarget is where a container's published ports go: its first IPv4
// address, the interface it is on (inside), and the host-side interface
// that reaches it (a veth's host end, or a network's bridge) with the ID
// of that interface's resource.
type portTarget struct {
	addr     netip.Prefix
	egress   string
	egressID string
	// routed says the container has an IPv4 default route: it can answer
	// any client itself, which then keeps its own address.
	routed bool
}

// PortRuleName is the name of a published port's rule of container c:
// "c/port-tcp-8080[-HOSTIP]-in" (prerouting) or "-out" (output).
func PortRuleName(c string, p spec.Port, dir string) string {
	n := c + "/port-" + p.Protocol + "-" + strconv.Itoa(p.HostPort)
	if p.HostIP != "" {
		n += "-" + p.HostIP
	}
	return n + "-" + dir
}

// buildPorts makes the host resources of a container's published ports
// (spec.network.ports), all in hutch's nftables table:
//
//   - a dnat in prerouting, for connections that come to the host's own
//     addresses from elsewhere (another namespace, another machine);
//   - the same dnat in output, for the host's own connections, 127.0.0.1
//     included;
//   - a masquerade of connections from the host's own addresses (fib saddr
//     type local; of every connection when the container has no default
//     route to answer others), and route_localnet on the interface to the
//     container: a
//     packet from 127.0.0.1 rerouted to the container is otherwise dropped
//     as a martian, and the container could answer neither 127.0.0.1 nor a
//     host address it has no route to;
//   - a masquerade of connections from the container's own subnet to it
//     through the host address (hairpin): the answer would otherwise go
//     straight back over the link and miss the translation;
//   - the host's ip_forward, held while the container has ports.
func buildPorts(sc *spec.Container, t portTarget) ([]Resource, error) {
	n := sc.Spec.Network
	name := sc.Metadata.Name
	if len(n.Ports) == 0 {
		return nil, nil
	}
	if !t.addr.IsValid() {
		return nil, posErr(sc.Source, "spec.network.ports", "a published port needs an IPv4 address in the container (expected an interface with one)")
	}
	var out []Resource
	for i, p := range n.Ports {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		to := netip.AddrPortFrom(t.addr.Addr(), uint16(p.ContainerPort)).String()
		for _, chain := range []struct{ chain, dir string }{{NftPrerouting, "in"}, {NftOutput, "out"}} {
			r := &NftRule{Network: name, Name: PortRuleName(name, p, chain.dir), Chain: chain.chain,
				Proto: p.Protocol, DPort: p.HostPort, To: to, Verdict: NftDNAT}
			if p.HostIP == "" {
				r.LocalDst = true
			} else {
				a, err := netip.ParseAddr(p.HostIP)
				switch {
				case err != nil || !a.Is4():
					return nil, posErr(sc.Source, fmt.Sprintf("spec.network.ports[%d].hostIP", i), "%q is not an IPv4 address of the host (expected one, such as 127.0.0.1)", p.HostIP)
				case a.IsUnspecified():
					// 0.0.0.0 is every address, as validation (one
					// forward per port) and Docker read it: no packet
					// is ever addressed to 0.0.0.0 itself.
					r.LocalDst = true
				default:
					r.Dst = a.String()
				}
			}
			out = append(out, r)
		}
	}
	out = append(out,
		// Without a default route the container can answer only its own
		// subnet: then every forwarded connection is masqueraded.
		&NftRule{Network: name, Name: name + "/port-host", Chain: NftPostrouting, LocalSrc: t.routed, Dst: t.addr.Addr().String(), DNATed: true, Verdict: NftMasquerade},
		&NftRule{Network: name, Name: name + "/port-hairpin", Chain: NftPostrouting, Src: t.addr.Masked().String(), Dst: t.addr.Addr().String(), DNATed: true, Verdict: NftMasquerade},
		&Sysctl{Holder: name, Netns: HostNetns, Key: "net.ipv4.conf." + t.egress + ".route_localnet", Value: "1", Needs: []string{t.egressID}},
		&Sysctl{Holder: name, Netns: HostNetns, Key: "net.ipv4.ip_forward", Value: "1"},
	)
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
