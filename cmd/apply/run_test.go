package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	processdrv "hutch/drivers/process"
	"hutch/internal/testutil"
	"hutch/plan"
)

// asHutch makes the test binary behave as the hutch binary: the root tests
// below run it as `hutch run`, and the process driver re-executes it
// (/proc/self/exe) for the container's init and a supervisor's stages,
// which it names in _HUTCH_STAGE.
const asHutch = "_HUTCH_RUN_TEST_AS_HUTCH"

func init() {
	if os.Getenv(asHutch) == "" && os.Getenv("_HUTCH_STAGE") == "" {
		return
	}
	if processdrv.Reexec(newCgroupJoiner) {
		os.Exit(0)
	}
	os.Exit(run(os.Args[1:]))
}

func TestRunOneContainer(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string // in the error; "" for none
	}{
		{[]string{"a"}, ""},
		{nil, "m.yaml: no container document"},
		{[]string{"a", "b"}, "m.yaml: 2 container documents (a, b): hutch run runs exactly one"},
	} {
		d := &plan.Desired{}
		for _, n := range tc.names {
			d.Containers = append(d.Containers, &plan.Container{Name: n})
		}
		err := oneContainer("m.yaml", d)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.names, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one with %q", tc.names, err, tc.want)
		}
	}
}

// TestRunRefusesBeforeTouchingAnything: a bad manifest and a manifest of
// two containers fail with status 125 (hutch's own failure, not the
// workload's) and the place of the problem, and the state root stays empty.
func TestRunRefusesBeforeTouchingAnything(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: hutch/v1alpha1\nkind: Container\nmetadata: {name: Bad_Name}\nspec: {}\n"), 0o644)
	two := filepath.Join(dir, "two.yaml")
	doc := "apiVersion: hutch/v1alpha1\nkind: Container\nmetadata: {name: %s}\nspec:\n  rootfs: {binaries: [/bin/sh]}\n  process: {args: [/bin/sh]}\n"
	os.WriteFile(two, []byte(fmt.Sprintf(doc, "rrone")+"---\n"+fmt.Sprintf(doc, "rrtwo")), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-f", bad}, bad + ":3:"},
		{[]string{"run", "--rm", "-f", two}, "2 container documents (rrone, rrtwo)"},
	} {
		root := t.TempDir()
		var code int
		stderr := captureStderr(t, func() { code, _ = runCmd(t, append([]string{"--root", root}, tc.args...)...) })
		if code != runFailed {
			t.Errorf("%v: exit %d, want %d", tc.args, code, runFailed)
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr, tc.want)
		}
		if ents, _ := os.ReadDir(root); len(ents) != 0 {
			t.Errorf("%v: wrote %v", tc.args, ents)
		}
	}
	if code, _ := runCmd(t, "--root", t.TempDir(), "run"); code == 0 {
		t.Error("run without -f: exit 0")
	}
}

func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	f()
	os.Stderr = saved
	w.Close()
	return string(<-done)
}

// runLab is one root test's container: a busybox rootfs, a netns and a
// veth pair of unique names in 172.16.99.0/24, a 50M memory limit, a state
// root of its own.
type runLab struct {
	t        *testing.T
	root     string
	manifest string
	name     string
	netns    string
	hostIf   string
	peerIf   string
}

func newRunLab(t *testing.T, script string) *runLab {
	t.Helper()
	testutil.RequireRoot(t)
	l := &runLab{t: t, root: t.TempDir(), name: testutil.Name("rr"), netns: testutil.Name("rrns"),
		hostIf: testutil.Name("rrh"), peerIf: testutil.Name("rrc")}
	l.manifest = filepath.Join(t.TempDir(), "run.yaml")
	m := fmt.Sprintf(`apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: %s
spec:
  rootfs:
    binaries: [/bin/busybox]
  process:
    args: [/bin/busybox, sh, -c, %q]
    stopTimeout: 300ms
  restartPolicy:
    policy: never
  network:
    namespace: %s
    interfaces:
      - name: %s
        addresses: [172.16.99.2/24]
        host:
          name: %s
          addresses: [172.16.99.1/24]
  resources:
    memory: 50M
`, l.name, script, l.netns, l.peerIf, l.hostIf)
	if err := os.WriteFile(l.manifest, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.cleanup)
	return l
}

