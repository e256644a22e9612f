package plan

import (
	"sort"
	"strings"
	"testing"

	"hutch/spec"
)

// A published port: dnat rules in prerouting and output, the masquerade
// of host sources (of every source when the container has no default
// route), the hairpin masquerade, route_localnet on the host side of the
// container's link and the host's forwarding, all the container's.
func TestPublishedPortResources(t *testing.T) {
	d, err := Build(parse(t, doc("a", network, "    ports:\n      - {hostPort: 8080, containerPort: 80}\n      - {hostPort: 5353, containerPort: 53, protocol: udp, hostIP: 127.0.0.1}")), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range find[*NftRule](d.Container("a")) {
		got = append(got, r.Name+" "+r.Chain+" "+r.Proto+" "+r.To+" "+r.Dst+" "+r.Verdict)
		if r.Name == "a/port-host" && r.LocalSrc {
			t.Errorf("a container without a default route: only host sources masqueraded")
		}
	}
	sort.Strings(got)
	want := []string{
		"a/port-hairpin postrouting   10.0.0.2 masquerade",
		"a/port-host postrouting   10.0.0.2 masquerade",
		"a/port-tcp-8080-in prerouting tcp 10.0.0.2:80  dnat",
		"a/port-tcp-8080-out output tcp 10.0.0.2:80  dnat",
		"a/port-udp-5353-127.0.0.1-in prerouting udp 10.0.0.2:53 127.0.0.1 dnat",
		"a/port-udp-5353-127.0.0.1-out output udp 10.0.0.2:53 127.0.0.1 dnat",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var keys []string
	for _, s := range find[*Sysctl](d.Container("a")) {
		keys = append(keys, s.ID()+"="+s.Value+" needs "+strings.Join(s.Needs, ","))
	}
	if strings.Join(keys, "; ") != "sysctl/host/net.ipv4.conf.h0.route_localnet/a=1 needs veth/h0; sysctl/host/net.ipv4.ip_forward/a=1 needs " {
		t.Errorf("sysctls: %v", keys)
	}
	// With a default route, clients keep their addresses: only the host's
	// own are masqueraded.
	routed := strings.Replace(network, "        host:", "        defaultRoute: true\n        host:", 1)
	d, err = Build(parse(t, doc("a", routed, "    ports:\n      - {hostPort: 8080, containerPort: 80}")), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range find[*NftRule](d.Container("a")) {
		if r.Name == "a/port-host" && !r.LocalSrc {
			t.Errorf("a routed container: every source masqueraded")
		}
	}
	// A container with only link-local addresses has nothing to publish to.
	ll := strings.NewReplacer("10.0.0.2/24", "fe80::2/64", "10.0.0.1/24", "fe80::1/64").Replace(network)
	if _, err := Build(parse(t, doc("a", ll, "    ports:\n      - {hostPort: 8080, containerPort: 80}")), DefaultOptions()); err == nil || !strings.Contains(err.Error(), "needs an address in the container") {
		t.Errorf("ports without an address but link-local ones: %v", err)
	}
}

// portRules lists a container's rules as "name chain [proto] [to=]
// [dst=] [notDst=] [localDst] [localSrc] [src=] verdict", sorted.
func portRules(t *testing.T, c *Container) []string {
	t.Helper()
	var got []string
	for _, r := range find[*NftRule](c) {
		f := []string{r.Name, r.Chain, r.Proto}
		for _, kv := range [][2]string{{"to=", r.To}, {"dst=", r.Dst}, {"notDst=", r.NotDst}, {"src=", r.Src}} {
			if kv[1] != "" {
				f = append(f, kv[0]+kv[1])
			}
		}
		if r.LocalDst {
			f = append(f, "localDst")
		}
		if r.LocalSrc {
			f = append(f, "localSrc")
		}
		got = append(got, strings.Join(strings.Fields(strings.Join(append(f, r.Verdict), " ")), " "))
	}
	sort.Strings(got)
	return got
}

func sysctls(c *Container) string {
	var keys []string
	for _, s := range find[*Sysctl](c) {
		keys = append(keys, s.ID()+"="+s.Value)
	}
	sort.Strings(keys)
	return strings.Join(keys, "; ")
}

// Published ports over IPv6, as Docker's ip6tables rules: an IPv6-only
// container gets the dnat to its IPv6 address in prerouting and output
// (output leaving ::1 alone: the kernel cannot route the answer back to
// it), the masquerades of host sources and of its own subnet (hairpin),
// and the host's IPv6 forwarding; nothing of IPv4 (route_localnet,
// ip_forward). The old code refused it ("needs an IPv4 address").
func TestPublishedPortIPv6(t *testing.T) {
	v6 := strings.NewReplacer("10.0.0.2/24", "fd00:5::2/64", "10.0.0.1/24", "fd00:5::1/64").Replace(network)
	d, err := Build(parse(t, doc("a", v6, "    ports:\n      - {hostPort: 8080, containerPort: 80}\n      - {hostPort: 5353, containerPort: 53, protocol: udp, hostIP: \"fd00:5::1\"}\n      - {hostPort: 8443, containerPort: 443, hostIP: \"::\"}")), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a/port-hairpin6 postrouting dst=fd00:5::2 src=fd00:5::/64 masquerade",
		"a/port-host6 postrouting dst=fd00:5::2 masquerade",
		"a/port-tcp-8080-in6 prerouting tcp to=[fd00:5::2]:80 localDst dnat",
		"a/port-tcp-8080-out6 output tcp to=[fd00:5::2]:80 notDst=::1 localDst dnat",
		"a/port-tcp-8443-::-in6 prerouting tcp to=[fd00:5::2]:443 localDst dnat",
		"a/port-tcp-8443-::-out6 output tcp to=[fd00:5::2]:443 notDst=::1 localDst dnat",
		"a/port-udp-5353-fd00:5::1-in6 prerouting udp to=[fd00:5::2]:53 dst=fd00:5::1 dnat",
		"a/port-udp-5353-fd00:5::1-out6 output udp to=[fd00:5::2]:53 dst=fd00:5::1 dnat",
	}
	if got := portRules(t, d.Container("a")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := sysctls(d.Container("a")); got != "sysctl/host/net.ipv6.conf.all.forwarding/a=1" {
		t.Errorf("sysctls: %s", got)
	}
}

// A dual-stack container: a port without hostIP goes to both addresses
// (the IPv4 rules exactly as for an IPv4-only container), 0.0.0.0 to the
// IPv4 one only and :: to the IPv6 one only; with an IPv6 default route
// only the host's own IPv6 sources are masqueraded. A link-local address
// is never a target: the ULA after it is.
func TestPublishedPortDualStack(t *testing.T) {
	dual := strings.NewReplacer("[10.0.0.2/24]", "[10.0.0.2/24, \"fe80::2/64\", \"fd00:5::2/64\"]",
		"[10.0.0.1/24]", "[10.0.0.1/24, \"fd00:5::1/64\"]").Replace(network) + "\n    routes:\n      - {to: default, via: \"fd00:5::1\"}"
	d, err := Build(parse(t, doc("a", dual, "    ports:\n      - {hostPort: 8080, containerPort: 80}\n      - {hostPort: 9090, containerPort: 90, hostIP: 0.0.0.0}\n      - {hostPort: 9090, containerPort: 91, hostIP: \"::\"}")), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a/port-hairpin postrouting dst=10.0.0.2 src=10.0.0.0/24 masquerade",
		"a/port-hairpin6 postrouting dst=fd00:5::2 src=fd00:5::/64 masquerade",
		"a/port-host postrouting dst=10.0.0.2 masquerade",
		"a/port-host6 postrouting dst=fd00:5::2 localSrc masquerade",
		"a/port-tcp-8080-in prerouting tcp to=10.0.0.2:80 localDst dnat",
		"a/port-tcp-8080-in6 prerouting tcp to=[fd00:5::2]:80 localDst dnat",
		"a/port-tcp-8080-out output tcp to=10.0.0.2:80 localDst dnat",
		"a/port-tcp-8080-out6 output tcp to=[fd00:5::2]:80 notDst=::1 localDst dnat",
		"a/port-tcp-9090-0.0.0.0-in prerouting tcp to=10.0.0.2:90 localDst dnat",
		"a/port-tcp-9090-0.0.0.0-out output tcp to=10.0.0.2:90 localDst dnat",
		"a/port-tcp-9090-::-in6 prerouting tcp to=[fd00:5::2]:91 localDst dnat",
		"a/port-tcp-9090-::-out6 output tcp to=[fd00:5::2]:91 notDst=::1 localDst dnat",
	}
	if got := portRules(t, d.Container("a")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := sysctls(d.Container("a")), "sysctl/host/net.ipv4.conf.h0.route_localnet/a=1; sysctl/host/net.ipv4.ip_forward/a=1; sysctl/host/net.ipv6.conf.all.forwarding/a=1"; got != want {
		t.Errorf("sysctls: %s\nwant %s", got, want)
	}
	// Only :: ports: nothing of IPv4 is made.
	d, err = Build(parse(t, doc("a", dual, "    ports:\n      - {hostPort: 9090, containerPort: 91, hostIP: \"::\"}")), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := sysctls(d.Container("a")); got != "sysctl/host/net.ipv6.conf.all.forwarding/a=1" {
		t.Errorf("sysctls of a :: port: %s", got)
	}
	// hostIPs of a family the container lacks are refused at their line
	// (validation refuses them first).
	for _, tc := range []struct{ addrs, hostIP, want string }{
		{"[10.0.0.2/24]", "\"::\"", "is an IPv6 address, but the container has none"},
		{"[\"fd00:5::2/64\"]", "127.0.0.1", "is an IPv4 address, but the container has none"},
		{"[10.0.0.2/24, \"fd00:5::2/64\"]", "\"::1\"", "not an address of the host a port can be published on"},
	} {
		n := strings.NewReplacer("[10.0.0.2/24]", tc.addrs, "[10.0.0.1/24]", "[10.0.0.1/24, \"fd00:5::1/64\"]").Replace(network)
		_, err := Build(parse(t, doc("a", n, "    ports:\n      - {hostPort: 9090, containerPort: 91, hostIP: "+tc.hostIP+"}")), DefaultOptions())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "spec.network.ports[0].hostIP") {
			t.Errorf("hostIP %s for addresses %s: %v, want %q", tc.hostIP, tc.addrs, err, tc.want)
		}
	}
}

// A container on a network with both subnets publishes to both IPAM
// addresses; its hairpins masquerade each subnet.
func TestPublishedPortOnDualStackNetwork(t *testing.T) {
	m := parseLab(t, labnet, onNet("web", "    ports:\n      - {hostPort: 8080, containerPort: 8000}"))
	d, err := Build(m, Options{StateRoot: "/s"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(portRules(t, d.Container("web")), "\n")
	for _, w := range []string{
		"web/port-tcp-8080-in prerouting tcp to=10.89.0.2:8000 localDst dnat",
		"web/port-tcp-8080-in6 prerouting tcp to=[fd89::2]:8000 localDst dnat",
		"web/port-tcp-8080-out6 output tcp to=[fd89::2]:8000 notDst=::1 localDst dnat",
		"web/port-hairpin6 postrouting dst=fd89::2 src=fd89::/64 masquerade",
		"web/port-host6 postrouting dst=fd89::2 localSrc masquerade",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("no rule %q in\n%s", w, got)
		}
	}
}

// The names of port rules read back; other rules' names are not ports'.
func TestParsePortRuleName(t *testing.T) {
	for _, p := range []spec.Port{
		{HostPort: 8080, Protocol: "tcp"},
		{HostPort: 53, Protocol: "udp", HostIP: "127.0.0.1"},
		{HostPort: 443, Protocol: "tcp", HostIP: "::"},
		{HostPort: 1, Protocol: "udp", HostIP: "fd00:5::1"},
	} {
		for _, dir := range []string{"in", "out", "in6", "out6"} {
			r, ok := ParsePortRuleName(PortRuleName("web", p, dir))
			if want := (PortRule{Container: "web", Proto: p.Protocol, HostPort: p.HostPort, HostIP: p.HostIP, Dir: dir}); !ok || r != want {
				t.Errorf("%s: %+v %v, want %+v", PortRuleName("web", p, dir), r, ok, want)
			}
		}
	}
	for _, n := range []string{"web/port-host", "web/port-hairpin6", "labnet/masquerade-ipv4", "web/port-tcp-x-in", "web/port-tcp-80-sideways"} {
		if r, ok := ParsePortRuleName(n); ok {
			t.Errorf("%s read as a port's rule: %+v", n, r)
		}
	}
}

// Two ports overlap on a common host address: no hostIP takes every
// address of both families, 0.0.0.0 every IPv4 one, :: every IPv6 one.
func TestPortsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"", "", true}, {"", "::", true}, {"", "127.0.0.1", true},
		{"0.0.0.0", "::", false}, {"0.0.0.0", "127.0.0.1", true}, {"::", "fd00::1", true},
		{"127.0.0.1", "127.0.0.2", false}, {"fd00::1", "fd00::1", true}, {"127.0.0.1", "::", false},
	} {
		a := PortRule{Proto: "tcp", HostPort: 80, HostIP: tc.a}
		b := PortRule{Proto: "tcp", HostPort: 80, HostIP: tc.b}
		if a.Overlaps(b) != tc.want || b.Overlaps(a) != tc.want {
			t.Errorf("%q and %q: overlap %v, want %v", tc.a, tc.b, a.Overlaps(b), tc.want)
		}
	}
	if (PortRule{Proto: "tcp", HostPort: 80}).Overlaps(PortRule{Proto: "udp", HostPort: 80}) {
		t.Errorf("tcp and udp overlap")
	}
}
