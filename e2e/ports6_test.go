//go:build linux

package e2e

import (
	"errors"
	"fmt"
	stdnet "net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"hutch/internal/testutil"
)

// dualServer makes a manifest's python web server listen on :: with
// IPV6_V6ONLY off (the netns's bindv6only is 0), so it answers over both
// families: socketserver.TCPServer is IPv4 only.
func dualServer(t *testing.T, s string) string {
	t.Helper()
	const with = "          with socketserver.TCPServer((\"\", PORT), Handler) as httpd:\n"
	if !strings.Contains(s, with) {
		t.Fatalf("the manifest has no %q to make dual-stack", with)
	}
	return strings.Replace(s, with, "          import socket\n"+
		"          class Dual(socketserver.TCPServer):\n"+
		"              address_family = socket.AF_INET6\n"+
		"              allow_reuse_address = True\n"+
		"          with Dual((\"::\", PORT), Handler) as httpd:\n", 1)
}

// dualStack writes the lab's web server with an IPv6 address next to its
// IPv4 one (prefix v6, ::2 inside, ::1 on the host end, the default route
// via it), serving on both, and ports (the lines of spec.network.ports).
func (l *lab) dualStack(v6 string, ports ...string) {
	l.T.Helper()
	l.Write(l.Manifest, func(s string) string {
		for _, r := range [][2]string{
			{"        addresses: [" + l.Addr + "/24]\n", "        addresses: [" + l.Addr + "/24, \"" + v6 + "2/64\"]\n"},
			{"          addresses: [" + l.HostAddr + "/24]\n", "          addresses: [" + l.HostAddr + "/24, \"" + v6 + "1/64\"]\n" +
				"    routes:\n      - {to: default, via: \"" + v6 + "1\"}\n"},
			{fmt.Sprintf("      - hostPort: %d\n        containerPort: 8000\n", l.Port), "      - " + strings.Join(ports, "\n      - ") + "\n"},
		} {
			if !strings.Contains(s, r[0]) {
				l.T.Fatalf("the manifest has no %q to replace", r[0])
			}
			s = strings.Replace(s, r[0], r[1], 1)
		}
		return dualServer(l.T, s)
	})
}

// outsideNetns6 is a namespace of the test's own beyond the host over
// IPv6: a veth with PREFIX::1/64 on the host (an IPv6 address of the
// host's that the test adds, on a link it made) and PREFIX::2 inside, no
// route elsewhere. Addresses skip duplicate address detection (nodad), so
// they are usable at once.
func outsideNetns6(t *testing.T) (ns, host, far string) {
	t.Helper()
	ns = testutil.Name("hno6")
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	hostEnd, farEnd := testutil.Name("hvo6"), testutil.Name("hvf6")
	mustRun(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", farEnd, "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "delete", hostEnd).Run() })
	prefix := fmt.Sprintf("fd00:%x::", 0x1800+testutil.FreeSubnet())
	host, far = prefix+"1", prefix+"2"
	mustRun(t, "ip", "addr", "add", host+"/64", "dev", hostEnd, "nodad")
	mustRun(t, "ip", "link", "set", hostEnd, "up")
	mustRun(t, "ip", "-n", ns, "addr", "add", far+"/64", "dev", farEnd, "nodad")
	mustRun(t, "ip", "-n", ns, "link", "set", farEnd, "up")
	mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns, host, far
}

