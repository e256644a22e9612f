package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
)

// skipOrFail skips a test that cannot run on this machine, except under CI
// (CI=true), which installs what it needs (scripts/deps.sh): there it fails.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// requirePodman checks for what `podman kube play` needs with runc: podman,
// runc, conmon, catatonit (the local pause image) and netavark with
// iptables (the pod's network and its published port).
func requirePodman(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	var missing []string
	for _, b := range []string{"podman", "runc", "conmon", "catatonit", "iptables", "nsenter", "unshare", "ip", "curl"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := os.Stat("/usr/lib/podman/netavark"); err != nil {
		missing = append(missing, "netavark")
	}
	if len(missing) > 0 {
		skipOrFail(t, "podman kube play needs "+strings.Join(missing, ", ")+" (scripts/deps.sh installs them)")
	}
}

// podman runs podman with storage, run and network state of its own in a
// temporary folder, inside a network namespace and a mount namespace the
// test made. The mount namespace has its own /run, /var/lib and /dev/shm,
// where podman keeps what no flag moves (its netns files, netavark's IPAM
// database, the blob info cache, its SHM locks), so nothing of the host's
// is read or written but the cgroups podman makes, which the test removes.
type podman struct {
	t      *testing.T
	dir    string
	netns  string
	holder *exec.Cmd
	conf   []string // the environment naming podman's configuration files
	flags  []string // podman's global flags
	kube   string   // the YAML played, for kube down
	// before is what was on the host before the test (snapshot).
	before    map[string]bool
	netnsMade bool
}

// hardLimit is the hard limit of resource res of this process.
func hardLimit(t *testing.T, res int) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(res, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Max
}

// newPodman makes the namespaces and the configuration, and registers the
// teardown that removes everything podman made and checks that nothing is
// left. podman's default rlimits for a container (nofile and nproc
// 1048576) are above what a process without CAP_SYS_RESOURCE may set, so
// the container gets this process's own hard limits, nproc no higher than
// the kernel's pid_max, which conmon's own limit is here.
func newPodman(t *testing.T) *podman {
	// Not t.TempDir: podman refuses a runroot path over 50 characters.
	dir, err := os.MkdirTemp("", "hxpod")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, dir: dir, netns: testutil.Name("hxpod"), before: map[string]bool{}}
	p.snapshot()
	t.Cleanup(p.close)
	for _, d := range []string{"storage", "run", "tmp", "net"} {
		if err := os.Mkdir(filepath.Join(p.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	nproc := hardLimit(t, unix.RLIMIT_NPROC)
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if pm, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && pm < nproc {
			nproc = pm
		}
	}
	nofile := hardLimit(t, unix.RLIMIT_NOFILE)
	files := map[string]string{
		"containers.conf": fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%s/events.log"
runtime = "runc"
[network]
network_backend = "netavark"
network_config_dir = "%s/net"
`, nofile, nofile, nproc, nproc, p.dir, p.dir),
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = \"%s/storage\"\nrunroot = \"%s/run\"\n", p.dir, p.dir),
		"registries.conf": "", // no registry to search: nothing is pulled
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.conf = []string{"CONTAINERS_CONF=" + filepath.Join(p.dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(p.dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(p.dir, "registries.conf"),
		"TMPDIR=" + filepath.Join(p.dir, "tmp")}
	p.flags = []string{"--root", filepath.Join(p.dir, "storage"), "--runroot", filepath.Join(p.dir, "run"),
		"--tmpdir", filepath.Join(p.dir, "tmp"), "--cgroup-manager", "cgroupfs", "--runtime", "runc",
		"--events-backend", "file", "--network-config-dir", filepath.Join(p.dir, "net")}
	if out, err := exec.Command("ip", "netns", "add", p.netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", p.netns, err, out)
	}
	p.netnsMade = true
	if out, err := exec.Command("ip", "-n", p.netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", p.netns, err, out)
	}
	p.startHolder()
	return p
}

// hostPaths are where podman writes by default whatever its flags say;
// the holder's tmpfs mounts must keep it from writing them on the host.
var hostPaths = []string{"/var/lib/containers", "/run/containers", "/run/libpod", "/etc/containers/networks", "/dev/shm/libpod_lock"}

// snapshot records what of podman's is on the host before the test: the
// cgroups below libpod_parent, the default paths, podman's netns files.
func (p *podman) snapshot() {
	for _, parent := range cgroupParents() {
		for _, d := range cgroupTree(parent) {
			p.before[d] = true
		}
	}
	for _, h := range hostPaths {
		p.before[h] = exists(h)
	}
	ns, _ := filepath.Glob("/run/netns/netns-*")
	for _, n := range ns {
		p.before[n] = true
	}
}

// close takes down what podman runs (kube down, then every pod and
// container, then any process naming the test's folder), ends the holder,
// whose mount namespace takes podman's mounts with it, removes the cgroups
// podman made and the network namespace, and checks that nothing is left.
func (p *podman) close() {
	t := p.t
	if p.holder != nil {
		if p.kube != "" {
			p.run("kube", "down", p.kube)
		}
		p.run("pod", "rm", "-f", "-a")
		p.run("rm", "-f", "-a")
		for _, pid := range procsNaming(p.dir) {
			unix.Kill(pid, unix.SIGKILL)
		}
		p.holder.Process.Kill()
		p.holder.Wait()
	}
	removeNewCgroups(t, p.before)
	if p.netnsMade {
		if out, err := exec.Command("ip", "netns", "del", p.netns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", p.netns, err, out)
		}
	}
	p.checkGone()
	if err := os.RemoveAll(p.dir); err != nil {
		t.Errorf("remove %s: %v", p.dir, err)
	}
}

// startHolder starts the process whose namespaces podman runs in: the
// test's network namespace and a private mount namespace with tmpfs on
// /run, /var/lib and /dev/shm.
func (p *podman) startHolder() {
	t := p.t
	script := "mount -t tmpfs -o mode=0755 tmpfs /run && mount -t tmpfs -o mode=0755 tmpfs /var/lib && " +
		"mount -t tmpfs -o mode=1777 tmpfs /dev/shm && echo ready && exec sleep infinity"
	p.holder = exec.Command("nsenter", "--net=/run/netns/"+p.netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	stdout, err := p.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	p.holder.Stderr = &stderr
	if err := p.holder.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("namespace holder: %q, %v: %s", line, err, stderr.String())
	}
}

// run runs podman in the holder's namespaces.
func (p *podman) run(args ...string) (string, error) {
	a := append([]string{"-t", strconv.Itoa(p.holder.Process.Pid), "-m", "-n", "podman"}, p.flags...)
	cmd := exec.Command("nsenter", append(a, args...)...)
	cmd.Env = append(os.Environ(), p.conf...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs podman and fails the test when it fails.
func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// get asks url from inside the test's network namespace.
func (p *podman) get(url string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", p.netns, "curl", "-sS", "-m", "2", url).CombinedOutput()
	return string(out), err
}

// cgroupParents are the libpod_parent cgroups of every hierarchy, podman's
// parent for its pods under the cgroupfs manager.
func cgroupParents() []string {
	ps, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
	if p := "/sys/fs/cgroup/libpod_parent"; exists(p) {
		ps = append(ps, p)
	}
	return ps
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// cgroupTree lists the folders below root, deepest first.
func cgroupTree(root string) []string {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// removeNewCgroups removes the cgroups podman made during the test: every
// folder below a libpod_parent that was not there before (before holds
// the folders that were), the emptied parent too when it is new.
func removeNewCgroups(t *testing.T, before map[string]bool) {
	for _, parent := range cgroupParents() {
		for _, d := range cgroupTree(parent) {
			if before[d] {
				continue
			}
			var err error
			for i := 0; i < 50; i++ {
				if err = unix.Rmdir(d); err == nil || err == unix.ENOENT {
					break
				}
				time.Sleep(100 * time.Millisecond) // its last process is still exiting
			}
			if err != nil && err != unix.ENOENT {
				t.Errorf("cgroup %s that podman made: rmdir: %v", d, err)
			}
		}
	}
}

// TestPodmanKubePlayRunsTheExportedWebServer exports the web server as
// Kubernetes YAML with its image, loads the image into a podman of the
// test's own (storage in a temporary folder, a network and a mount
// namespace of its own), plays the YAML with runc and asks the published
// port 8080 on the namespace's loopback for /: the server answers with the
// listing of the image's root. Then podman takes it down and the test
// checks that no mount, network namespace, cgroup or process is left.
func TestPodmanKubePlayRunsTheExportedWebServer(t *testing.T) {
	requirePodman(t)
	out := t.TempDir()
	exportTo(t, t.TempDir(), "--format", "kube", "--output", out)
	kube := filepath.Join(out, "kube.yaml")

	p := newPodman(t)
	p.kube = kube

	if o := p.must("load", "-i", filepath.Join(out, "webserver.tar")); !strings.Contains(o, "localhost/hutch/webserver:latest") {
		t.Fatalf("podman load: %s", o)
	}
	p.must("kube", "play", kube)
	var body string
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if body, err = p.get("http://127.0.0.1:8080/"); err == nil && strings.Contains(body, "Directory listing for /") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || !strings.Contains(body, "Directory listing for /") || !strings.Contains(body, "server.py") {
		logs, _ := p.run("logs", "webserver-webserver")
		ps, _ := p.run("ps", "-a")
		t.Fatalf("GET http://127.0.0.1:8080/ in the pod's namespace: %v\n%s\npodman ps -a:\n%s\nlogs:\n%s", err, body, ps, logs)
	}
	inspect := p.must("inspect", "--format", "{{.Config.Entrypoint}} {{.Config.User}} {{.Config.WorkingDir}}", "localhost/hutch/webserver:latest")
	if strings.TrimSpace(inspect) != "[python3 /server.py] 0:0 /" {
		t.Errorf("podman inspect of the image: %q", inspect)
	}
	if o := p.must("kube", "down", kube); !strings.Contains(o, "Pods removed") {
		t.Errorf("podman kube down: %s", o)
	}
}

// procsNaming are the processes whose command line holds s.
func procsNaming(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkGone requires that nothing of the test's podman is left on the
// host: no process naming its folder, no mount of it, no network namespace
// of podman's, no cgroup below libpod_parent, none of the host paths podman
// writes by default.
func (p *podman) checkGone() {
	t := p.t
	if pids := procsNaming(p.dir); len(pids) > 0 {
		t.Errorf("processes of the test's podman left: %v", pids)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, p.dir) || strings.Contains(l, p.netns) {
			t.Errorf("mount left: %s", l)
		}
	}
	for _, parent := range cgroupParents() {
		for _, d := range cgroupTree(parent) {
			if !p.before[d] {
				t.Errorf("cgroup left: %s", d)
			}
		}
	}
	for _, h := range hostPaths {
		if exists(h) && !p.before[h] {
			t.Errorf("podman wrote %s on the host", h)
		}
	}
	ns, _ := filepath.Glob("/run/netns/netns-*")
	for _, n := range ns {
		if !p.before[n] {
			t.Errorf("podman's network namespace left: %s", n)
		}
	}
	if exec.Command("ip", "netns", "pids", p.netns).Run() == nil {
		t.Errorf("network namespace %s left", p.netns)
	}
}
