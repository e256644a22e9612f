//go:build linux

package tutorial

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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hutch/internal/testutil"
)

var hutchBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunWithHutch(m, &hutchBin))
}

// lab is one test's copy of the seed's web server with unique names and a
// unique 172.16.x.0/24, and a temporary state root.
type lab struct {
	t                           *testing.T
	root, manifest              string
	name, netns, hostIf, peerIf string
	subnet                      int
	hostAddr, addr              string
	port                        int // the host port its 8000 is published on
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	l := &lab{t: t, root: t.TempDir(),
		name: testutil.Name("tw"), netns: testutil.Name("tns"),
		hostIf: testutil.Name("tv"), peerIf: testutil.Name("tp"), subnet: testutil.FreeSubnet()}
	l.hostAddr = fmt.Sprintf("172.16.%d.1", l.subnet)
	l.addr = fmt.Sprintf("172.16.%d.2", l.subnet)
	l.manifest = filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(l.manifest, []byte(l.rename(readSeedManifest(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.cleanup)
	return l
}

func readSeedManifest(t *testing.T) string {
	b, err := os.ReadFile("../manifests/webserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rename gives text the lab's names in place of the seed's.
func (l *lab) rename(s string) string {
	if l.port == 0 {
		l.port = testutil.FreePort(l.t)
	}
	return strings.NewReplacer("webserver", l.name, "container_ns", l.netns, "veth0", l.hostIf,
		"veth1", l.peerIf, "172.16.0.", fmt.Sprintf("172.16.%d.", l.subnet),
		"hostPort: 8080", fmt.Sprintf("hostPort: %d", l.port)).Replace(s)
}

// hutch runs the binary with the lab's root: exit code and output.
func (l *lab) hutch(args ...string) (int, string) {
	l.t.Helper()
	cmd := exec.Command(hutchBin, append([]string{"--root", l.root}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		l.t.Fatalf("hutch %v: %v", args, err)
	}
	return 0, out.String()
}

func (l *lab) must(args ...string) string {
	l.t.Helper()
	code, out := l.hutch(args...)
	if code != 0 {
		l.t.Fatalf("hutch %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// serving waits until the web server at addr answers (python binds some
// tens of milliseconds after it starts) and checks the listing.
func serving(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := c.Get("http://" + addr + ":8000/")
		if err != nil {
			last = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("server.py")) {
			t.Fatalf("GET %s: %d\n%s", addr, resp.StatusCode, body)
		}
		return
	}
	t.Fatalf("GET %s:8000: never answered: %v", addr, last)
}

// cgroupFile reads one number-per-line cgroup file of the lab's container.
func (l *lab) cgroupFile(ctrl, file string) string {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, "hutch", l.name, file))
	if err != nil {
		l.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (l *lab) cgroupInt(ctrl, file string) uint64 {
	l.t.Helper()
	n, err := strconv.ParseUint(l.cgroupFile(ctrl, file), 10, 64)
	if err != nil {
		l.t.Fatalf("%s/%s: %v", ctrl, file, err)
	}
	return n
}

// keyed reads a "key value" cgroup file (cpu.stat, memory.oom_control).
func (l *lab) keyed(ctrl, file, key string) uint64 {
	l.t.Helper()
	for _, line := range strings.Split(l.cgroupFile(ctrl, file), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	l.t.Fatalf("%s/%s: no %s", ctrl, file, key)
	return 0
}

// cleanup deletes the container with hutch, then anything left by hand.
func (l *lab) cleanup() {
	exec.Command(hutchBin, "--root", l.root, "delete", "--ignore-not-found", l.name).Run()
	removeLeftovers(l.name, l.netns, l.hostIf)
}

// removeLeftovers removes, by name, what a failed test may have left: the
// processes in the container's cgroup, the cgroup, the host link, the netns.
func removeLeftovers(cgName, netns, hostIf string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/" + cgName)
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, d := range dirs {
		for i := 0; i < 50 && os.Remove(d) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := net.InterfaceByName(hostIf); err == nil {
		exec.Command("ip", "link", "delete", hostIf).Run()
	}
	if _, err := os.Stat("/var/run/netns/" + netns); err == nil {
		exec.Command("ip", "netns", "delete", netns).Run()
	}
}

// leftovers lists what of the named objects is still on the host.
func leftovers(cgName, netns, hostIf, dir string) []string {
	var out []string
	if _, err := os.Stat("/var/run/netns/" + netns); err == nil {
		out = append(out, "netns "+netns)
	}
	if _, err := net.InterfaceByName(hostIf); err == nil {
		out = append(out, "link "+hostIf)
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/" + cgName)
	for _, d := range dirs {
		out = append(out, "cgroup "+d)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if (dir != "" && strings.Contains(line, dir)) || strings.Contains(line, "/netns/"+netns+" ") {
			out = append(out, "mount "+line)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil || dir == "" {
			continue
		}
		root, _ := os.Readlink("/proc/" + e.Name() + "/root")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(root, dir) || bytes.Contains(cmd, []byte(dir)) {
			out = append(out, "process "+e.Name()+" "+string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// inode is a file's inode number.
func inode(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