func readSysctl(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

const fwd6 = "/proc/sys/net/ipv6/conf/all/forwarding"

// udpEcho runs a one-shot upper-casing UDP echo on the container's port
// 9000 (IPv6 socket on ::) and sends "ping" to addr:port from the
// namespace ns ("" for the host), returning the answer.
func (l *lab) udpEcho6(ns, addr string, port int) string {
	l.T.Helper()
	echo := exec.Command(hutchBin, "--root", l.Root, "exec", l.Name, "--", "python3", "-c",
		"import socket\ns=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.bind(('::', 9000))\nd,a=s.recvfrom(100)\ns.sendto(d.upper(),a)")
	if err := echo.Start(); err != nil {
		l.T.Fatal(err)
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()
	args := []string{"python3", "-c", fmt.Sprintf(
		"import socket,time\ns=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.settimeout(0.2)\nfor i in range(50):\n    s.sendto(b'ping', ('%s', %d))\n    try:\n        print(s.recv(100).decode()); break\n    except OSError: time.sleep(0.05)", addr, port)}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, _ := exec.Command(args[0], args[1:]...).Output()
	return strings.TrimSpace(string(out))
}

// Published ports over IPv6, the way Docker's ip6tables rules make them:
// a dual-stack container's port without hostIP answers over IPv6 from
// another namespace (through an IPv6 address the test put on the host),
// from the host itself through that address, over UDP too, and still over
// IPv4; a connection to [::1]:PORT is refused at once (IPv6 cannot
// forward its loopback: docs/labs.md), not left hanging. hutch get and
// inspect show the IPv6 rules, a second apply finds nothing to do, a rule
// deleted by hand is shown and put back, and delete leaves the ruleset and
// the host's IPv6 forwarding as they were. The old code made no IPv6
// rule: every IPv6 request failed.
func TestPublishedPortsIPv6(t *testing.T) {
	l := newLab(t)
	nftBefore, _ := run(t, "nft", "list", "ruleset")
	fwd6Before, fwdBefore := readSysctl(fwd6), readSysctl("/proc/sys/net/ipv4/ip_forward")
	outside, hostV6, _ := outsideNetns6(t)
	v6 := fmt.Sprintf("fd00:%x::", 0x1600+l.Subnet)
	udp := testutil.FreePort(t)
	l.dualStack(v6, fmt.Sprintf("{hostPort: %d, containerPort: 8000}", l.Port), fmt.Sprintf("{hostPort: %d, containerPort: 9000, protocol: udp}", udp))
	l.Apply()
	l.Serving()
	url6 := fmt.Sprintf("http://[%s]:%d/", hostV6, l.Port)
	if !get200(t, outside, url6) {
		t.Errorf("from another namespace, %s never answered 200", url6)
	}
	if readSysctl(fwd6) != "1" {
		t.Errorf("net.ipv6.conf.all.forwarding while a port is published over IPv6: %s", readSysctl(fwd6))
	}
	if !get200(t, "", url6) {
		t.Errorf("from the host, %s never answered 200", url6)
	}
	if !get200(t, "", fmt.Sprintf("http://127.0.0.1:%d/", l.Port)) {
		t.Errorf("over IPv4, 127.0.0.1:%d never answered 200", l.Port)
	}
	// ::1 is not forwarded (ip6 daddr != ::1): refused (curl exit 7), not
	// a timeout (28) as a dnat of it would give.
	start := time.Now()
	err := exec.Command("curl", "-s", "-g", "-o", "/dev/null", "-m", "3", fmt.Sprintf("http://[::1]:%d/", l.Port)).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || time.Since(start) > 2*time.Second {
		t.Errorf("curl [::1]:%d: %v after %v, want refused at once (exit 7)", l.Port, err, time.Since(start))
	}
	if got := l.udpEcho6(outside, hostV6, udp); got != "PING" {
		t.Errorf("UDP to [%s]:%d from another namespace: %q", hostV6, udp, got)
	}
	get := l.Must("get")
	for _, want := range []string{fmt.Sprintf("0.0.0.0:%d->8000/tcp", l.Port), fmt.Sprintf("[::]:%d->8000/tcp", l.Port), fmt.Sprintf("[::]:%d->9000/udp", udp)} {
		if !strings.Contains(get, want) {
			t.Errorf("hutch get does not show %s:\n%s", want, get)
		}
	}
	insp := l.Must("inspect", l.Name)
	for _, want := range []string{
		fmt.Sprintf("chain prerouting: fib daddr type local tcp dport %d dnat ip6 to [%s2]:8000", l.Port, v6),
		fmt.Sprintf("chain output: ip6 daddr != ::1 fib daddr type local tcp dport %d dnat ip6 to [%s2]:8000", l.Port, v6),
		fmt.Sprintf("chain postrouting: ip6 saddr %s/64 ip6 daddr %s2 ct status dnat masquerade", v6, v6),
	} {
		if !strings.Contains(insp, want) {
			t.Errorf("hutch inspect lacks %q:\n%s", want, insp)
		}
	}
	if n := strings.Count(insp, "\n    present\n"); n != 12 {
		t.Errorf("hutch inspect: %d rules present, want 12 (per family: tcp and udp dnat in prerouting and output, 2 masquerades)\n%s", n, insp)
	}
	if out := l.Apply(); !strings.Contains(out, "No changes") {
		t.Errorf("second apply:\n%s", out)
	}
	kernel, _ := run(t, "nft", "list", "table", "inet", "hutch")
	if want := fmt.Sprintf(`ip6 daddr != ::1 fib daddr type local tcp dport %d dnat ip6 to [%s2]:8000 comment "hutch:nftrule/%s/port-tcp-%d-out6"`, l.Port, v6, l.Name, l.Port); !strings.Contains(kernel, want) {
		t.Errorf("nft lists no %q:\n%s", want, kernel)
	}

	// Drift: the IPv6 dnat deleted by hand is shown by plan and put back.
	list, _ := run(t, "nft", "-a", "list", "chain", "inet", "hutch", "prerouting")
	handle := ""
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, fmt.Sprintf("%s/port-tcp-%d-in6", l.Name, l.Port)) {
			handle = line[strings.LastIndex(line, " ")+1:]
		}
	}
	mustRun(t, "nft", "delete", "rule", "inet", "hutch", "prerouting", "handle", handle)
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 2 || !strings.Contains(out, fmt.Sprintf("port-tcp-%d-in6", l.Port)) {
		t.Errorf("plan after the rule was deleted by hand: exit %d\n%s", code, out)
	}
	l.Apply()
	if !get200(t, outside, url6) {
		t.Errorf("after the repair, %s never answered 200", url6)
	}

	l.Must("delete", "-f", l.Manifest)
	l.Gone()
	if after, _ := run(t, "nft", "list", "ruleset"); after != nftBefore {
		t.Errorf("nft ruleset after delete:\n%s\nbefore:\n%s", after, nftBefore)
	}
	if got := readSysctl(fwd6); got != fwd6Before {
		t.Errorf("net.ipv6.conf.all.forwarding after delete: %s, before %s", got, fwd6Before)
	}
	if got := readSysctl("/proc/sys/net/ipv4/ip_forward"); got != fwdBefore {
		t.Errorf("ip_forward after delete: %s, before %s", got, fwdBefore)
	}
}

