package plan

import (
	"net/netip"
	"strings"
	"testing"

	"hutch/spec"
)

// lab parses and validates a lab's documents.
func parseLab(t *testing.T, docs ...string) *spec.Manifest {
	t.Helper()
	m, errs := spec.ParseManifest("lab.yaml", []byte(strings.Join(docs, "\n---\n")))
	if len(errs) > 0 {
		t.Fatalf("parse: %v", errs)
	}
	if err := spec.Validate(m); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return m
}

const labnet = "apiVersion: hutch/v1alpha1\nkind: Network\nmetadata:\n  name: labnet\nspec:\n  subnets:\n    - cidr: 10.89.0.0/24\n    - cidr: fd89::/64\n"

func onNet(name string, extra ...string) string {
	return doc(name, append([]string{"  network:\n    interfaces:\n      - name: eth0\n        network: labnet\n        defaultRoute: true"}, extra...)...)
}

func addrsOf(c *Container) []string {
	var out []string
	for _, a := range find[*Address](c) {
		out = append(out, a.CIDR)
	}
	return out
}

// IPAM: the lowest free address of each subnet in order of name, static
// addresses kept out of the pool, a lease given back to its holder and to
// nobody else.
func TestIPAM(t *testing.T) {
	static := doc("b", "  network:\n    interfaces:\n      - name: eth0\n        network: labnet\n        addresses: [10.89.0.2/24]")
	m := parseLab(t, labnet, onNet("c"), static, onNet("a"))
	d, err := Build(m, Options{StateRoot: "/s"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range d.Containers {
		got[c.Name] = strings.Join(addrsOf(c), " ")
	}
	want := map[string]string{"a": "10.89.0.3/24 fd89::2/64", "b": "10.89.0.2/24 fd89::3/64", "c": "10.89.0.4/24 fd89::4/64"}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
	// c held 10.89.0.9 from an earlier apply and keeps it; x, a container
	// of another manifest, holds 10.89.0.3, which a cannot take.
	leases := []Lease{
		{Network: "labnet", Container: "c", Interface: "eth0", Addr: netip.MustParsePrefix("10.89.0.9/24")},
		{Network: "labnet", Container: "x", Interface: "eth0", Addr: netip.MustParsePrefix("10.89.0.3/24")},
	}
	d, err = Build(m, Options{StateRoot: "/s", Leases: leases})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Containers {
		got[c.Name] = strings.Join(addrsOf(c), " ")
	}
	want = map[string]string{"a": "10.89.0.4/24 fd89::2/64", "b": "10.89.0.2/24 fd89::3/64", "c": "10.89.0.9/24 fd89::4/64"}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("with leases, %s: %s, want %s", n, got[n], w)
		}
	}
	// x is in a's /etc/hosts: it shares the network.
	for _, f := range find[*File](d.Container("a")) {
		if !strings.Contains(f.Content, "10.89.0.3\tx\n") || !strings.Contains(f.Content, "10.89.0.9\tc\n") {
			t.Errorf("a's hosts:\n%s", f.Content)
		}
	}
	// A static address another container holds is an error at its place.
	leases = append(leases, Lease{Network: "labnet", Container: "y", Interface: "eth0", Addr: netip.MustParsePrefix("10.89.0.2/24")})
	if _, err := Build(m, Options{StateRoot: "/s", Leases: leases}); err == nil || !strings.Contains(err.Error(), "lab.yaml:") ||
		!strings.Contains(err.Error(), "10.89.0.2 on network labnet is already container y's") {
		t.Errorf("static address leased to another: %v", err)
	}
}

// A subnet full with the manifest's own interfaces is a validation error
// (spec's network-full); one filled by another manifest's lease is known
// only here.
func TestIPAMSubnetFull(t *testing.T) {
	small := "apiVersion: hutch/v1alpha1\nkind: Network\nmetadata:\n  name: labnet\nspec:\n  subnets:\n    - cidr: 10.89.0.0/30\n"
	m := parseLab(t, small, onNet("a"))
	leases := []Lease{{Network: "labnet", Container: "other", Interface: "eth0", Addr: netip.MustParsePrefix("10.89.0.2/30")}}
	_, err := Build(m, Options{StateRoot: "/s", Leases: leases})
	if err == nil || !strings.Contains(err.Error(), "10.89.0.0/30 has no free address left") || !strings.Contains(err.Error(), "spec.network.interfaces[0].network") {
		t.Errorf("a /30 whose one free address another container holds: %v", err)
	}
}

