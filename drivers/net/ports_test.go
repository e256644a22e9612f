//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"hutch/internal/testutil"
	"hutch/plan"
)

// /proc/net/tcp6 prints an address as four 32-bit words in the host's byte
// order; a socket on :: takes every address of both families (unless it
// is IPV6_V6ONLY, which /proc does not say), one on an IPv4-mapped address
// that IPv4 address.
func TestBoundSocketHostIP(t *testing.T) {
	if !nativeLittle {
		t.Skip("the words below are little-endian")
	}
	for _, tc := range []struct {
		hex  string
		v6   bool
		want string
	}{
		{"0100007F", false, "127.0.0.1"},
		{"00000000", false, "0.0.0.0"},
		{"00000000000000000000000000000000", true, ""},
		{"00000000000000000000000001000000", true, "::1"},
		{"0000000000000000FFFF00000100007F", true, "127.0.0.1"},
		{"000000FD000000000000000001000000", true, "fd00::1"},
	} {
		a, ok := procAddr(tc.hex)
		if !ok {
			t.Fatalf("procAddr(%s) failed", tc.hex)
		}
		if got := (boundSocket{addr: a, v6: tc.v6}).hostIP(); got != tc.want {
			t.Errorf("%s (v6 %v): %q, want %q", tc.hex, tc.v6, got, tc.want)
		}
	}
}

// The preflight of IPv6 ports: a socket listening on [::1] (tcp6, udp6)
// holds a port published on :: or on every address (the host's own
// connections to ::1 would meet it), and not one on 0.0.0.0 (an IPv4 dnat
// never sees ::1: the old code refused it too, as it did any socket);
// another container's port on :: is a conflict for every address, not
// for 0.0.0.0; an IPv6 address the host lacks is refused.
func TestNftPortPreflightIPv6(t *testing.T) {
	testutil.RequireRoot(t)
	n, _ := nftDriver(t)
	ctx := context.Background()
	ln, err := stdnet.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*stdnet.TCPAddr).Port
	rule := func(proto, hostIP, dir string) *plan.NftRule {
		name := fmt.Sprintf("web/port-%s-%d-%s", proto, port, dir)
		if hostIP != "" {
			name = fmt.Sprintf("web/port-%s-%d-%s-%s", proto, port, hostIP, dir)
		}
		to := "10.98.0.2:8000"
		if strings.HasSuffix(dir, "6") {
			to = "[fd98::2]:8000"
		}
		r := &plan.NftRule{Network: "web", Name: name, Chain: plan.NftPrerouting, Proto: proto, DPort: port, To: to, Verdict: plan.NftDNAT}
		if a, err := netip.ParseAddr(hostIP); err == nil && !a.IsUnspecified() {
			r.Dst = hostIP
		} else {
			r.LocalDst = true
		}
		return r
	}
	held := fmt.Sprintf("pid %d (", os.Getpid())
	for _, r := range []*plan.NftRule{rule("tcp", "::", "in6"), rule("tcp", "", "in6"), rule("tcp", "", "in")} {
		if _, err := n.Observe(ctx, r); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), held) || !strings.Contains(err.Error(), fmt.Sprintf("[::1]:%d", port)) {
			t.Errorf("%s, with [::1]:%d listening: %v", r.Name, port, err)
		}
	}
	if got, err := n.Observe(ctx, rule("tcp", "0.0.0.0", "in")); err != nil || got != nil {
		t.Errorf("a port on 0.0.0.0, with only [::1]:%d listening: %v %v", port, got, err)
	}
	ln.Close()
	pc, err := stdnet.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := n.Observe(ctx, rule("udp", "::", "in6")); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), held) {
		t.Errorf("udp on ::, with udp [::1]:%d bound: %v", port, err)
	}
	pc.Close()
	// Another container's port on ::, in the kernel.
	other := rule("tcp", "::", "in6")
	other.Network, other.Name = "db", strings.Replace(other.Name, "web/", "db/", 1)
	if err := n.Apply(ctx, create(other)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Delete(ctx, other) })
	if _, err := n.Observe(ctx, rule("tcp", "", "in6")); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "already published by container db on ::") {
		t.Errorf("a port db publishes on ::, for every address: %v", err)
	}
	if got, err := n.Observe(ctx, rule("tcp", "0.0.0.0", "in")); err != nil || got != nil {
		t.Errorf("a port db publishes on ::, for 0.0.0.0: %v %v", got, err)
	}
	if _, err := n.Observe(ctx, rule("tcp", "fd00:dead:beef::1", "in6")); err == nil || !strings.Contains(err.Error(), "the host has no address fd00:dead:beef::1") {
		t.Errorf("an IPv6 address the host does not have: %v", err)
	}
}

// An IPv6 dnat with ip6 daddr != ::1, as hutch's output rule of a port
// has it, is made as wanted and read back equal (a second apply finds no
// change); nft lists it.
func TestNftDNATIPv6RoundTrip(t *testing.T) {
	n, path := nftDriver(t)
	ctx := context.Background()
	r := &plan.NftRule{Network: "web", Name: "web/port-tcp-8080-out6", Chain: plan.NftOutput, LocalDst: true, NotDst: "::1",
		Proto: "tcp", DPort: 8080, To: "[fd98::2]:8000", Verdict: plan.NftDNAT}
	if err := n.Apply(ctx, create(r)); err != nil {
		t.Fatal(err)
	}
	got, err := n.Observe(ctx, r)
	if err != nil || got == nil {
		t.Fatalf("observe: %v %v", got, err)
	}
	if f, _ := n.Diff(got, r); len(f) != 0 {
		t.Errorf("after apply: diff %v", f)
	}
	list := nftIn(t, path, "list", "table", "inet", "hutch")
	if want := `ip6 daddr != ::1 fib daddr type local tcp dport 8080 dnat ip6 to [fd98::2]:8000 comment "hutch:nftrule/web/port-tcp-8080-out6"`; !strings.Contains(list, want) {
		t.Errorf("nft lists no %q:\n%s", want, list)
	}
	if err := n.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	if after := nftIn(t, path, "list", "ruleset"); after != "" {
		t.Errorf("ruleset after delete:\n%s", after)
	}
}
