package plan

import (
	"sort"
	"strings"
	"testing"
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
	// A container with no IPv4 address has nothing to publish to.
	v6 := strings.NewReplacer("10.0.0.2/24", "fd00::2/64", "10.0.0.1/24", "fd00::1/64").Replace(network)
	if _, err := Build(parse(t, doc("a", v6, "    ports:\n      - {hostPort: 8080, containerPort: 80}")), DefaultOptions()); err == nil || !strings.Contains(err.Error(), "needs an IPv4 address") {
		t.Errorf("ports without an IPv4 address: %v", err)
	}
}
