//go:build linux

package cgroup

import (
	"bufio"
	"context"
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

	"hutch/internal/testutil"
	"hutch/plan"
)

// python is Debian's interpreter itself: python3 on PATH may be a pyenv shim
// script, whose own processes would land in the cgroup too.
const python = "/usr/bin/python3"

// gated is a python process the test started and moved into a cgroup before
// letting it run its script.
type gated struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	done chan error
}

// startIn starts python on script, which must begin by reading one line of
// stdin: the process is put in the cgroup (every hierarchy) first, then let
// go. It is killed and reaped when the test ends, whatever happened.
func startIn(t *testing.T, d *Driver, path, script string) *gated {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is needed (scripts/deps.sh installs python3): %v", python, err)
	}
	cmd := exec.Command(python, "-c", script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gated{cmd: cmd, in: in, out: bufio.NewReader(out), done: make(chan error, 1)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		g.wait()
	})
	if err := d.AddProcess(path, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// The kernel must list it in every hierarchy before it runs.
	for c, dir := range d.Dirs(path) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(" "+strings.Join(strings.Fields(string(b)), " ")+" ", fmt.Sprintf(" %d ", cmd.Process.Pid)) {
			t.Fatalf("%s: pid %d not in %s/cgroup.procs (%q)", c, cmd.Process.Pid, dir, b)
		}
	}
	// ProcsFiles names the files AddProcess wrote: one per hierarchy, each
	// listing the pid.
	fs, err := d.ProcsFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, dir := range d.Dirs(path) {
		dirs[dir] = true
	}
	if len(fs) != len(dirs) {
		t.Fatalf("ProcsFiles = %v, want one per folder of %v", fs, d.Dirs(path))
	}
	for _, f := range fs {
		b, err := os.ReadFile(f)
		if err != nil || !dirs[filepath.Dir(f)] || !strings.Contains(" "+strings.Join(strings.Fields(string(b)), " ")+" ", fmt.Sprintf(" %d ", cmd.Process.Pid)) {
			t.Fatalf("ProcsFiles %s: %q, %v: pid %d not listed", f, b, err, cmd.Process.Pid)
		}
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	return g
}

// wait reaps the process once and returns how it ended.
func (g *gated) wait() error {
	select {
	case err := <-g.done:
		g.done <- err
		return err
	default:
	}
	err := g.cmd.Wait()
	g.done <- err
	return err
}

func killedBy(err error) syscall.Signal {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

func applyNew(t *testing.T, d *Driver, cg *plan.Cgroup) {
	t.Helper()
	if err := d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: cg}); err != nil {
		t.Fatal(err)
	}
}

func TestOOMKill(t *testing.T) {
	d := realDriver(t)
	path := d.parent + "/" + testutil.Name("oom")
	cg := &plan.Cgroup{Container: "oom", Path: path, Memory: plan.CgroupMemory{Limit: 50 << 20}}
	if d.hasSwapAccounting(path) {
		cg.Memory.Swap = cg.Memory.Limit // no swap: the OOM killer, not swapping
	}
	applyNew(t, d, cg)
	if n, err := d.OOMKills(path); err != nil || n != 0 {
		t.Fatalf("OOMKills before = %d, %v; want 0", n, err)
	}
	// bytes * n writes every page: 200 MiB really touched, not just mapped.
	g := startIn(t, d, path, `import sys
sys.stdin.readline()
b = b"x" * (200 << 20)
print("survived", len(b), flush=True)`)
	err := g.wait()
	if sig := killedBy(err); sig != syscall.SIGKILL {
		t.Fatalf("python allocating 200M under a 50M limit ended with %v, want SIGKILL by the OOM killer", err)
	}
	n, err := d.OOMKills(path)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("OOMKills = %d, want 1", n)
	}
	// OOMFile names the file the kernel counts in: the C supervisor reads
	// its oom_kill line.
	f, err := d.OOMFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(f); err != nil || !strings.Contains(string(b), "\noom_kill 1\n") && !strings.HasPrefix(string(b), "oom_kill 1\n") {
		t.Fatalf("OOMFile %s: %q, %v; want an oom_kill 1 line", f, b, err)
	}
	st, err := d.Stats(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats after the OOM kill: %+v", st)
	if st.OOMKills != 1 || st.MemoryLimit != 50<<20 || st.MemoryPeak == 0 || st.MemoryPeak > 50<<20 {
		t.Fatalf("stats = %+v; want oomKills 1, limit 50M, 0 < peak <= 50M", st)
	}
}

