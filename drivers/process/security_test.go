//go:build linux

package process

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/internal/testutil"
)

// probeSrc is a small static program run inside containers: it makes
// system calls that a shell cannot and prints what the kernel answered.
const probeSrc = `package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func errno(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return fmt.Sprint(int(e))
}

func main() {
	switch os.Args[1] {
	case "syscalls":
		// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)
		_, _, e := syscall.Syscall(syscall.SYS_KEYCTL, 0, ^uintptr(2), 1)
		fmt.Printf("keyctl=%s\n", errno(e))
		_, _, e = syscall.Syscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUSER, 0, 0)
		fmt.Printf("unshare=%s\n", errno(e))
		src, _ := syscall.BytePtrFromString("none")
		dst, _ := syscall.BytePtrFromString("/tmp")
		typ, _ := syscall.BytePtrFromString("tmpfs")
		_, _, e = syscall.Syscall6(syscall.SYS_MOUNT, uintptr(unsafe.Pointer(src)), uintptr(unsafe.Pointer(dst)), uintptr(unsafe.Pointer(typ)), 0, 0, 0)
		fmt.Printf("mount=%s\n", errno(e))
		_, _, e = syscall.Syscall6(syscall.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
		fmt.Printf("kexec_load=%s\n", errno(e))
		// Docker's profile allows these domains (one conditional rule each),
		// and no other: AF_VSOCK (40) is refused.
		for _, f := range []struct {
			name   string
			domain int
			typ    int
		}{{"inet", 2, 1}, {"inet6", 10, 2}, {"netlink", 16, 3}, {"packet", 17, 3}, {"vsock", 40, 1}} {
			fd, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(f.domain), uintptr(f.typ), 0)
			if e == 0 {
				syscall.Close(int(fd))
			}
			fmt.Printf("socket_%s=%s\n", f.name, errno(e))
		}
		// personality: 0 (query), 8 and 0xffffffff are allowed; 0x0040000
		// (ADDR_NO_RANDOMIZE) is not.
		for _, p := range []uintptr{0, 8, 0xffffffff, 0x0040000} {
			_, _, e = syscall.RawSyscall(syscall.SYS_PERSONALITY, p, 0, 0)
			fmt.Printf("personality_%#x=%s\n", p, errno(e))
		}
	case "openw":
		_, err := syscall.Open(os.Args[2], syscall.O_WRONLY, 0)
		fmt.Printf("openw=%v\n", err)
	}
}
`

// programs are the static test programs built for the package's tests,
// by name: each built once, removed by TestMain.
var programs = struct {
	sync.Mutex
	dirs  []string
	built map[string]*builtProgram
}{built: map[string]*builtProgram{}}

type builtProgram struct {
	once sync.Once
	path string
	err  error
}

// program builds src, a main package, once as a static binary called name
// (CGO_ENABLED=0, so it runs in any rootfs) and returns its path.
func program(t *testing.T, name, src string) string {
	t.Helper()
	programs.Lock()
	b := programs.built[name]
	if b == nil {
		b = &builtProgram{}
		programs.built[name] = b
	}
	programs.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "hutch-"+name)
		if err != nil {
			b.err = err
			return
		}
		programs.Lock()
		programs.dirs = append(programs.dirs, dir)
		programs.Unlock()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
		cmd := exec.Command("go", "build", "-o", name, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%w: %s", err, out)
			return
		}
		b.path = filepath.Join(dir, name)
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

