//go:build linux

// Package e2e holds hutch's end-to-end tests: they build the hutch binary,
// run it as root against the real kernel with a temporary state root and
// manifests whose names and addresses are unique to each test, and check
// what the kernel reports. Every test removes what it made in t.Cleanup.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"hutch/internal/testutil"
)

var hutchBin string

func TestMain(m *testing.M) {
	// Published ports and NAT networks hold the host's forwarding (IPv4
	// and IPv6) while they exist: after every test it is what it was
	// before.
	params := []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}
	before := map[string][]byte{}
	for _, p := range params {
		before[p], _ = os.ReadFile(p)
	}
	code := testutil.RunWithHutch(m, &hutchBin)
	for _, p := range params {
		if after, _ := os.ReadFile(p); len(before[p]) > 0 && string(after) != string(before[p]) {
			fmt.Fprintf(os.Stderr, "e2e: %s is %s after the tests, %s before: a test left it changed\n", p, strings.TrimSpace(string(after)), strings.TrimSpace(string(before[p])))
			code = 1
		}
	}
	os.Exit(code)
}

// lab is one test's world: a state root, a manifest of the seed's web server
// with unique names and a unique /24, and the hutch binary.
type lab struct {
	t        *testing.T
	root     string
	manifest string
	name     string // container
	netns    string
	hostIf   string
	peerIf   string
	subnet   int    // 172.16.<subnet>.0/24
	hostAddr string // 172.16.x.1
	addr     string // 172.16.x.2, the container's
	port     int    // the host port its 8000 is published on
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	l := &lab{
		t:      t,
		root:   t.TempDir(),
		name:   testutil.Name("hw"),
		netns:  testutil.Name("hns"),
		hostIf: testutil.Name("hv"),
		peerIf: testutil.Name("hp"),
		subnet: testutil.FreeSubnet(),
	}
	l.hostAddr = fmt.Sprintf("172.16.%d.1", l.subnet)
	l.addr = fmt.Sprintf("172.16.%d.2", l.subnet)
	l.manifest = filepath.Join(t.TempDir(), "web.yaml")
	l.write(l.manifest, nil)
	t.Cleanup(l.cleanup)
	return l
}

