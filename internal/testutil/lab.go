//go:build linux

package testutil

import (
	"bytes"
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
)

// Lab is one test's world for the tests that run the hutch binary (e2e,
// tutorial): a temporary state root and a copy of the seed's web server
// (manifests/webserver.yaml) with names unique to the test, a free
// 172.16.x.0/24 and a free host port. It runs the binary RunWithHutch
// built, and its Cleanup removes the container with hutch, then whatever
// is left by hand, so that a failed test leaves nothing either.
//
// A test may also fill a Lab itself, for a container of another manifest:
// Cleanup, Leftovers and Gone work from T, Root, Name, Netns and HostIf.
type Lab struct {
	T        *testing.T
	Root     string // the state root (--root)
	Manifest string
	Name     string // the container
	Netns    string
	HostIf   string
	PeerIf   string
	Subnet   int    // 172.16.<Subnet>.0/24
	HostAddr string // 172.16.x.1
	Addr     string // 172.16.x.2, the container's
	Port     int    // the host port its 8000 is published on
	// StopTimeout, when set, is the process's stopTimeout in the
	// manifests Write writes.
	StopTimeout string
}

// LabOptions are the options of NewLab.
type LabOptions struct {
	// Prefix starts the lab's names, so that the objects of a test suite
	// are told apart: the container PREFIXw..., the netns PREFIXns..., the
	// veth ends PREFIXv... and PREFIXp....
	Prefix string
	// StopTimeout becomes Lab.StopTimeout.
	StopTimeout string
}

// NewLab makes a lab and writes its manifest (Write with no edit). It needs
// root: without it the test skips, or fails under CI (RequireRoot).
func NewLab(t *testing.T, o LabOptions) *Lab {
	t.Helper()
	RequireRoot(t)
	l := &Lab{
		T:           t,
		Root:        t.TempDir(),
		Name:        Name(o.Prefix + "w"),
		Netns:       Name(o.Prefix + "ns"),
		HostIf:      Name(o.Prefix + "v"),
		PeerIf:      Name(o.Prefix + "p"),
		Subnet:      FreeSubnet(),
		StopTimeout: o.StopTimeout,
	}
	l.HostAddr = fmt.Sprintf("172.16.%d.1", l.Subnet)
	l.Addr = fmt.Sprintf("172.16.%d.2", l.Subnet)
	l.Manifest = filepath.Join(t.TempDir(), "web.yaml")
	l.Write(l.Manifest, nil)
	t.Cleanup(l.Cleanup)
	return l
}

// Write writes a copy of manifests/webserver.yaml with the lab's names,
// subnet and host port to path, after edit (if any) changed the text.
func (l *Lab) Write(path string, edit func(string) string) {
	l.T.Helper()
	b, err := os.ReadFile("../manifests/webserver.yaml") // from e2e/ or tutorial/
	if err != nil {
		l.T.Fatal(err)
	}
	s := string(b)
	s = strings.ReplaceAll(s, "webserver", l.Name)
	s = strings.ReplaceAll(s, "container_ns", l.Netns)
	s = strings.ReplaceAll(s, "veth0", l.HostIf)
	s = strings.ReplaceAll(s, "veth1", l.PeerIf)
	s = strings.ReplaceAll(s, "172.16.0.", fmt.Sprintf("172.16.%d.", l.Subnet))
	// The published port: one free on this host, so labs never meet.
	if l.Port == 0 {
		l.Port = FreePort(l.T)
	}
	s = strings.ReplaceAll(s, "hostPort: 8080", fmt.Sprintf("hostPort: %d", l.Port))
	if l.StopTimeout != "" {
		s = strings.Replace(s, "    cwd: /\n", "    cwd: /\n    stopTimeout: "+l.StopTimeout+"\n", 1)
	}
	if edit != nil {
		s = edit(s)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		l.T.Fatal(err)
	}
}

// Hutch runs the binary with the lab's root and returns its exit code and
// combined output. HUTCH_E2E_TRACE=1 logs how long each run took.
func (l *Lab) Hutch(args ...string) (int, string) {
	l.T.Helper()
	return l.HutchEnv(nil, args...)
}