// withProgram puts the static program built from src at /bin/NAME in the
// rootfs.
func withProgram(t *testing.T, name, src string) func(string) {
	p := program(t, name, src)
	return func(rootfs string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, "bin", name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func withProbe(t *testing.T) func(string) { return withProgram(t, "probe", probeSrc) }

func TestSeccompDefaultProfile(t *testing.T) {
	c := newContainer(t, []string{"httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"}, containerOpts{rootfs: withProbe(t)})
	c.start()
	got := c.mustExec("probe", "syscalls")
	for _, want := range []string{"keyctl=1\n", "unshare=1\n", "mount=1\n", "kexec_load=1\n",
		"socket_inet=ok\n", "socket_inet6=ok\n", "socket_netlink=ok\n", "socket_packet=ok\n", "socket_vsock=1\n",
		"personality_0x0=ok\n", "personality_0x8=ok\n", "personality_0xffffffff=ok\n", "personality_0x40000=1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("probe says\n%swant %q (1 is EPERM)", got, want)
		}
	}
	// An ordinary workload runs under the filter: httpd answers.
	if out := c.mustExec("wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"); out != "hello from hutch\n" {
		t.Errorf("httpd answered %q", out)
	}
	// The exec'd process got the same settings as the init.
	status := procStatus(c.mustExec("cat", "/proc/self/status"))
	for k, v := range map[string]string{"CapEff": "00000000a80425fb", "CapBnd": "00000000a80425fb", "CapInh": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"} {
		if status[k] != v {
			t.Errorf("exec'd /proc/self/status %s: %q, want %q", k, status[k], v)
		}
	}
}

// Without the filter the same calls get other answers: the EPERMs above are
// the filter's.
func TestSeccompControl(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{rootfs: withProbe(t), spec: func(s *specs.Spec) { s.Linux.Seccomp = nil }})
	c.start()
	got := c.mustExec("probe", "syscalls")
	if !strings.Contains(got, "keyctl=ok\n") || strings.Contains(got, "unshare=1\n") {
		t.Errorf("without seccomp the probe says\n%s", got)
	}
	if s := procStatus(c.mustExec("cat", "/proc/1/status"))["Seccomp"]; s != "0" {
		t.Errorf("Seccomp %q without a profile", s)
	}
}

func TestPythonHTTPServer(t *testing.T) {
	// A python rootfs: the host's /usr bound read-only, the merged-/usr links.
	c := newContainer(t, []string{"/usr/bin/python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/www"}, containerOpts{
		rootfs: func(rootfs string) {
			os.MkdirAll(filepath.Join(rootfs, "usr"), 0o755)
			os.Symlink("usr/lib", filepath.Join(rootfs, "lib"))
			os.Symlink("usr/lib64", filepath.Join(rootfs, "lib64"))
		},
		spec: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro", "nosuid", "nodev"}})
		},
	})
	c.start()
	var out string
	waitFor(t, "python's http.server", func() bool {
		o, _, code := c.exec("wget", "-q", "-O", "-", "http://127.0.0.1:8000/index.html")
		out = o
		return code == 0
	})
	if out != "hello from hutch\n" {
		t.Errorf("http.server answered %q", out)
	}
	if _, errs, code := c.exec("touch", "/usr/x"); code == 0 || !strings.Contains(errs, "Read-only") {
		t.Errorf("touch in the read-only bind: exit %d %q", code, errs)
	}
}

func TestMaskedReadonlyMountinfo(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	var masked []string
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"} {
		if _, err := os.Stat(p); err == nil {
			masked = append(masked, p)
		}
	}
	if len(masked) == 0 {
		t.Fatal("none of the masked files exists on this host")
	}
	if out := c.mustExec(append([]string{"cat"}, masked...)...); out != "" {
		t.Errorf("masked files are not empty:\n%s", out)
	}
	if out := c.mustExec("ls", "-A", "/sys/firmware"); out != "" {
		t.Errorf("masked /sys/firmware lists %q", out)
	}
	for _, p := range append(masked, "/sys/firmware", "/proc/sys") {
		if _, _, code := c.exec("umount", p); code == 0 {
			t.Errorf("umount %s inside succeeded", p)
		}
	}
	if _, errs, code := c.exec("sh", "-c", "echo x > /proc/sys/kernel/hostname"); code == 0 || !strings.Contains(errs, "Read-only") {
		t.Errorf("write to /proc/sys: exit %d, %q", code, errs)
	}
	if h := strings.TrimSpace(c.mustExec("hostname")); h != c.name {
		t.Errorf("hostname changed to %q", h)
	}
	// Every mount point inside is one the config asked for.
	allowed := []string{"/"}
	for _, m := range c.spec.Mounts {
		allowed = append(allowed, m.Destination)
	}
	allowed = append(allowed, c.spec.Linux.MaskedPaths...)
	allowed = append(allowed, c.spec.Linux.ReadonlyPaths...)
	for _, d := range defaultDevices {
		allowed = append(allowed, d.Path)
	}
	for _, line := range strings.Split(strings.TrimSpace(c.mustExec("cat", "/proc/1/mountinfo")), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !slices.Contains(allowed, f[4]) {
			t.Errorf("unexpected mount inside: %s", line)
		}
		// The device nodes are hutch's own, not binds of the host's /dev.
		if strings.Contains(line, " - devtmpfs ") {
			t.Errorf("a mount of the host's devtmpfs inside: %s", line)
		}
	}
	// ".." of / is / itself.
	if out := c.mustExec("sh", "-c", "cd /../../..; pwd; ls -di / /.. | awk '{print $1}' | uniq | wc -l"); out != "/\n1\n" {
		t.Errorf("cd /../../..; inodes of / and /..: %q", out)
	}
}

