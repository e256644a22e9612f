//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hutch/internal/testutil"
)

// labWorld is a copy of one of manifests/lab*.yaml with names and subnets
// unique to the test, its state root, and what the host looked like before.
type labWorld struct {
	*lab
	names     map[string]string // the manifest's name -> the test's
	subnet    int               // 172.16.<subnet>.0/24 replaces 10.89.0.0/24
	bridge    string
	nftBefore string
	fwdBefore string
}

// newLabWorld writes manifests/FILE with the test's names: containers,
// networks and links get unique names, the network's subnet a free /24,
// and every process a short stop timeout (pid 1 ignores SIGTERM).
func newLabWorld(t *testing.T, file string, edit func(string) string) *labWorld {
	t.Helper()
	l := &lab{&testutil.Lab{T: t, Root: t.TempDir(), Name: "unused"}}
	w := &labWorld{lab: l, names: map[string]string{}, subnet: testutil.FreeSubnet()}
	b, err := os.ReadFile("../manifests/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	short := func(prefix string) string { return testutil.Name(prefix)[:9] }
	for _, n := range []string{"labnet", "server", "client", "router"} {
		w.names[n] = short("l" + n[:1])
	}
	w.names["client-router"] = w.names["client"] + "-" + w.names["router"]
	w.names["router-server"] = w.names["router"] + "-" + w.names["server"]
	for _, n := range []string{"client-router", "router-server", "labnet", "server", "client", "router"} {
		for _, pat := range []string{"name: %s\n", "name: %s,", "network: %s\n", "container: %s,", "http://%s:"} {
			s = strings.ReplaceAll(s, fmt.Sprintf(pat, n), fmt.Sprintf(pat, w.names[n]))
		}
	}
	s = strings.ReplaceAll(s, "10.89.0.", fmt.Sprintf("172.16.%d.", w.subnet))
	s = strings.ReplaceAll(s, "  process:\n", "  process:\n    stopTimeout: 300ms\n")
	if edit != nil {
		s = edit(s)
	}
	w.bridge = "hutch-" + w.names["labnet"]
	l.Manifest = filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(l.Manifest, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	w.nftBefore, _ = run(t, "nft", "list", "ruleset")
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	w.fwdBefore = string(fwd)
	t.Cleanup(func() {
		// Whatever a failed test left: delete -f takes it all.
		l.Hutch("delete", "-f", l.Manifest)
		if after, _ := run(t, "nft", "list", "ruleset"); after != w.nftBefore {
			t.Errorf("nft ruleset after delete:\n%s\nbefore:\n%s", after, w.nftBefore)
		}
		if fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(fwd) != w.fwdBefore {
			t.Errorf("ip_forward after delete: %s, before %s", fwd, w.fwdBefore)
		}
	})
	return w
}

// gone checks the host holds nothing of the lab: no bridge, no netns of its
// containers, no state.
func (w *labWorld) gone() {
	w.T.Helper()
	if testutil.LinkExists(w.bridge) {
		w.T.Errorf("bridge %s left", w.bridge)
	}
	for _, n := range testutil.NetnsList() {
		for _, c := range []string{"server", "client", "router"} {
			if n == w.names[c] {
				w.T.Errorf("netns %s left", n)
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(w.Root, "containers")); len(ents) > 0 {
		w.T.Errorf("state left: %v", ents)
	}
	if out, _ := run(w.T, "nft", "list", "ruleset"); out != w.nftBefore {
		w.T.Errorf("nft ruleset:\n%s\nbefore:\n%s", out, w.nftBefore)
	}
}

// request asks, from inside the client, for the server's page by name,
// until it answers or 20 s pass (python takes a moment to bind), and
// returns what the client printed last.
func (w *labWorld) request() string {
	w.T.Helper()
	code := "import urllib.request; print(urllib.request.urlopen('http://" + w.names["server"] + ":8000/', timeout=2).status)"
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var c int
		c, out = w.Hutch("exec", w.names["client"], "--", "python3", "-c", code)
		if c == 0 {
			return strings.TrimSpace(out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

// pid is a container's init pid, from hutch get.
func (w *labWorld) pid(name string) string {
	w.T.Helper()
	out := w.Must("get", name)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.Fields(lines[len(lines)-1])[2]
}

// manifests/lab.yaml: two containers on one network reach each other by
// name; the host reaches them through the bridge; the kernel has the
// bridge with both veths as ports, their entries in its FDB and hutch's
// isolation rule; a second apply changes nothing; a new address of the
// server reaches the client's /etc/hosts without restarting it; delete
// leaves the host as it was.
func TestLabOnANetwork(t *testing.T) {
	w := newLabWorld(t, "lab.yaml", nil)
	w.Apply()
	if got := w.request(); got != "200" {
		t.Fatalf("the client's request to the server by name: %s", got)
	}
	server := fmt.Sprintf("172.16.%d.3", w.subnet)
	if out, err := run(t, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+server+":8000/"); err != nil || out != "200" {
		t.Errorf("from the host, curl %s: %s %v", server, out, err)
	}
	ports, _ := run(t, "ip", "-o", "link", "show", "master", w.bridge)
	if strings.Count(strings.TrimSpace(ports), "\n") != 1 || strings.Count(ports, "state UP") != 2 {
		t.Errorf("ports of %s:\n%s", w.bridge, ports)
	}
	fdb, _ := run(t, "bridge", "fdb", "show", "br", w.bridge)
	for _, line := range strings.Split(strings.TrimSpace(ports), "\n") {
		port := strings.TrimSuffix(strings.Split(strings.Fields(line)[1], "@")[0], ":")
		if !strings.Contains(fdb, "dev "+port) {
			t.Errorf("the bridge's FDB has no entry on port %s:\n%s", port, fdb)
		}
	}
	addr, _ := run(t, "ip", "-o", "addr", "show", "dev", w.bridge)
	if !strings.Contains(addr, fmt.Sprintf("172.16.%d.1/24", w.subnet)) {
		t.Errorf("the bridge's address: %s", addr)
	}
	rules, _ := run(t, "nft", "list", "table", "inet", "hutch")
	if !strings.Contains(rules, `oifname "`+w.bridge+`" drop comment "hutch:nftrule/`+w.names["labnet"]+`/isolate"`) {
		t.Errorf("hutch's table:\n%s", rules)
	}
	if out := w.Apply(); !strings.Contains(out, "No changes") {
		t.Errorf("second apply:\n%s", out)
	}
	// get lists the network after the containers, inspect reads it from the kernel.
	get := w.Must("get")
	if !strings.Contains(get, "NETWORK") || !strings.Contains(get, w.names["labnet"]+"  "+w.bridge) ||
		!strings.Contains(get, w.names["client"]+","+w.names["server"]) && !strings.Contains(get, w.names["server"]+","+w.names["client"]) {
		t.Errorf("hutch get:\n%s", get)
	}
	insp := w.Must("inspect", w.names["labnet"])
	if !strings.Contains(insp, "Bridge "+w.bridge+" (up") || strings.Count(insp, "hutch") < 4 || !strings.Contains(insp, "\n    present\n") {
		t.Errorf("hutch inspect of the network:\n%s", insp)
	}
	_, hosts := w.Hutch("exec", w.names["client"], "--", "python3", "-c", "print(open('/etc/hosts').read())")
	if !strings.Contains(hosts, server+"\t"+w.names["server"]) {
		t.Errorf("the client's /etc/hosts:\n%s", hosts)
	}

	// The server moves to .9: the client's /etc/hosts follows, in place.
	clientPid := w.pid(w.names["client"])
	b, _ := os.ReadFile(w.Manifest)
	moved := strings.Replace(string(b), "      - name: eth0\n        network: "+w.names["labnet"]+"\n", "      - name: eth0\n        network: "+w.names["labnet"]+"\n        addresses: ["+fmt.Sprintf("172.16.%d.9/24", w.subnet)+"]\n", 1)
	if err := os.WriteFile(w.Manifest, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	out := w.Apply()
	if !strings.Contains(out, "file "+w.names["client"]+"/hosts (updated") {
		t.Errorf("apply after the server moved:\n%s", out)
	}
	_, hosts = w.Hutch("exec", w.names["client"], "--", "python3", "-c", "print(open('/etc/hosts').read())")
	if !strings.Contains(hosts, fmt.Sprintf("172.16.%d.9\t%s", w.subnet, w.names["server"])) {
		t.Errorf("the client's /etc/hosts after the server moved:\n%s", hosts)
	}
	if p := w.pid(w.names["client"]); p != clientPid {
		t.Errorf("the client was restarted (pid %s, then %s)", clientPid, p)
	}
	if got := w.request(); got != "200" {
		t.Errorf("after the move: %s", got)
	}

	// A network is never deleted from under a container.
	if code, out := w.Hutch("delete", w.names["labnet"]); code == 0 || !strings.Contains(out, "still on it") {
		t.Errorf("delete of the network alone: exit %d\n%s", code, out)
	}
	if !testutil.LinkExists(w.bridge) {
		t.Errorf("a refused delete removed the bridge")
	}
	w.Must("delete", "-f", w.Manifest)
	w.gone()
}

// manifests/lab-router.yaml: client and server on two links through a
// router that forwards; the client reaches the server by name; the router's
// ip_forward is set in its own namespace, the host's is untouched.
func TestLabRouter(t *testing.T) {
	w := newLabWorld(t, "lab-router.yaml", nil)
	w.Apply()
	if got := w.request(); got != "200" {
		t.Fatalf("the client's request through the router: %s", got)
	}
	router := "/var/run/netns/" + w.names["router"]
	if out, err := run(t, "nsenter", "--net="+router, "sysctl", "-n", "net.ipv4.ip_forward"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("the router's ip_forward: %s %v", out, err)
	}
	links, _ := run(t, "nsenter", "--net="+router, "ip", "-o", "link", "show")
	if strings.Count(links, "alias hutch:link:") != 2 {
		t.Errorf("the router's links:\n%s", links)
	}
	if out := w.Apply(); !strings.Contains(out, "No changes") {
		t.Errorf("second apply:\n%s", out)
	}
	if insp := w.Must("inspect", w.names["client-router"]); strings.Count(insp, "alias hutch:link:"+w.names["client-router"]) != 2 {
		t.Errorf("hutch inspect of a link:\n%s", insp)
	}
	// Drift: the router's forwarding turned off by hand is shown and repaired.
	mustRun(t, "nsenter", "--net="+router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
	if code, out := w.Hutch("plan", "-f", w.Manifest); code != 2 || !strings.Contains(out, "sysctl/"+w.names["router"]+"/net.ipv4.ip_forward") {
		t.Errorf("plan after the sysctl changed by hand: exit %d\n%s", code, out)
	}
	w.Apply()
	if got := w.request(); got != "200" {
		t.Errorf("after the repair: %s", got)
	}
	w.Must("delete", "-f", w.Manifest)
	w.gone()
}

// A network with nat: the host forwards while it exists and goes back to
// what it was after; traffic from a container to a namespace beyond the
// host (made by the test, reached through the host's routing) arrives from
// the host's address, masqueraded.
func TestLabNAT(t *testing.T) {
	w := newLabWorld(t, "lab.yaml", func(s string) string {
		return strings.Replace(s, "spec:\n  subnets:", "spec:\n  nat: true\n  subnets:", 1)
	})
	// The world beyond the host: a namespace on a veth of its own.
	outside, far := outsideNetns(t)

	w.Apply()
	if fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("ip_forward while a NAT network exists: %s", fwd)
	}
	rules, _ := run(t, "nft", "list", "table", "inet", "hutch")
	if !strings.Contains(rules, fmt.Sprintf(`ip saddr 172.16.%d.0/24 oifname != "%s" masquerade`, w.subnet, w.bridge)) {
		t.Errorf("hutch's table:\n%s", rules)
	}
	// The outside namespace has no route back to the lab's subnet: only a
	// masqueraded connection is answered.
	srv := exec.Command("ip", "netns", "exec", outside, "python3", "-c",
		"import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"+
			fmt.Sprintf("s.bind(('172.16.%d.2', 8099))\n", far)+"s.listen(1)\ns.settimeout(15)\nc,a=s.accept()\nprint(a[0])")
	var seen strings.Builder
	srv.Stdout = &seen
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	code := fmt.Sprintf("import socket,time\nfor i in range(100):\n    try:\n        socket.create_connection(('172.16.%d.2', 8099), timeout=1).close(); break\n    except OSError: time.sleep(0.1)", far)
	w.Hutch("exec", w.names["client"], "--", "python3", "-c", code)
	srv.Wait()
	if got := strings.TrimSpace(seen.String()); got != fmt.Sprintf("172.16.%d.1", far) {
		t.Errorf("the outside saw %q, want the host's 172.16.%d.1", got, far)
	}
	_, resolv := w.Hutch("exec", w.names["client"], "--", "python3", "-c", "print(open('/etc/resolv.conf').read())")
	if !strings.Contains(resolv, "written by hutch") || strings.Contains(resolv, "nameserver 127.") {
		t.Errorf("the client's /etc/resolv.conf:\n%s", resolv)
	}
	w.Must("delete", "-f", w.Manifest)
	w.gone()
	if fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(fwd) != w.fwdBefore {
		t.Errorf("ip_forward after delete: %s, before %s", fwd, w.fwdBefore)
	}
}

// A kill -9 of apply or delete at any step of a lab's new kinds is repaired
// by the next apply, and delete then leaves nothing.
func TestLabCrashAtEveryStep(t *testing.T) {
	var points []string
	for _, when := range []string{"before", "after"} {
		for _, k := range []string{"bridge", "nftrule", "file", "link", "sysctl"} {
			points = append(points, when+":"+k+".create", when+":"+k+".delete")
		}
	}
	for _, p := range points {
		t.Run(p, func(t *testing.T) {
			file := "lab.yaml"
			if strings.Contains(p, "link.") || strings.Contains(p, "sysctl.") {
				file = "lab-router.yaml"
			}
			w := newLabWorld(t, file, nil)
			args := []string{"apply", "-f", w.Manifest}
			if strings.HasSuffix(p, ".delete") {
				w.Apply()
				args = []string{"delete", "-f", w.Manifest}
			}
			if code, out := w.HutchEnv([]string{"HUTCH_FAULT=" + p}, args...); code != 137 {
				t.Fatalf("%v with HUTCH_FAULT=%s: exit %d, want 137\n%s", args, p, code, out)
			}
			w.Apply()
			if got := w.request(); got != "200" {
				t.Errorf("after the crash and an apply: %s", got)
			}
			if code, out := w.Hutch("plan", "-f", w.Manifest); code != 0 {
				t.Errorf("not converged: plan exit %d\n%s", code, out)
			}
			w.Must("delete", "-f", w.Manifest)
			w.gone()
		})
	}
}

// A network whose subnet the host already routes elsewhere is refused
// before anything is made.
func TestLabSubnetRoutedElsewhere(t *testing.T) {
	w := newLabWorld(t, "lab.yaml", nil)
	other, peer := testutil.Name("hx"), testutil.Name("hx")
	mustRun(t, "ip", "link", "add", other, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "delete", other).Run() })
	mustRun(t, "ip", "link", "set", other, "up")
	mustRun(t, "ip", "route", "add", fmt.Sprintf("172.16.%d.0/25", w.subnet), "dev", other)
	code, out := w.Hutch("apply", "-f", w.Manifest)
	if code != 1 || !strings.Contains(out, other) || !strings.Contains(out, "nothing was changed") {
		t.Errorf("apply over a routed subnet: exit %d\n%s", code, out)
	}
	w.gone()
}

// A network whose state folder was lost is still found by hutch's marks
// (the bridge's alias, the rules' comments, the records of the host's
// parameters) and removed by delete --orphans, forwarding restored.
func TestLabNetworkOrphanDeleted(t *testing.T) {
	w := newLabWorld(t, "lab.yaml", func(s string) string {
		return strings.Replace(s, "spec:\n  subnets:", "spec:\n  nat: true\n  subnets:", 1)
	})
	w.Apply()
	w.Must("delete", w.names["client"], w.names["server"])
	if err := os.RemoveAll(filepath.Join(w.Root, "containers", w.names["labnet"])); err != nil {
		t.Fatal(err)
	}
	if !testutil.LinkExists(w.bridge) {
		t.Fatalf("the bridge went with the state folder")
	}
	out := w.Must("delete", "--orphans")
	if !strings.Contains(out, w.names["labnet"]) {
		t.Errorf("delete --orphans:\n%s", out)
	}
	w.gone()
	if fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(fwd) != w.fwdBefore {
		t.Errorf("ip_forward after delete --orphans: %s, before %s", fwd, w.fwdBefore)
	}
}