// A network's unit: bridge, gateways, isolation, and with nat the
// masquerade rules and the host's forwarding; a container on it: a veth
// plugged into the bridge, default routes via the gateways, /etc/hosts
// and /etc/resolv.conf bind-mounted read-only.
func TestNetworkResources(t *testing.T) {
	nat := strings.Replace(labnet, "spec:\n", "spec:\n  nat: true\n  mtu: 1400\n", 1)
	m := parseLab(t, nat, onNet("web"))
	d, err := Build(m, Options{StateRoot: "/s", ResolvConf: "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch lab\n"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Units) != 1 || d.Units[0].Kind != spec.KindNetwork {
		t.Fatalf("units %+v", d.Units)
	}
	var ids []string
	for _, r := range d.Units[0].Resources {
		ids = append(ids, r.ID())
	}
	wantIDs := "address/host/hutch-labnet/10.89.0.1/24 address/host/hutch-labnet/fd89::1/64 bridge/hutch-labnet nftrule/labnet/isolate nftrule/labnet/masquerade-ipv4 nftrule/labnet/masquerade-ipv6 sysctl/host/net.ipv4.ip_forward/labnet sysctl/host/net.ipv6.conf.all.forwarding/labnet"
	if strings.Join(ids, " ") != wantIDs {
		t.Errorf("network resources:\n%s\nwant\n%s", strings.Join(ids, " "), wantIDs)
	}
	web := d.Container("web")
	v := find[*Veth](web)[0]
	if v.Bridge != "hutch-labnet" || v.Host.Name != spec.AttachName("web", "eth0") || v.Host.MTU != 1400 || !strings.HasPrefix(v.Host.Name, "hutch") || len(v.Host.Name) != 15 {
		t.Errorf("veth %+v", v)
	}
	var routes []string
	for _, r := range find[*Route](web) {
		routes = append(routes, r.Dst+" via "+r.Via)
	}
	if strings.Join(routes, ", ") != "0.0.0.0/0 via 10.89.0.1, ::/0 via fd89::1" {
		t.Errorf("routes %v", routes)
	}
	files := find[*File](web)
	if len(files) != 2 || files[1].Name != "resolv.conf" || files[1].Content != "# written by hutch from the host's resolver settings\nnameserver 192.0.2.53\nsearch lab\n" {
		t.Errorf("files %+v", files)
	}
	var mounts []string
	for _, mt := range web.Spec.Mounts {
		if strings.HasPrefix(mt.Source, "/s/") {
			mounts = append(mounts, mt.Source+" "+mt.Destination+" "+strings.Join(mt.Options, ","))
		}
	}
	if strings.Join(mounts, "; ") != "/s/containers/web/hosts /etc/hosts rbind,ro,nosuid,nodev,noexec; /s/containers/web/resolv.conf /etc/resolv.conf rbind,ro,nosuid,nodev,noexec" {
		t.Errorf("mounts %v", mounts)
	}
}

// A router lab: links between namespaces, addresses on the link ends owned
// by the containers, routes through them, the router's sysctl, and one
// /etc/hosts naming every container joined through the links.
func TestLinkResources(t *testing.T) {
	lk := func(name, a, ai, aa, b, bi, ba string) string {
		return "apiVersion: hutch/v1alpha1\nkind: Link\nmetadata:\n  name: " + name + "\nspec:\n  endpoints:\n" +
			"    - {container: " + a + ", interface: " + ai + ", addresses: [" + aa + "]}\n" +
			"    - {container: " + b + ", interface: " + bi + ", addresses: [" + ba + "]}\n"
	}
	m := parseLab(t,
		doc("router", "  network: {}\n  sysctls:\n    net.ipv4.ip_forward: \"1\""),
		doc("client", "  network:\n    routes:\n      - to: 10.0.2.0/30\n        via: 10.0.1.1"),
		doc("server", "  network: {}"),
		lk("c-r", "client", "eth0", "10.0.1.2/30", "router", "eth1", "10.0.1.1/30"),
		lk("r-s", "router", "eth2", "10.0.2.1/30", "server", "eth0", "10.0.2.2/30"))
	d, err := Build(m, Options{StateRoot: "/s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Units) != 2 {
		t.Fatalf("units %v", d.Units)
	}
	l := d.Units[0].Resources[0].(*Link)
	if l.A != (LinkEndpoint{Netns: "client", Name: "eth0"}) || l.B != (LinkEndpoint{Netns: "router", Name: "eth1"}) {
		t.Errorf("link %+v", l)
	}
	client := d.Container("client")
	r := find[*Route](client)[0]
	if r.Dev != "eth0" || strings.Join(r.Needs, " ") != "address/client/eth0/10.0.1.2/30 link/c-r" {
		t.Errorf("client route %+v", r)
	}
	if a := find[*Address](client)[0]; a.Veth != "link/c-r" || a.Netns != "client" {
		t.Errorf("client address %+v", a)
	}
	if s := find[*Sysctl](d.Container("router")); len(s) != 1 || s[0].ID() != "sysctl/router/net.ipv4.ip_forward" || s[0].Value != "1" {
		t.Errorf("router sysctls %+v", s)
	}
	hosts := find[*File](client)[0].Content
	for _, want := range []string{"10.0.1.1\trouter\n", "10.0.2.1\trouter\n", "10.0.1.2\tclient\n", "10.0.2.2\tserver\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("client's hosts lacks %q:\n%s", want, hosts)
		}
	}
}
