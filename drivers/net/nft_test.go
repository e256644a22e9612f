//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hutch/internal/testutil"
	"hutch/plan"
)

// nftIn runs nft inside the namespace at path (nft reads the kernel
// itself: an independent view of what the driver did).
func nftIn(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + path, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nftDriver returns an nftables driver working in a fresh namespace of the
// test's own, so the host's ruleset is never touched.
func nftDriver(t *testing.T) (*NftDriver, string) {
	d := tempDriver(t)
	ns := mustNetns(t, d, "nfttest")
	path := d.netnsPath(ns.Name)
	return &NftDriver{d: d, netns: path}, path
}

func masquerade(network, src, notOIf string) *plan.NftRule {
	return &plan.NftRule{Network: network, Name: network + "/masquerade", Chain: plan.NftPostrouting, Src: src, NotOIf: notOIf, Verdict: plan.NftMasquerade}
}

func isolate(network, bridge string) *plan.NftRule {
	return &plan.NftRule{Network: network, Name: network + "/isolate", Chain: plan.NftForward, IIfPrefix: "hutch-", NotIIf: bridge, OIf: bridge, Verdict: plan.NftDrop}
}

func TestNftRuleLifecycle(t *testing.T) {
	n, path := nftDriver(t)
	ctx := context.Background()
	// Someone else's table in the same namespace: hutch leaves it alone.
	nftIn(t, path, "add", "table", "inet", "theirs")
	nftIn(t, path, "add", "chain", "inet", "theirs", "c")
	nftIn(t, path, "add", "rule", "inet", "theirs", "c", "counter")
	before := nftIn(t, path, "list", "ruleset")

	masq := masquerade("labnet", "10.99.0.0/24", "hutch-labnet")
	masq6 := &plan.NftRule{Network: "labnet", Name: "labnet/masquerade6", Chain: plan.NftPostrouting, Src: "fd99::/64", NotOIf: "hutch-labnet", Verdict: plan.NftMasquerade}
	iso := isolate("labnet", "hutch-labnet")
	for _, r := range []*plan.NftRule{masq, masq6, iso} {
		if got, err := n.Observe(ctx, r); err != nil || got != nil {
			t.Fatalf("%s before apply: %v, %v", r.Name, got, err)
		}
		if err := n.Apply(ctx, create(r)); err != nil {
			t.Fatal(err)
		}
		got, err := n.Observe(ctx, r)
		if err != nil || got == nil {
			t.Fatalf("%s after apply: %v, %v", r.Name, got, err)
		}
		if f, _ := n.Diff(got, r); len(f) != 0 {
			t.Errorf("%s after apply: diff %v", r.Name, f)
		}
	}
	list := nftIn(t, path, "list", "table", "inet", "hutch")
	for _, want := range []string{
		`type nat hook postrouting priority srcnat; policy accept;`,
		`ip saddr 10.99.0.0/24 oifname != "hutch-labnet" masquerade comment "hutch:nftrule/labnet/masquerade"`,
		`ip6 saddr fd99::/64 oifname != "hutch-labnet" masquerade comment "hutch:nftrule/labnet/masquerade6"`,
		`type filter hook forward priority filter; policy accept;`,
		`iifname "hutch-*" iifname != "hutch-labnet" oifname "hutch-labnet" drop comment "hutch:nftrule/labnet/isolate"`,
	} {
		if !strings.Contains(list, want) {
			t.Errorf("nft list table inet hutch lacks %q:\n%s", want, list)
		}
	}
	// A second apply adds nothing.
	if err := n.Apply(ctx, create(masq)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(nftIn(t, path, "list", "table", "inet", "hutch"), "masquerade comment"); got != 2 {
		t.Errorf("%d masquerade rules after a second apply", got)
	}

	// Changed by hand (same comment, another subnet): observed as differing,
	// replaced in place.
	handle := regexp.MustCompile(`masquerade comment "hutch:nftrule/labnet/masquerade" # handle (\d+)`).FindStringSubmatch(nftIn(t, path, "-a", "list", "chain", "inet", "hutch", "postrouting"))
	if handle == nil {
		t.Fatal("no handle")
	}
	nftIn(t, path, "replace", "rule", "inet", "hutch", "postrouting", "handle", handle[1], "ip", "saddr", "10.98.0.0/24", "masquerade", "comment", `"hutch:nftrule/labnet/masquerade"`)
	got, err := n.Observe(ctx, masq)
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	if f, replace := n.Diff(got, masq); strings.Join(f, ",") != "rule" || len(replace) != 0 {
		t.Errorf("a rule changed by hand: fields %v replace %v", f, replace)
	}
	if err := n.Apply(ctx, &plan.Change{ID: masq.ID(), Kind: masq.Kind(), Action: plan.Update, Before: got, After: masq}); err != nil {
		t.Fatal(err)
	}
	list = nftIn(t, path, "list", "table", "inet", "hutch")
	if strings.Contains(list, "10.98.0.0") || !strings.Contains(list, "ip saddr 10.99.0.0/24") {
		t.Errorf("after repair:\n%s", list)
	}

	// Deleted by hand: observed absent.
	handle = regexp.MustCompile(`drop comment "hutch:nftrule/labnet/isolate" # handle (\d+)`).FindStringSubmatch(nftIn(t, path, "-a", "list", "chain", "inet", "hutch", "forward"))
	nftIn(t, path, "delete", "rule", "inet", "hutch", "forward", "handle", handle[1])
	if got, err := n.Observe(ctx, iso); err != nil || got != nil {
		t.Errorf("a rule deleted by hand: %v, %v", got, err)
	}

	// Delete of every rule takes the table along; their table stays, as it was.
	for _, r := range []*plan.NftRule{masq, masq6, iso} {
		if err := n.Delete(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if after := nftIn(t, path, "list", "ruleset"); after != before {
		t.Errorf("ruleset after delete:\n%s\nwant, as before apply:\n%s", after, before)
	}
	if err := n.Delete(ctx, masq); err != nil {
		t.Errorf("delete of a deleted rule: %v", err)
	}
}

// A rule someone added to hutch's table by hand keeps the table when
// hutch's last rule goes: hutch never deletes what is not its own.
func TestNftTableKeptForAForeignRule(t *testing.T) {
	n, path := nftDriver(t)
	ctx := context.Background()
	masq := masquerade("labnet", "10.99.0.0/24", "hutch-labnet")
	if err := n.Apply(ctx, create(masq)); err != nil {
		t.Fatal(err)
	}
	nftIn(t, path, "add", "rule", "inet", "hutch", "postrouting", "counter")
	if err := n.Delete(ctx, masq); err != nil {
		t.Fatal(err)
	}
	list := nftIn(t, path, "list", "table", "inet", "hutch")
	if !strings.Contains(list, "counter") || strings.Contains(list, "masquerade") {
		t.Errorf("after delete:\n%s", list)
	}
}

// threeNamespaces puts a client (10.99.0.2) and a server (10.98.0.2) of the
// test's own behind the router namespace the driver works in (10.99.0.1
// and 10.98.0.1, on links rIn and rOut), the client routed through it, and
// returns them with a runner of commands inside a namespace.
func threeNamespaces(t *testing.T, n *NftDriver, router string) (client, server, rIn, rOut string, in func(ns string, args ...string)) {
	d := n.d
	client = d.netnsPath(mustNetns(t, d, "nftclient").Name)
	server = d.netnsPath(mustNetns(t, d, "nftserver").Name)
	in = func(ns string, args ...string) {
		t.Helper()
		mustRun(t, append([]string{"nsenter", "--net=" + ns}, args...)...)
	}
	pair := func(a, aNs, aAddr, b, bNs, bAddr string) {
		t.Helper()
		mustRun(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
		t.Cleanup(func() { delLink(t, "", a) })
		mustRun(t, "ip", "link", "set", a, "netns", aNs)
		mustRun(t, "ip", "link", "set", b, "netns", bNs)
		in(aNs, "ip", "addr", "add", aAddr, "dev", a)
		in(aNs, "ip", "link", "set", a, "up")
		in(bNs, "ip", "addr", "add", bAddr, "dev", b)
		in(bNs, "ip", "link", "set", b, "up")
	}
	var cEnd, sEnd string
	rIn, cEnd = testutil.Name("hnr"), testutil.Name("hnc")
	rOut, sEnd = testutil.Name("hno"), testutil.Name("hns")
	pair(rIn, router, "10.99.0.1/24", cEnd, client, "10.99.0.2/24")
	pair(rOut, router, "10.98.0.1/24", sEnd, server, "10.98.0.2/24")
	in(client, "ip", "route", "add", "default", "via", "10.99.0.1")
	return client, server, rIn, rOut, in
}

// The masquerade rule rewrites a client's source address for real: a
// client namespace behind a router namespace (where the driver works)
// reaches a server namespace, which sees the router's address, and only
// while the rule is there. All traffic stays in the test's namespaces.
func TestNftMasqueradeTraffic(t *testing.T) {
	n, router := nftDriver(t)
	client, server, rIn, _, in := threeNamespaces(t, n, router)
	in(router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	// The server has no route back to 10.99.0.0/24: only a masqueraded
	// connection can be answered.
	peer := func(wait, tries string) string {
		t.Helper()
		srv := exec.Command("nsenter", "--net="+server, "python3", "-c",
			"import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('10.98.0.2', 8099))\ns.listen(1)\ns.settimeout("+wait+")\nc,a=s.accept()\nprint(a[0])")
		var out strings.Builder
		srv.Stdout = &out
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the listener's bind; the client retries anyway
		exec.Command("nsenter", "--net="+client, "python3", "-c",
			"import socket,time\nfor i in range("+tries+"):\n    try:\n        socket.create_connection(('10.98.0.2', 8099), timeout=0.3).close(); break\n    except OSError: time.sleep(0.1)").Run()
		srv.Wait()
		return strings.TrimSpace(out.String())
	}
	if got := peer("1.5", "3"); got != "" {
		t.Fatalf("without the rule the server saw %q, want no connection (no route back)", got)
	}
	masq := masquerade("labnet", "10.99.0.0/24", rIn)
	if err := n.Apply(context.Background(), create(masq)); err != nil {
		t.Fatal(err)
	}
	if got := peer("5", "20"); got != "10.98.0.1" {
		t.Errorf("with the masquerade rule the server saw %q, want the router's 10.98.0.1", got)
	}
	if err := n.Delete(context.Background(), masq); err != nil {
		t.Fatal(err)
	}
}

// Published-port rules for real: a dnat in prerouting carries a client's
// connection to the router's own address on to a server behind it; one in
// output does the same for the router's own connections, to its own
// address and to 127.0.0.1 (with route_localnet and a masquerade of
// loopback sources, as hutch's ports use them). All in the test's own
// namespaces.
func TestNftDNATTraffic(t *testing.T) {
	n, router := nftDriver(t)
	client, server, _, rOut, in := threeNamespaces(t, n, router)
	in(server, "ip", "route", "add", "default", "via", "10.98.0.1")
	in(router, "ip", "link", "set", "lo", "up")
	in(router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	in(router, "sysctl", "-q", "-w", "net.ipv4.conf."+rOut+".route_localnet=1")
	ctx := context.Background()
	rules := []*plan.NftRule{
		{Network: "web", Name: "web/publish-in", Chain: plan.NftPrerouting, LocalDst: true, Proto: "tcp", DPort: 8080, To: "10.98.0.2:8099", Verdict: plan.NftDNAT},
		{Network: "web", Name: "web/publish-out", Chain: plan.NftOutput, LocalDst: true, Proto: "tcp", DPort: 8080, To: "10.98.0.2:8099", Verdict: plan.NftDNAT},
		{Network: "web", Name: "web/publish-lo", Chain: plan.NftPostrouting, Src: "127.0.0.0/8", DNATed: true, Verdict: plan.NftMasquerade},
	}
	for _, r := range rules {
		if err := n.Apply(ctx, create(r)); err != nil {
			t.Fatal(err)
		}
		got, err := n.Observe(ctx, r)
		if err != nil || got == nil {
			t.Fatalf("%s: %v %v", r.Name, got, err)
		}
		if f, _ := n.Diff(got, r); len(f) != 0 {
			t.Errorf("%s after apply: diff %v", r.Name, f)
		}
	}
	list := nftIn(t, router, "list", "table", "inet", "hutch")
	for _, want := range []string{
		`type nat hook prerouting priority dstnat; policy accept;`,
		`fib daddr type local tcp dport 8080 dnat ip to 10.98.0.2:8099 comment "hutch:nftrule/web/publish-in"`,
		`type nat hook output priority -100; policy accept;`,
		`ip saddr 127.0.0.0/8 ct status dnat masquerade comment "hutch:nftrule/web/publish-lo"`,
	} {
		if !strings.Contains(list, want) {
			t.Errorf("nft list lacks %q:\n%s", want, list)
		}
	}
	// One answer per connection: the server prints the port it was
	// reached on, the client which address it dialled.
	reach := func(from, addr string) bool {
		t.Helper()
		srv := exec.Command("nsenter", "--net="+server, "python3", "-c",
			"import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('10.98.0.2', 8099))\ns.listen(1)\ns.settimeout(5)\nc,a=s.accept()\nc.sendall(b'hi')\nc.close()")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer srv.Wait()
		out, _ := exec.Command("nsenter", "--net="+from, "python3", "-c",
			"import socket,time\nfor i in range(40):\n    try:\n        s=socket.create_connection(('"+addr+"', 8080), timeout=1); print(s.recv(2).decode()); break\n    except OSError: time.sleep(0.05)").CombinedOutput()
		return strings.TrimSpace(string(out)) == "hi"
	}
	if !reach(client, "10.99.0.1") {
		t.Errorf("a client's connection to the router's 10.99.0.1:8080 did not reach the server")
	}
	if !reach(router, "10.98.0.1") {
		t.Errorf("the router's own connection to 10.98.0.1:8080 did not reach the server")
	}
	if !reach(router, "127.0.0.1") {
		t.Errorf("the router's connection to 127.0.0.1:8080 did not reach the server")
	}
	for _, r := range rules {
		if err := n.Delete(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if after := nftIn(t, router, "list", "ruleset"); after != "" {
		t.Errorf("ruleset after delete:\n%s", after)
	}
}

// A published port is refused before anything is made when a socket of the
// host is already bound to it (the error names its process) or when its
// host address does not exist.
func TestNftPortPreflight(t *testing.T) {
	n, _ := nftDriver(t)
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*stdnet.TCPAddr).Port
	r := &plan.NftRule{Network: "web", Name: "port/tcp/" + strconv.Itoa(port), Chain: plan.NftPrerouting, LocalDst: true, Proto: "tcp", DPort: port, To: "10.98.0.2:8000", Verdict: plan.NftDNAT}
	_, err = n.Observe(context.Background(), r)
	if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d (", os.Getpid())) || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("a port bound on the host: %v", err)
	}
	// Published on another address of the host, the port is free.
	r.Dst = "127.0.0.2"
	if _, err := n.Observe(context.Background(), r); err == nil || !strings.Contains(err.Error(), "the host has no address 127.0.0.2") {
		t.Errorf("an address the host does not have: %v", err)
	}
	ln.Close()
	r.Dst = ""
	if got, err := n.Observe(context.Background(), r); err != nil || got != nil {
		t.Errorf("a free port: %v, %v", got, err)
	}
}