func TestNoLeakedFdAndSealedExe(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, exe)
	// A descriptor held without O_CLOEXEC (syscall.Open adds none) would be
	// inherited by every child the test process starts.
	fd, err := syscall.Open(t.TempDir(), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{rootfs: withProbe(t)})
	c.start()
	if out := c.mustExec("ls", "/proc/1/fd"); out != "0\n1\n2\n" {
		t.Errorf("/proc/1/fd inside lists %q", out)
	}
	ents, err := os.ReadDir("/proc/" + itoa(c.state().PID) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 3 {
		t.Errorf("the container's init holds %d descriptors, want 3", len(ents))
	}
	if out := c.mustExec("sh", "-c", "ls /proc/self/fd"); out != "0\n1\n2\n3\n" { // 3: ls's own folder
		t.Errorf("an exec'd process sees descriptors %q", out)
	}
	if out := c.mustExec("probe", "openw", "/proc/1/exe"); out == "openw=<nil>\n" {
		t.Errorf("/proc/1/exe opened for writing from inside")
	}
	if _, _, code := c.exec("sh", "-c", "echo x >> /proc/1/exe"); code == 0 {
		t.Errorf("write to /proc/1/exe succeeded")
	}
	if after := fileHash(t, exe); after != before {
		t.Errorf("the hutch binary changed: %x -> %x", before, after)
	}
}

func fileHash(t *testing.T, p string) [32]byte {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// CVE-2019-19921: /proc in the rootfs must not be a symlink.
func TestProcSymlinkRefused(t *testing.T) {
	c := newContainer(t, []string{"true"}, containerOpts{rootfs: func(rootfs string) {
		os.Remove(filepath.Join(rootfs, "proc"))
		os.Symlink("/tmp", filepath.Join(rootfs, "proc"))
	}})
	err := c.d.Start(t.Context(), c.proc)
	if err == nil || !strings.Contains(err.Error(), "rootfs /proc: is a symlink, must be a plain folder") {
		t.Fatalf("start with /proc a symlink: %v", err)
	}
}

// CVE-2021-30465: a symlink in the rootfs cannot send a mount outside it.
func TestMountTargetStaysInRoot(t *testing.T) {
	outside := "/" + testutil.Name("hutchesc")
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{
		rootfs: func(rootfs string) { os.Symlink(outside, filepath.Join(rootfs, "escape")) },
		spec: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/escape/x", Type: "tmpfs", Source: "tmpfs"})
		},
	})
	c.start()
	if _, err := os.Lstat(outside); err == nil {
		os.RemoveAll(outside)
		t.Fatalf("the mount target was created on the host at %s", outside)
	}
	if _, err := os.Stat(filepath.Join(c.bundle, "rootfs", outside, "x")); err != nil {
		t.Errorf("the target was not made inside the rootfs: %v", err)
	}
	if mi := c.mustExec("cat", "/proc/1/mountinfo"); !strings.Contains(mi, " "+outside+"/x ") {
		t.Errorf("no tmpfs at %s/x inside:\n%s", outside, mi)
	}
}

// Docker's capabilities include CAP_MKNOD, and hutch has no device cgroup:
// every file system of the container is nodev, so a device node that the
// container makes itself cannot be opened (were it the host's disk), while
// the nodes hutch gives it work. The node made here is 1:3 (null): a
// harmless device this host lets root open, so only nodev can refuse it.
func TestDeviceNodesUnusable(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	for _, p := range []string{"/dev/mynull", "/mynull", "/dev/shm/mynull", "/tmp/mynull"} {
		if _, errs, code := c.exec("mknod", p, "c", "1", "3"); code != 0 {
			t.Fatalf("mknod %s (with CAP_MKNOD) failed: %s", p, errs)
		}
		if _, errs, code := c.exec("sh", "-c", "echo x > "+p); code == 0 || !strings.Contains(errs, "Permission denied") {
			t.Errorf("a device node made inside at %s opens: exit %d, %q", p, code, errs)
		}
	}
	if out := c.mustExec("sh", "-c", "echo x > /dev/null && head -c 4 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c"); out != "4\n3\n" {
		t.Errorf("the default devices: %q", out)
	}
	if _, errs, code := c.exec("sh", "-c", "echo x > /dev/full"); code == 0 || !strings.Contains(errs, "No space") {
		t.Errorf("/dev/full: exit %d %q", code, errs)
	}
}