func TestPidsLimitStopsForkBomb(t *testing.T) {
	d := realDriver(t)
	path := d.parent + "/" + testutil.Name("bomb")
	applyNew(t, d, &plan.Cgroup{Container: "bomb", Path: path, Pids: 10})
	// A bounded bomb: 100 forks at most, each child sleeping; it prints how
	// many forks worked and how many the kernel refused.
	g := startIn(t, d, path, `import os, sys, time
sys.stdin.readline()
ok = fail = 0
for i in range(100):
    try:
        pid = os.fork()
    except OSError:
        fail += 1
        continue
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    ok += 1
print(ok, fail, flush=True)
time.sleep(600)`)
	line, err := g.out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var ok, fail int
	if _, err := fmt.Sscan(line, &ok, &fail); err != nil {
		t.Fatalf("bomb said %q: %v", line, err)
	}
	st, err := d.Stats(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forks: %d worked, %d refused; pids.current %d of %d", ok, fail, st.PidsCurrent, st.PidsLimit)
	if ok != 9 || fail != 91 || st.PidsCurrent != 10 || st.PidsLimit != 10 {
		t.Fatalf("forks %d ok / %d refused, pids.current %d: want 9 / 91 and 10 (the limit, the bomb included)", ok, fail, st.PidsCurrent)
	}
	// The host is unaffected: this test, outside the cgroup, still forks.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatalf("the host cannot fork while the bomb runs: %v", err)
	}
	// Kill through the v1 freezer path (no cgroup.kill), as on a v1 host.
	v1 := *d
	lay := *d.layout
	lay.unified = ""
	v1.layout = &lay
	if _, has := d.v1["freezer"]; !has || d.version == V2 {
		v1 = *d
	}
	if err := v1.KillAll(path); err != nil {
		t.Fatal(err)
	}
	if pids, err := d.Procs(path); err != nil || len(pids) != 0 {
		t.Fatalf("Procs after KillAll = %v, %v; want none", pids, err)
	}
	if sig := killedBy(g.wait()); sig != syscall.SIGKILL {
		t.Fatalf("bomb ended with %v, want SIGKILL", sig)
	}
}

func TestCPUQuotaThrottles(t *testing.T) {
	d := realDriver(t)
	path := d.parent + "/" + testutil.Name("spin")
	applyNew(t, d, &plan.Cgroup{Container: "spin", Path: path, CPU: plan.CgroupCPU{Quota: 50000, Period: 100000}})
	start := time.Now()
	g := startIn(t, d, path, `import sys, time
sys.stdin.readline()
t = time.monotonic()
while time.monotonic() - t < 1.5:
    pass`)
	if err := g.wait(); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	st, err := d.Stats(path)
	if err != nil {
		t.Fatal(err)
	}
	share := float64(st.CPUUsageNs) / float64(wall.Nanoseconds())
	t.Logf("busy loop: %v of CPU in %v wall (%.2f CPU); %d of %d periods throttled, %v throttled",
		time.Duration(st.CPUUsageNs), wall, share, st.NrThrottled, st.NrPeriods, time.Duration(st.ThrottledNs))
	if st.NrThrottled == 0 || st.ThrottledNs == 0 {
		t.Fatalf("nr_throttled %d, throttled %dns: want both > 0 under quota 50000/100000", st.NrThrottled, st.ThrottledNs)
	}
	if share > 0.6 {
		t.Fatalf("the busy loop used %.2f CPU, want at most about 0.5", share)
	}
}

func TestDeleteKillsProcesses(t *testing.T) {
	d := realDriver(t)
	path := d.parent + "/" + testutil.Name("del")
	cg := &plan.Cgroup{Container: "del", Path: path, Memory: plan.CgroupMemory{Limit: 64 << 20}}
	applyNew(t, d, cg)
	g := startIn(t, d, path, `import os, sys, time
sys.stdin.readline()
if os.fork() == 0:
    time.sleep(600)
print("ready", flush=True)
time.sleep(600)`)
	if _, err := g.out.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pids, err := d.Procs(path)
	if err != nil || len(pids) != 2 {
		t.Fatalf("Procs = %v, %v; want the process and its child", pids, err)
	}
	if err := d.Delete(context.Background(), cg); err != nil {
		t.Fatal(err)
	}
	if sig := killedBy(g.wait()); sig != syscall.SIGKILL {
		t.Fatalf("process ended with %v, want SIGKILL", sig)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if !strings.Contains(string(b), "State:\tZ") {
				t.Errorf("pid %d still alive after Delete", pid)
			}
		}
	}
	for c, dir := range d.Dirs(path) {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %s still there after Delete (%v)", c, dir, err)
		}
	}
}

func TestOwnRefusesOutsideParent(t *testing.T) {
	d := realDriver(t)
	ctx := context.Background()
	for _, p := range []string{"", "other/web", d.parent, d.parent + "/../x", "/" + d.parent + "/x", d.parent + "x/y"} {
		cg := &plan.Cgroup{Container: "x", Path: p}
		if err := d.Delete(ctx, cg); err == nil {
			t.Errorf("Delete(%q) = nil, want a refusal", p)
		}
		if err := d.Apply(ctx, &plan.Change{After: cg}); err == nil {
			t.Errorf("Apply(%q) = nil, want a refusal", p)
		}
		if err := d.KillAll(p); err == nil {
			t.Errorf("KillAll(%q) = nil, want a refusal", p)
		}
	}
}
