//go:build linux

package process

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hutch/internal/testutil"
	"hutch/plan"
)

var hutchOnce sync.Once
var hutchBin, hutchErr string

// hutch builds the hutch binary (cmd/apply) once, as scripts/build.sh does.
func hutch(t testing.TB) string {
	t.Helper()
	hutchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hutch-bin")
		if err != nil {
			hutchErr = err.Error()
			return
		}
		bin := filepath.Join(dir, "hutch")
		if err := testutil.BuildHutch(bin); err != nil {
			hutchErr = err.Error()
			return
		}
		hutchBin = bin
	})
	if hutchErr != "" {
		t.Fatalf("build hutch: %s", hutchErr)
	}
	return hutchBin
}

// run runs the hutch binary with the container's state root.
func (c *testContainer) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(hutch(c.t), append([]string{"--root", c.root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		c.t.Fatalf("hutch %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// TestHutchCLI runs a container under the real hutch binary (its main
// re-executes the stages) and uses the logs, exec and stop verbs on it. The
// verbs take the container's cgroup under hutch's default parent.
func TestHutchCLI(t *testing.T) {
	bin := hutch(t)
	c := newContainer(t, []string{"sh", "-c", "trap 'exit 0' TERM; echo hello; echo oops >&2; while :; do sleep 0.1; done"}, containerOpts{cgParent: plan.DefaultOptions().CgroupParent})
	c.d.exe = bin
	c.start()
	st := c.state()
	if !st.Alive() {
		t.Fatalf("state %+v", st)
	}
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(st.SupervisorPID) + "/exe"); err != nil || exe != bin {
		t.Errorf("the supervisor runs %q (%v), want %s", exe, err, bin)
	}
	waitFor(t, "the first log lines", func() bool {
		out, _ := c.logs(LogOptions{Tail: -1})
		return out == "hello\n"
	})
	if out, errs, code := c.run("logs", c.name); code != 0 || out != "hello\n" || errs != "oops\n" {
		t.Errorf("hutch logs: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if out, errs, code := c.run("logs", "--tail", "0", c.name); code != 0 || out != "" || errs != "" {
		t.Errorf("hutch logs --tail 0: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code := c.run("exec", c.name, "--", "cat", "/proc/self/status")
	if code != 0 {
		t.Fatalf("hutch exec: exit %d, %q", code, errs)
	}
	if s := procStatus(out); s["Seccomp"] != "2" || s["CapEff"] != "00000000a80425fb" || s["NoNewPrivs"] != "1" {
		t.Errorf("hutch exec: status %v", s)
	}
	if cg, _, _ := c.run("exec", c.name, "--", "cat", "/proc/self/cgroup"); !strings.Contains(cg, "memory:/\n") {
		t.Errorf("hutch exec: not at the root of the container's cgroup namespace:\n%s", cg)
	}
	if _, _, code := c.run("exec", c.name, "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("hutch exec of exit 7 exits %d", code)
	}
	if _, errs, code := c.run("exec", c.name, "--", "/no/such"); code == 0 || !strings.Contains(errs, "/no/such") {
		t.Errorf("hutch exec of a missing command: exit %d, %q", code, errs)
	}

	// The supervisor of the real binary, measured as TestSupervisorMemory does.
	time.Sleep(500 * time.Millisecond) // not an assertion: let it settle
	status := procStatus(readFile(t, "/proc/"+strconv.Itoa(st.SupervisorPID)+"/status"))
	roll := procStatus(readFile(t, "/proc/"+strconv.Itoa(st.SupervisorPID)+"/smaps_rollup"))
	t.Logf("hutch supervisor %d: VmRSS %s (RssAnon %s, RssFile %s), Pss %s, Private_Dirty %s, VmHWM %s",
		st.SupervisorPID, status["VmRSS"], status["RssAnon"], status["RssFile"], roll["Pss"], roll["Private_Dirty"], status["VmHWM"])

	if out, errs, code := c.run("stop", "--timeout", "10s", c.name); code != 0 || out != c.name+"\n" {
		t.Fatalf("hutch stop: exit %d, %q %q", code, out, errs)
	}
	if st := c.state(); st.Status != StatusStopped || st.ExitCode != 0 || st.SupervisorAlive() {
		t.Errorf("after hutch stop: %+v", st)
	}
	// Following a stopped container's logs prints them and returns.
	if out, _, code := c.run("logs", "-f", c.name); code != 0 || out != "hello\n" {
		t.Errorf("hutch logs -f after stop: exit %d, %q", code, out)
	}
	if _, errs, code := c.run("exec", c.name, "--", "true"); code == 0 || !strings.Contains(errs, "not running") {
		t.Errorf("hutch exec into a stopped container: exit %d, %q", code, errs)
	}
}