// Hairpin over IPv6: on a network with an IPv6 subnet, the client reaches
// the server's port published on :: through the host's address on the
// bridge (the gateway), and the server sees the connection come from the
// gateway (masqueraded), so its answer goes back through the host and the
// translation. Without the hairpin rule (deleted by hand) the server sees
// the client itself: it answers the client straight over the bridge, which
// fails without br_netfilter and bypasses the host's translation with it
// (bridge-nf-call-ip6tables, as here, has the host see bridged frames).
// apply puts the rule back.
func TestPublishedPortIPv6Hairpin(t *testing.T) {
	port := testutil.FreePort(t)
	prefix := fmt.Sprintf("fd00:%x::", 0x1900+testutil.FreeSubnet())
	fwd6Before := readSysctl(fwd6)
	w := newLabWorld(t, "lab.yaml", func(s string) string {
		s = strings.Replace(s, "  subnets:\n", "  subnets:\n    - cidr: \""+prefix+"/64\"\n", 1)
		s = strings.Replace(s, "        defaultRoute: true\n", fmt.Sprintf("        defaultRoute: true\n    ports:\n      - {hostPort: %d, containerPort: 8000, hostIP: \"::\"}\n", port), 1)
		return dualServer(t, s)
	})
	w.Apply()
	server := w.names["server"]
	// ask requests the page through the gateway; the answer, and the
	// client address the server logged for it (http.server's log line).
	ask := func(tries int) (status, peer string) {
		t.Helper()
		code := fmt.Sprintf("import urllib.request,time\nfor i in range(%d):\n    try:\n        print(urllib.request.urlopen('http://[%s1]:%d/', timeout=2).status); break\n    except OSError as e: r=e; time.sleep(0.1)\nelse: print(r)", tries, prefix, port)
		_, out := w.Hutch("exec", w.names["client"], "--", "python3", "-c", code)
		time.Sleep(100 * time.Millisecond) // the server's log line
		b, _ := os.ReadFile(w.Root + "/containers/" + server + "/logs/container.log")
		for _, line := range strings.Split(string(b), "\n") {
			// [TIME STREAM TAG] PEER - - [DATE] "GET / HTTP/1.1" 200 -
			f := strings.Fields(line)
			for i := 0; i+3 < len(f) && strings.Contains(line, `"GET / HTTP/1.1" 200`); i++ {
				if f[i+1] == "-" && f[i+2] == "-" && strings.HasPrefix(f[i+3], "[") {
					peer = f[i]
					break
				}
			}
		}
		return strings.TrimSpace(out), peer
	}
	if got, peer := ask(100); got != "200" || peer != prefix+"1" {
		t.Fatalf("the client's request to [%s1]:%d (hairpin): %s, seen by the server from %s (want the gateway)", prefix, port, got, peer)
	}
	list, _ := run(t, "nft", "-a", "list", "chain", "inet", "hutch", "postrouting")
	handle := ""
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "hutch:nftrule/"+server+"/port-hairpin6\"") {
			handle = line[strings.LastIndex(line, " ")+1:]
		}
	}
	if handle == "" {
		t.Fatalf("no hairpin rule of %s:\n%s", server, list)
	}
	mustRun(t, "nft", "delete", "rule", "inet", "hutch", "postrouting", "handle", handle)
	if got, peer := ask(1); got == "200" && peer == prefix+"1" {
		t.Errorf("without the hairpin masquerade the server still saw the gateway: the rule proves nothing")
	}
	w.Apply()
	if got, peer := ask(100); got != "200" || peer != prefix+"1" {
		t.Errorf("after apply put the hairpin rule back: %s, from %s", got, peer)
	}
	if get := w.Must("get"); !strings.Contains(get, fmt.Sprintf("[::]:%d->8000/tcp", port)) || strings.Contains(get, fmt.Sprintf("0.0.0.0:%d", port)) {
		t.Errorf("hutch get of a port on :: only:\n%s", get)
	}
	w.Must("delete", "-f", w.Manifest)
	w.gone()
	if got := readSysctl(fwd6); got != fwd6Before {
		t.Errorf("net.ipv6.conf.all.forwarding after delete: %s, before %s", got, fwd6Before)
	}
}

