//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hutch/internal/testutil"
)

// TestIPv6LinkLocalGateway applies spec/testdata/good/ipv6.yaml, with the
// test's names and subnets: dual-stack addresses, default routes of both
// families and a route via the link-local gateway fe80::1 on eth0 (the
// usual IPv6 next hop: a router's fe80:: address on the link). The kernel
// must hold that route as `ip -6 route` shows it, a second apply must find
// nothing to do, and delete must leave nothing.
func TestIPv6LinkLocalGateway(t *testing.T) {
	testutil.RequireRoot(t)
	l := &lab{&testutil.Lab{T: t, Root: t.TempDir(), Name: testutil.Name("d6"), HostIf: testutil.Name("d6h"),
		PeerIf: "eth0", Subnet: testutil.FreeSubnet()}}
	l.Netns = l.Name
	v6 := fmt.Sprintf("fd00:%x::", 0x1600+l.Subnet)
	b, err := os.ReadFile("../spec/testdata/good/ipv6.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range [][2]string{
		{"dual0", l.HostIf},
		{"name: dual\n", "name: " + l.Name + "\n"},
		{"172.20.0.", fmt.Sprintf("172.16.%d.", l.Subnet)},
		{"fd00:20::", v6},
		{"binaries: [/bin/sh]", "binaries: [/bin/sh, /bin/sleep]"},
		{"args: [/bin/sh]", "args: [sleep, infinity]\n    stopTimeout: 300ms"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("ipv6.yaml has no %q to replace", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	l.Manifest = filepath.Join(t.TempDir(), "ipv6.yaml")
	if err := os.WriteFile(l.Manifest, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Cleanup)

	l.Apply()
	routes, err := run(t, "ip", "-n", l.Netns, "-6", "route", "show")
	if err != nil {
		t.Fatalf("ip -6 route: %v\n%s", err, routes)
	}
	for _, want := range []string{
		"fd00:99::/48 via fe80::1 dev eth0 ",
		"default via " + v6 + "1 dev eth0 ",
	} {
		if !strings.Contains(routes, want) {
			t.Errorf("the container's IPv6 routes lack %q:\n%s", want, routes)
		}
	}
	if v4, _ := run(t, "ip", "-n", l.Netns, "route", "show", "default"); !strings.Contains(v4, fmt.Sprintf("default via 172.16.%d.1 dev eth0", l.Subnet)) {
		t.Errorf("the container's IPv4 default route: %s", v4)
	}
	if out := l.Apply(); !strings.Contains(out, "No changes") {
		t.Errorf("second apply:\n%s", out)
	}
	l.Must("delete", l.Name)
	l.Gone()
}