// HutchEnv is Hutch with env added to the environment.
func (l *Lab) HutchEnv(env []string, args ...string) (int, string) {
	l.T.Helper()
	cmd := exec.Command(hutchBin, append([]string{"--root", l.Root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "NO_COLOR=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if os.Getenv("HUTCH_E2E_TRACE") != "" {
		l.T.Logf("hutch %s: %v", strings.Join(args, " "), time.Since(start))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		l.T.Fatalf("hutch %v: %v", args, err)
	}
	return 0, string(out)
}

// Must runs hutch and fails the test unless it exits 0; it returns the
// output.
func (l *Lab) Must(args ...string) string {
	l.T.Helper()
	code, out := l.Hutch(args...)
	if code != 0 {
		l.T.Fatalf("hutch %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// Apply applies the lab's manifest.
func (l *Lab) Apply() string { l.T.Helper(); return l.Must("apply", "-f", l.Manifest) }

// Serving waits until the container's web server answers from the host
// (python needs some tens of milliseconds to bind after its start) and
// checks the answer: 200 and a listing that has server.py.
func (l *Lab) Serving() {
	l.T.Helper()
	url := "http://" + l.Addr + ":8000/"
	c := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			if d := time.Since(start); d > time.Second {
				l.T.Logf("GET %s answered after %v (last error %v)", url, d, last)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte("server.py")) {
				l.T.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
			}
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	_, get := l.Hutch("get", "-o", "json", l.Name)
	logs, _ := os.ReadFile(filepath.Join(l.Root, "containers", l.Name, "logs", "container.log"))
	proc, _ := os.ReadFile(filepath.Join(l.Root, "containers", l.Name, "process.json"))
	l.T.Fatalf("GET %s: never answered: %v\nget: %s\nprocess.json: %s\nlog:\n%s", url, last, get, proc, logs)
}

// NetnsList lists the named network namespaces (ip netns list).
func NetnsList() []string {
	ents, _ := os.ReadDir("/var/run/netns")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// LinkExists says whether the host's network namespace has a link of that
// name.
func LinkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// CgroupDirs lists the container's cgroup folders that exist, in every
// hierarchy.
func (l *Lab) CgroupDirs() []string {
	m, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/" + l.Name)
	m2, _ := filepath.Glob("/sys/fs/cgroup/hutch/" + l.Name)
	return append(m, m2...)
}

// Bundle is the container's folder in the state store.
func (l *Lab) Bundle() string { return filepath.Join(l.Root, "containers", l.Name) }

// Mounts lists the mountinfo lines that name the container's folder or netns.
func (l *Lab) Mounts() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, l.Bundle()) || strings.Contains(line, "/"+l.Netns+" ") {
			out = append(out, line)
		}
	}
	return out
}

// Procs lists the processes whose root or command line is in the
// container's folder, and its supervisor.
func (l *Lab) Procs() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		root, _ := os.Readlink("/proc/" + e.Name() + "/root")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(root, l.Bundle()) || bytes.Contains(cmd, []byte(l.Bundle())) ||
			bytes.Equal(cmd, []byte("hutch-supervisor\x00"+l.Name+"\x00")) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

// Leftovers lists everything of the lab still on the host.
func (l *Lab) Leftovers() []string {
	var out []string
	for _, n := range NetnsList() {
		if n == l.Netns {
			out = append(out, "netns "+n)
		}
	}
	if LinkExists(l.HostIf) {
		out = append(out, "link "+l.HostIf)
	}
	for _, d := range l.CgroupDirs() {
		out = append(out, "cgroup "+d)
	}
	for _, m := range l.Mounts() {
		out = append(out, "mount "+m)
	}
	for _, p := range l.Procs() {
		out = append(out, "process "+p)
	}
	if _, err := os.Stat(filepath.Join(l.Root, "containers", l.Name)); err == nil {
		out = append(out, "state folder")
	}
	return out
}

// Gone checks that nothing of the lab is left on the host.
func (l *Lab) Gone() {
	l.T.Helper()
	if left := l.Leftovers(); len(left) > 0 {
		l.T.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
}

// Cleanup removes the lab's container with hutch, then whatever is still
// there by hand: its processes, host link, netns, cgroups and mounts.
func (l *Lab) Cleanup() {
	if hutchBin != "" {
		cmd := exec.Command(hutchBin, "--root", l.Root, "delete", "--ignore-not-found", l.Name)
		cmd.Run()
	}
	for _, p := range l.Procs() {
		var pid int
		fmt.Sscan(p, &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if LinkExists(l.HostIf) {
		exec.Command("ip", "link", "delete", l.HostIf).Run()
	}
	for _, n := range NetnsList() {
		if n == l.Netns {
			exec.Command("ip", "netns", "delete", n).Run()
		}
	}
	for _, d := range l.CgroupDirs() {
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
	lines := l.Mounts()
	sort.Sort(sort.Reverse(sort.StringSlice(lines)))
	for _, m := range lines {
		f := strings.Fields(m)
		if len(f) > 4 {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}