// cmd is the test binary as `hutch --root ROOT args...`.
func (l *runLab) cmd(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	c := exec.Command(exe, append([]string{"--root", l.root}, args...)...)
	c.Env = append(os.Environ(), asHutch+"=1", "NO_COLOR=1")
	// A workload that outlives a killed hutch holds its stdout and stderr:
	// Wait stops waiting for their end this long after hutch has ended.
	c.WaitDelay = 2 * time.Second
	return c
}

// hutch runs `hutch args...` to its end and returns its status, stdout and
// stderr.
func (l *runLab) hutch(stdin string, args ...string) (int, string, string) {
	l.t.Helper()
	c := l.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = strings.NewReader(stdin), &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		l.t.Fatalf("hutch %v: %v", args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// start starts `hutch args...` and returns once the workload has printed
// "ready" on stdout.
func (l *runLab) start(args ...string) (*exec.Cmd, *bytes.Buffer) {
	l.t.Helper()
	c := l.cmd(args...)
	var errb bytes.Buffer
	c.Stderr = &errb
	out, err := c.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		c.Process.Kill()
		c.Wait()
		l.t.Fatalf("hutch %v: first line %q (%v), stderr: %s", args, line, err, errb.String())
	}
	go io.Copy(io.Discard, out)
	return c, &errb
}

// sleeping waits until the container's one process is the workload's
// sleep (the shell before it has exec'd it), and returns its pid.
func (l *runLab) sleeping() []string {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := l.procs()
		if len(pids) == 1 {
			if cmdline, _ := os.ReadFile("/proc/" + pids[0] + "/cmdline"); strings.HasPrefix(string(cmdline), "/bin/busybox\x00sleep\x00") {
				return pids
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the container's processes are %v, not the one sleep", pids)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits for c to end; after a minute (a hang) it kills it and fails.
func (l *runLab) wait(c *exec.Cmd) {
	l.t.Helper()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		c.Process.Kill()
		<-done
		l.t.Errorf("hutch %v still ran after a minute: killed", c.Args[1:])
	}
}

// running says whether pid runs: it exists and is no zombie (an orphan is
// reaped by whoever adopted it, maybe later).
func running(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// cgroupDirs are the container's cgroup folders, in every hierarchy.
func (l *runLab) cgroupDirs() []string {
	m, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/" + l.name)
	m2, _ := filepath.Glob("/sys/fs/cgroup/hutch/" + l.name)
	return append(m, m2...)
}

// procs are the pids in the container's cgroup (of the first hierarchy
// that has it: every hierarchy has the same).
func (l *runLab) procs() []string {
	for _, d := range l.cgroupDirs() {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		return strings.Fields(string(b))
	}
	return nil
}

// leftovers is what the kernel and the state root still have of the
// container.
func (l *runLab) leftovers() []string {
	var out []string
	if _, err := os.Stat(filepath.Join(plan.DefaultOptions().NetnsDir, l.netns)); err == nil {
		out = append(out, "netns "+l.netns)
	}
	for _, ifc := range []string{l.hostIf, l.peerIf} {
		if _, err := os.Stat("/sys/class/net/" + ifc); err == nil {
			out = append(out, "link "+ifc)
		}
	}
	for _, d := range l.cgroupDirs() {
		out = append(out, "cgroup "+d)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, l.root) || strings.Contains(line, "/"+l.netns+" ") {
			out = append(out, "mount "+line)
		}
	}
	if _, err := os.Stat(filepath.Join(l.root, "containers", l.name)); err == nil {
		out = append(out, "state folder "+filepath.Join(l.root, "containers", l.name))
	}
	return out
}

func (l *runLab) gone() {
	l.t.Helper()
	if left := l.leftovers(); len(left) > 0 {
		l.t.Errorf("left on the host:\n%s", strings.Join(left, "\n"))
	}
}

// cleanup deletes the container with hutch, then removes by hand whatever
// is still there (and says so).
// mustDelete runs hutch delete -f on the lab's manifest and fails the test
// when it fails.
func (l *runLab) mustDelete() {
	l.t.Helper()
	if code, out, errs := l.hutch("", "delete", "-f", l.manifest); code != 0 {
		l.t.Fatalf("delete: exit %d: %s %s", code, out, errs)
	}
}

// deleteAll is mustDelete, then gone.
func (l *runLab) deleteAll() {
	l.t.Helper()
	l.mustDelete()
	l.gone()
}

func (l *runLab) cleanup() {
	if len(l.leftovers()) == 0 {
		return
	}
	l.hutch("", "delete", "-f", l.manifest)
	left := l.leftovers()
	if len(left) == 0 {
		return
	}
	l.t.Errorf("cleanup: hutch delete left:\n%s", strings.Join(left, "\n"))
	for _, d := range l.cgroupDirs() {
		os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
		for _, p := range l.procs() {
			var pid int
			fmt.Sscan(p, &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (strings.HasPrefix(f[4], l.root) || strings.HasSuffix(f[4], "/"+l.netns)) {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	exec.Command("ip", "netns", "delete", l.netns).Run()
	exec.Command("ip", "link", "delete", l.hostIf).Run()
	time.Sleep(100 * time.Millisecond)
	for _, d := range l.cgroupDirs() {
		os.Remove(d)
	}
}

// TestRunPassesStatusAndStreams: the workload's exit code is hutch run's,
// its stdout and stderr are hutch's, it reads hutch's stdin. Without --rm
// the container stays, get shows it exited with its code, and delete
// removes it all.
func TestRunPassesStatusAndStreams(t *testing.T) {
	l := newRunLab(t, "echo out; echo err >&2; read x; echo got-$x; exit 7")
	code, out, errs := l.hutch("abc\n", "run", "-f", l.manifest)
	if code != 7 {
		t.Fatalf("exit %d, want 7; stdout %q, stderr %q", code, out, errs)
	}
	if out != "out\ngot-abc\n" || errs != "err\n" {
		t.Errorf("stdout %q, stderr %q; want %q, %q", out, errs, "out\ngot-abc\n", "err\n")
	}
	if len(l.cgroupDirs()) == 0 {
		t.Error("without --rm, the cgroup is gone")
	}
	code, out, errs = l.hutch("", "get", "-o", "json", l.name)
	if code != 0 || !strings.Contains(out, `"state": "exited"`) || !strings.Contains(out, `"exitCode": 7`) {
		t.Errorf("get: exit %d, %s %s", code, out, errs)
	}
	l.deleteAll()
}

// TestRunRemoveLeavesNothing: with --rm, once the process has ended no
// netns, link, cgroup, mount or state folder of the container is left; a
// failed start with --rm leaves nothing either.
func TestRunRemoveLeavesNothing(t *testing.T) {
	l := newRunLab(t, "ip=$(cat /proc/net/fib_trie | grep -c 172.16.99.2); test $ip -gt 0")
	if code, out, errs := l.hutch("", "run", "--rm", "-f", l.manifest); code != 0 {
		t.Fatalf("exit %d (want 0: the workload sees its address); stdout %q, stderr %q", code, out, errs)
	}
	l.gone()

	os.WriteFile(l.manifest, bytes.Replace(mustRead(t, l.manifest), []byte("args: [/bin/busybox,"), []byte("args: [/bin/nothere,"), 1), 0o644)
	code, _, errs := l.hutch("", "run", "--rm", "-f", l.manifest)
	if code != runFailed || !strings.Contains(errs, "/bin/nothere") {
		t.Errorf("a process that cannot start: exit %d, stderr %q; want %d and the program named", code, errs, runFailed)
	}
	l.gone()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRunForwardsSignals: a SIGTERM to hutch reaches the workload's handler
// (its status is the handler's); a pid 1 without a handler, which the
// kernel would not let SIGTERM end, ends with status 143 as if it had; with
// --rm nothing is left either way.
func TestRunForwardsSignals(t *testing.T) {
	l := newRunLab(t, `trap "echo trapped >&2; exit 3" TERM; echo ready; /bin/busybox sleep 1000 & wait`)
	c, errb := l.start("run", "--rm", "-f", l.manifest)
	c.Process.Signal(syscall.SIGTERM)
	l.wait(c)
	if code := c.ProcessState.ExitCode(); code != 3 || !strings.Contains(errb.String(), "trapped") {
		t.Errorf("trapped SIGTERM: exit %d, stderr %q; want 3 and the trap's message", code, errb.String())
	}
	l.gone()

	l = newRunLab(t, `echo ready; exec /bin/busybox sleep 1000`)
	c, errb = l.start("run", "--rm", "-f", l.manifest)
	pids := l.sleeping()
	c.Process.Signal(syscall.SIGTERM)
	l.wait(c)
	if code := c.ProcessState.ExitCode(); code != 128+15 {
		t.Errorf("SIGTERM to a sleep as pid 1: exit %d, want 143; stderr %q", code, errb.String())
	}
	if running(pids[0]) {
		t.Errorf("the sleep (pid %s) still runs", pids[0])
	}
	l.gone()
}

// TestRunKilledThenDelete: a hutch run killed with SIGKILL while its
// workload runs, or killed midway through making the container (fault
// injection after the rootfs step), leaves nothing `hutch delete -f`
// cannot find: the delete kills the workload by its cgroup and pid, and
// removes the rest.
func TestRunKilledThenDelete(t *testing.T) {
	l := newRunLab(t, `echo ready; exec /bin/busybox sleep 1000`)
	c, _ := l.start("run", "--rm", "-f", l.manifest)
	pids := l.sleeping()
	c.Process.Kill()
	l.wait(c)
	if !running(pids[0]) {
		t.Fatal("the sleep died with hutch")
	}
	l.mustDelete()
	if running(pids[0]) {
		t.Errorf("the sleep (pid %s) still runs after delete", pids[0])
	}
	l.gone()

	l = newRunLab(t, `exit 0`)
	c = l.cmd("run", "--rm", "-f", l.manifest)
	c.Env = append(c.Env, "HUTCH_FAULT=after:rootfs.create")
	if out, err := c.CombinedOutput(); c.ProcessState.ExitCode() != 137 {
		t.Fatalf("fault injection: %v: %s", err, out)
	}
	if len(l.leftovers()) == 0 {
		t.Fatal("the killed run made nothing: the test tests nothing")
	}
	l.deleteAll()
}

// TestRunRefusesARunningContainer: a container that runs under its
// supervisor (hutch apply) makes hutch run fail, and it keeps running.
func TestRunRefusesARunningContainer(t *testing.T) {
	l := newRunLab(t, `exec /bin/busybox sleep 1000`)
	if code, out, errs := l.hutch("", "apply", "-f", l.manifest); code != 0 {
		t.Fatalf("apply: exit %d: %s %s", code, out, errs)
	}
	before := l.procs()
	code, _, errs := l.hutch("", "run", "--rm", "-f", l.manifest)
	if code != runFailed || !strings.Contains(errs, "already running") {
		t.Errorf("run of a running container: exit %d, stderr %q", code, errs)
	}
	if after := l.procs(); len(before) != 1 || strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("processes in the cgroup before %v, after %v", before, after)
	}
	if len(l.leftovers()) == 0 {
		t.Error("the refused --rm run deleted the running container")
	}
	l.deleteAll()
}

// TestRunStoppedByDelete: a delete while hutch run waits stops the process
// as it stops a supervised one (the stop signal; this sleep, pid 1 without
// a handler, then gets SIGKILL), hutch run exits with its status, and the
// delete removes everything.
func TestRunStoppedByDelete(t *testing.T) {
	l := newRunLab(t, `echo ready; exec /bin/busybox sleep 1000`)
	c, errb := l.start("run", "--rm", "-f", l.manifest)
	l.sleeping()
	if code, out, errs := l.hutch("", "delete", "-f", l.manifest); code != 0 {
		t.Errorf("delete: exit %d: %s %s", code, out, errs)
	}
	l.wait(c)
	if code := c.ProcessState.ExitCode(); code != 128+9 {
		t.Errorf("run: exit %d, want 137; stderr %q", code, errb.String())
	}
	l.gone()
}