// write writes a copy of manifests/webserver.yaml with the lab's names to
// path, after edit (if any) changed the text.
func (l *lab) write(path string, edit func(string) string) {
	l.t.Helper()
	b, err := os.ReadFile("../manifests/webserver.yaml")
	if err != nil {
		l.t.Fatal(err)
	}
	s := string(b)
	s = strings.ReplaceAll(s, "webserver", l.name)
	s = strings.ReplaceAll(s, "container_ns", l.netns)
	s = strings.ReplaceAll(s, "veth0", l.hostIf)
	s = strings.ReplaceAll(s, "veth1", l.peerIf)
	s = strings.ReplaceAll(s, "172.16.0.", fmt.Sprintf("172.16.%d.", l.subnet))
	// The published port: one free on this host, so labs never meet.
	if l.port == 0 {
		l.port = testutil.FreePort(l.t)
	}
	s = strings.ReplaceAll(s, "hostPort: 8080", fmt.Sprintf("hostPort: %d", l.port))
	// python is the container's pid 1, and pid 1 of a pid namespace
	// ignores SIGTERM unless it handles it (python does not): every stop
	// would wait the whole stop timeout (10 s by default) before SIGKILL.
	s = strings.Replace(s, "    cwd: /\n", "    cwd: /\n    stopTimeout: 300ms\n", 1)
	if edit != nil {
		s = edit(s)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// hutch runs the binary with the lab's root and returns its exit code and
// combined output.
func (l *lab) hutch(env []string, args ...string) (int, string) {
	l.t.Helper()
	cmd := exec.Command(hutchBin, append([]string{"--root", l.root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "NO_COLOR=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if os.Getenv("HUTCH_E2E_TRACE") != "" {
		l.t.Logf("hutch %s: %v", strings.Join(args, " "), time.Since(start))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		l.t.Fatalf("hutch %v: %v", args, err)
	}
	return 0, string(out)
}

func (l *lab) must(args ...string) string {
	l.t.Helper()
	code, out := l.hutch(nil, args...)
	if code != 0 {
		l.t.Fatalf("hutch %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (l *lab) apply() string { l.t.Helper(); return l.must("apply", "-f", l.manifest) }

// serving waits until the container's web server answers from the host
// (python needs some tens of milliseconds to bind after its start) and
// checks the answer: 200 and a listing that has server.py.
func (l *lab) serving() {
	l.t.Helper()
	url := "http://" + l.addr + ":8000/"
	c := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			if d := time.Since(start); d > time.Second {
				l.t.Logf("GET %s answered after %v (last error %v)", url, d, last)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte("server.py")) {
				l.t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
			}
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	_, get := l.hutch(nil, "get", "-o", "json", l.name)
	logs, _ := os.ReadFile(filepath.Join(l.root, "containers", l.name, "logs", "container.log"))
	proc, _ := os.ReadFile(filepath.Join(l.root, "containers", l.name, "process.json"))
	l.t.Fatalf("GET %s: never answered: %v\nget: %s\nprocess.json: %s\nlog:\n%s", url, last, get, proc, logs)
}

func run(t *testing.T, name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func netnsList() []string {
	ents, _ := os.ReadDir("/var/run/netns")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// cgroupDirs lists the container's cgroup folders that exist, in every
// hierarchy.
func (l *lab) cgroupDirs() []string {
	m, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/" + l.name)
	m2, _ := filepath.Glob("/sys/fs/cgroup/hutch/" + l.name)
	return append(m, m2...)
}

// bundle is the container's folder in the state store.
func (l *lab) bundle() string { return filepath.Join(l.root, "containers", l.name) }

// mounts lists the mountinfo lines that name the container's folder or netns.
func (l *lab) mounts() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, l.bundle()) || strings.Contains(line, "/"+l.netns+" ") {
			out = append(out, line)
		}
	}
	return out
}

// procs lists the processes whose root or command line is in the
// container's folder, and its supervisor.
func (l *lab) procs() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		root, _ := os.Readlink("/proc/" + e.Name() + "/root")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(root, l.bundle()) || bytes.Contains(cmd, []byte(l.bundle())) ||
			bytes.Equal(cmd, []byte("hutch-supervisor\x00"+l.name+"\x00")) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

// leftovers lists everything of the lab still on the host.
func (l *lab) leftovers() []string {
	var out []string
	for _, n := range netnsList() {
		if n == l.netns {
			out = append(out, "netns "+n)
		}
	}
	if linkExists(l.hostIf) {
		out = append(out, "link "+l.hostIf)
	}
	for _, d := range l.cgroupDirs() {
		out = append(out, "cgroup "+d)
	}
	for _, m := range l.mounts() {
		out = append(out, "mount "+m)
	}
	for _, p := range l.procs() {
		out = append(out, "process "+p)
	}
	if _, err := os.Stat(filepath.Join(l.root, "containers", l.name)); err == nil {
		out = append(out, "state folder")
	}
	return out
}

// gone checks that nothing of the lab is left on the host.
func (l *lab) gone() {
	l.t.Helper()
	if left := l.leftovers(); len(left) > 0 {
		l.t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
}

// cleanup removes the lab's container with hutch, then whatever is still
// there by hand, so that a failed test leaves nothing either.
func (l *lab) cleanup() {
	if hutchBin != "" {
		cmd := exec.Command(hutchBin, "--root", l.root, "delete", "--ignore-not-found", l.name)
		cmd.Run()
	}
	for _, p := range l.procs() {
		var pid int
		fmt.Sscan(p, &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if linkExists(l.hostIf) {
		exec.Command("ip", "link", "delete", l.hostIf).Run()
	}
	for _, n := range netnsList() {
		if n == l.netns {
			exec.Command("ip", "netns", "delete", n).Run()
		}
	}
	for _, d := range l.cgroupDirs() {
		// Kill anything left, then remove.
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				var pid int
				fmt.Sscan(f, &pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		for i := 0; i < 50 && syscall.Rmdir(d) == syscall.EBUSY; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	lines := l.mounts()
	sort.Sort(sort.Reverse(sort.StringSlice(lines)))
	for _, m := range lines {
		f := strings.Fields(m)
		if len(f) > 4 {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}

// processInfo is what `hutch get -o json` says of the container.
type processInfo struct {
	Name      string   `json:"name"`
	State     string   `json:"state"`
	PID       int      `json:"pid"`
	Addresses []string `json:"addresses"`
	Restarts  int      `json:"restarts"`
}

func (l *lab) get() processInfo {
	l.t.Helper()
	out := l.must("get", "-o", "json", l.name)
	var rows []processInfo
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		l.t.Fatalf("get -o json: %v\n%s", err, out)
	}
	return rows[0]
}
