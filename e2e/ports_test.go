//go:build linux

package e2e

import (
	"fmt"
	stdnet "net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"hutch/internal/testutil"
)

// publishing writes the lab's web server with its port 8000 published on
// host port hostPort (tcp) and udpPort (udp, to the container's 9000).
func (l *lab) publishing(hostPort, udpPort int) {
	l.Port = hostPort
	l.Write(l.Manifest, func(s string) string {
		return strings.Replace(s, fmt.Sprintf("      - hostPort: %d\n        containerPort: 8000\n", hostPort),
			fmt.Sprintf("      - {hostPort: %d, containerPort: 8000}\n", hostPort)+
				fmt.Sprintf("      - {hostPort: %d, containerPort: 9000, protocol: udp}\n", udpPort), 1)
	})
}

// get200 asks url until it answers 200 or 10 s pass, from the namespace at
// netns ("" for the host).
func get200(t *testing.T, netns, url string) bool {
	t.Helper()
	args := []string{"curl", "-s", "-g", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", url}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if out, _ := exec.Command(args[0], args[1:]...).Output(); string(out) == "200" {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Published ports: TCP from the host's loopback, from another namespace
// through the host's address, and UDP; drift of a rule repaired; delete
// leaves the ruleset and the host's forwarding as they were.
func TestPublishedPorts(t *testing.T) {
	l := newLab(t)
	nftBefore, _ := run(t, "nft", "list", "ruleset")
	fwdBefore, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	port, udp := testutil.FreePort(t), testutil.FreePort(t)
	l.publishing(port, udp)
	l.Apply()
	l.Serving()
	if !get200(t, "", fmt.Sprintf("http://127.0.0.1:%d/", port)) {
		t.Errorf("curl http://127.0.0.1:%d/ from the host never answered 200", port)
	}
	// Another namespace on the host reaches the port through the host's
	// address on its link.
	outside, far := outsideNetns(t)
	if !get200(t, outside, fmt.Sprintf("http://172.16.%d.1:%d/", far, port)) {
		t.Errorf("from another namespace, the host's 172.16.%d.1:%d never answered 200", far, port)
	}
	// UDP: a one-shot echo in the container, a datagram from the host.
	echo := exec.Command(hutchBin, "--root", l.Root, "exec", l.Name, "--", "python3", "-c",
		"import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('', 9000))\nd,a=s.recvfrom(100)\ns.sendto(d.upper(),a)")
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	reply, _ := exec.Command("python3", "-c", fmt.Sprintf(
		"import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(0.2)\nfor i in range(50):\n    s.sendto(b'ping', ('127.0.0.1', %d))\n    try:\n        print(s.recv(100).decode()); break\n    except OSError: time.sleep(0.05)", udp)).Output()
	echo.Process.Kill()
	echo.Wait()
	if strings.TrimSpace(string(reply)) != "PING" {
		t.Errorf("UDP to 127.0.0.1:%d: %q", udp, reply)
	}
	if get := l.Must("get"); !strings.Contains(get, fmt.Sprintf("0.0.0.0:%d->8000/tcp", port)) {
		t.Errorf("hutch get does not show the port:\n%s", get)
	}
	insp := l.Must("inspect", l.Name)
	if !strings.Contains(insp, "Published ports") || !strings.Contains(insp, fmt.Sprintf("tcp dport %d dnat ip to %s:8000", port, l.Addr)) || strings.Count(insp, "\n    present\n") != 6 {
		t.Errorf("hutch inspect does not read the port's rules from the kernel:\n%s", insp)
	}

	// Drift: the rule deleted by hand is shown by plan and put back.
	list, _ := run(t, "nft", "-a", "list", "chain", "inet", "hutch", "prerouting")
	var handle string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, fmt.Sprintf("port-tcp-%d-in", port)) {
			handle = line[strings.LastIndex(line, " ")+1:]
		}
	}
	mustRun(t, "nft", "delete", "rule", "inet", "hutch", "prerouting", "handle", handle)
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 2 || !strings.Contains(out, fmt.Sprintf("port-tcp-%d-in", port)) {
		t.Errorf("plan after the rule was deleted by hand: exit %d\n%s", code, out)
	}
	l.Apply()
	if !get200(t, "", fmt.Sprintf("http://127.0.0.1:%d/", port)) {
		t.Errorf("after the repair, 127.0.0.1:%d never answered", port)
	}

	l.Must("delete", "-f", l.Manifest)
	l.Gone()
	if after, _ := run(t, "nft", "list", "ruleset"); after != nftBefore {
		t.Errorf("nft ruleset after delete:\n%s\nbefore:\n%s", after, nftBefore)
	}
	if fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(fwd) != string(fwdBefore) {
		t.Errorf("ip_forward after delete: %s, before %s", fwd, fwdBefore)
	}
}

// A port already bound on the host, published by another container, or on
// a host address that does not exist is refused before anything is made,
// with its owner named.
func TestPublishedPortConflicts(t *testing.T) {
	l := newLab(t)
	port, udp := testutil.FreePort(t), testutil.FreePort(t)
	ln, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	l.publishing(port, udp)
	code, out := l.Hutch("apply", "-f", l.Manifest)
	ln.Close()
	if code != 1 || !strings.Contains(out, fmt.Sprintf("pid %d (", os.Getpid())) || !strings.Contains(out, "nothing was changed") {
		t.Errorf("apply over a bound port: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(l.HostIf) || len(l.CgroupDirs()) > 0 {
		t.Errorf("a conflict created something: %v", l.Leftovers())
	}
	// Published by another container.
	l.Apply()
	other := newLab(t)
	other.publishing(port, testutil.FreePort(t))
	if code, out := other.Hutch("apply", "-f", other.Manifest); code != 1 || !strings.Contains(out, "already published by container "+l.Name) {
		t.Errorf("a port another container publishes: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(other.HostIf) {
		t.Errorf("a conflict created the other container's veth")
	}
	l.Must("delete", "-f", l.Manifest)
	// A host address the host does not have.
	l.Write(l.Manifest, func(s string) string {
		return strings.Replace(s, "        containerPort: 8000\n", "        containerPort: 8000\n        hostIP: 127.1.2.3\n", 1)
	})
	if code, out := l.Hutch("apply", "-f", l.Manifest); code != 1 || !strings.Contains(out, "the host has no address 127.1.2.3") {
		t.Errorf("a host address the host does not have: exit %d\n%s", code, out)
	}
	l.Gone()
}

// outsideNetns is a namespace of the test's own beyond the host: a veth with
// 172.16.FAR.1 on the host and 172.16.FAR.2 inside, no route elsewhere.
func outsideNetns(t *testing.T) (ns string, far int) {
	t.Helper()
	ns = testutil.Name("hno")
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	hostEnd, farEnd := testutil.Name("hvo"), testutil.Name("hvf")
	mustRun(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", farEnd, "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "delete", hostEnd).Run() })
	far = testutil.FreeSubnet()
	mustRun(t, "ip", "addr", "add", fmt.Sprintf("172.16.%d.1/24", far), "dev", hostEnd)
	mustRun(t, "ip", "link", "set", hostEnd, "up")
	mustRun(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("172.16.%d.2/24", far), "dev", farEnd)
	mustRun(t, "ip", "-n", ns, "link", "set", farEnd, "up")
	return ns, far
}
