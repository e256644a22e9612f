//go:build linux

package process

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	cgroupdrv "hutch/drivers/cgroup"
	"hutch/internal/testutil"
	"hutch/plan"
)

// TestMain lets the test binary serve as the hutch binary: the driver
// re-executes /proc/self/exe for its stages.
func TestMain(m *testing.M) {
	if Reexec(func(parent string) (CgroupJoiner, error) { return cgroupdrv.New("", parent) }) {
		return
	}
	code := m.Run()
	// The binaries built once for all tests.
	if hutchBin != "" {
		os.RemoveAll(filepath.Dir(hutchBin))
	}
	for _, dir := range programs.dirs {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// dockerCaps is Docker's default capability set (CapEff 00000000a80425fb).
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// testContainer is one container built the way plan.Build and the other
// drivers would: a busybox rootfs, a named netns with lo up, a cgroup, and
// a config.json with Docker's defaults.
type testContainer struct {
	t      testing.TB
	name   string
	root   string
	bundle string
	netns  string
	cgPath string
	cg     *cgroupdrv.Driver
	spec   *specs.Spec
	proc   *plan.Process
	d      *Driver
}

type containerOpts struct {
	memLimit int64
	cgParent string // "" = a unique test parent
	spec     func(*specs.Spec)
	rootfs   func(rootfs string)
}

func newContainer(t testing.TB, args []string, o containerOpts) *testContainer {
	t.Helper()
	testutil.RequireRoot(t)
	c := &testContainer{t: t, name: testutil.Name("hp"), root: t.TempDir()}
	c.bundle = filepath.Join(c.root, "containers", c.name)
	rootfs := filepath.Join(c.bundle, "rootfs")
	makeRootfs(t, rootfs)
	if o.rootfs != nil {
		o.rootfs(rootfs)
	}
	c.netns = makeNetns(t)
	parent := o.cgParent
	if parent == "" {
		parent = testutil.Name("hutchp")
	}
	cg, err := cgroupdrv.New("", parent)
	if err != nil {
		t.Fatal(err)
	}
	c.cg = cg
	c.cgPath = parent + "/" + c.name
	cgr := &plan.Cgroup{Container: c.name, Path: c.cgPath, Memory: plan.CgroupMemory{Limit: o.memLimit}}
	if o.memLimit > 0 {
		cgr.Memory.Swap = o.memLimit
	}
	t.Cleanup(func() {
		if err := cg.Delete(context.Background(), cgr); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := cg.Apply(context.Background(), &plan.Change{Action: plan.Create, After: cgr}); err != nil {
		t.Fatal(err)
	}
	c.spec = defaultSpec(t, c.name, args, c.netns, "/"+c.cgPath)
	if o.spec != nil {
		o.spec(c.spec)
	}
	c.writeSpec()
	c.proc = &plan.Process{
		Container: c.name, Bundle: c.bundle, Digest: "sha256:test1",
		Restart: plan.RestartPolicy{Policy: "never"}, StopSignal: "SIGTERM", StopTimeout: 300 * time.Millisecond,
		Logs: plan.LogPolicy{MaxSize: 1 << 20, MaxFiles: 2},
	}
	c.d = New(c.root, cg)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(c.bundle, "supervisor.log"))
			st, _ := readState(c.bundle)
			t.Logf("supervisor.log: %s\nstate: %+v", b, st)
		}
		if err := c.d.Delete(context.Background(), c.proc); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c
}

func (c *testContainer) writeSpec() {
	b, err := json.MarshalIndent(c.spec, "", " ")
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), b, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testContainer) start() {
	c.t.Helper()
	if err := c.d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: c.proc}); err != nil {
		c.t.Fatal(err)
	}
}

// exec runs args inside and returns stdout, stderr and the exit code.
func (c *testContainer) exec(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code, err := c.d.Exec(context.Background(), c.bundle, args, Stdio{Out: &out, Err: &errb}, false, nil)
	if err != nil {
		c.t.Fatalf("exec %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustExec runs args inside and fails the test unless they exit 0.
func (c *testContainer) mustExec(args ...string) string {
	c.t.Helper()
	out, errs, code := c.exec(args...)
	if code != 0 {
		c.t.Fatalf("exec %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	return out
}

func (c *testContainer) state() *State {
	c.t.Helper()
	st, err := c.d.State(c.bundle)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// waitEnd waits until the supervisor has ended (bounded, so that a broken
// supervisor fails the test instead of hanging it).
func (c *testContainer) waitEnd() *State {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := c.state()
		if !st.SupervisorAlive() && st.Status != StatusCreated {
			// Read again: the supervisor may have written its last state
			// between the read above and the liveness check.
			return c.state()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("supervisor still runs: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond (bounded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testContainer) logs(o LogOptions) (string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	if err := c.d.Logs(context.Background(), c.bundle, o, &out, &errb); err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String()
}

var applets = sync.OnceValue(func() []string {
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		panic("busybox --list: " + err.Error())
	}
	return strings.Fields(string(out))
})

// makeRootfs builds a busybox rootfs: /bin/busybox (static) and a link per
// applet, and the plain folders the mounts need.
func makeRootfs(t testing.TB, rootfs string) {
	t.Helper()
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root", "www"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets() {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "www/index.html"), []byte("hello from hutch\n"), 0o644)
}

// makeNetns creates a network namespace bind-mounted at a file in a temp
// folder (as iproute2 does under /var/run/netns) with lo up, and removes it
// when the test ends.
func makeNetns(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), testutil.Name("hpns"))
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread that unshares is left locked: the runtime ends it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatalf("netns %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Errorf("cleanup: unmount %s: %v", path, err)
		}
	})
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("netns %s: lo up: %v", path, err)
	}
	return path
}

// defaultSpec is the config plan.Build writes: Docker's defaults.
func defaultSpec(t testing.TB, name string, args []string, netnsPath, cgPath string) *specs.Spec {
	t.Helper()
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: name,
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: dockerCaps, Effective: dockerCaps, Permitted: dockerCaps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.CgroupNamespace},
				{Type: specs.NetworkNamespace, Path: netnsPath},
			},
			CgroupsPath: cgPath,
			MaskedPaths: []string{
				"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
				"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	sec, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Linux.Seccomp = sec
	return s
}

// procStatus reads the named fields of a /proc/PID/status text.
func procStatus(text string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

type unixStat struct{ dev, ino uint64 }

func statIno(t testing.TB, path string, s *unixStat) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	*s = unixStat{st.Dev, st.Ino}
}

func itoa(n int) string { return strconvItoa(n) }

var strconvItoa = strconv.Itoa

func syscallKill(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// hostNS reads the namespace of a thread of the test process. Not
// /proc/self: that is the main thread's, and makeNetns may have left the
// main thread in a test namespace (a locked thread that unshares is never
// reused; the main thread is then parked, not ended).
func hostNS(t testing.TB, ns string) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, err := os.Readlink("/proc/thread-self/ns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitReady waits until the container has logged "ready" (its signal
// handlers are in place by then).
func (c *testContainer) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if out, _ := c.logs(LogOptions{Tail: -1}); strings.Contains(out, "ready\n") {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal("the container never said ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