// The preflight over IPv6, before anything is made: a port on :: is
// refused while an IPv6 socket of the host listens on it (naming the
// process), one on an IPv6 address the host does not have is refused, and
// a port that another container publishes on :: is refused for a
// container publishing it on every address; each changes nothing.
func TestPublishedPortConflictsIPv6(t *testing.T) {
	l := newLab(t)
	v6 := fmt.Sprintf("fd00:%x::", 0x1600+l.Subnet)
	port := l.Port
	ln, err := stdnet.Listen("tcp6", fmt.Sprintf("[::1]:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	l.dualStack(v6, fmt.Sprintf("{hostPort: %d, containerPort: 8000, hostIP: \"::\"}", port))
	code, out := l.Hutch("apply", "-f", l.Manifest)
	ln.Close()
	if code != 1 || !strings.Contains(out, fmt.Sprintf("pid %d (", os.Getpid())) || !strings.Contains(out, fmt.Sprintf("[::1]:%d", port)) || !strings.Contains(out, "nothing was changed") {
		t.Errorf("apply over a port an IPv6 socket listens on: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(l.HostIf) || len(l.CgroupDirs()) > 0 {
		t.Errorf("a conflict created something: %v", l.Leftovers())
	}
	// An IPv6 address the host does not have.
	l.dualStack(v6, fmt.Sprintf("{hostPort: %d, containerPort: 8000, hostIP: \"fd00:dead:beef::1\"}", port))
	if code, out := l.Hutch("apply", "-f", l.Manifest); code != 1 || !strings.Contains(out, "the host has no address fd00:dead:beef::1") {
		t.Errorf("an IPv6 address the host does not have: exit %d\n%s", code, out)
	}
	l.Gone()
	// Published on :: by this container, the port is taken for another
	// that publishes it on every address.
	l.dualStack(v6, fmt.Sprintf("{hostPort: %d, containerPort: 8000, hostIP: \"::\"}", port))
	l.Apply()
	other := newLab(t)
	other.Port = port
	other.Write(other.Manifest, nil)
	if code, out := other.Hutch("apply", "-f", other.Manifest); code != 1 || !strings.Contains(out, "already published by container "+l.Name+" on ::") {
		t.Errorf("a port another container publishes on ::: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(other.HostIf) {
		t.Errorf("a conflict created the other container's veth")
	}
	l.Must("delete", "-f", l.Manifest)
	l.Gone()
}
