//go:build linux

package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	cgroupdrv "hutch/drivers/cgroup"
)

// envExecFromTerminal turns TestExecRunsInASessionOfItsOwn, in the test
// binary it starts, into the caller of the exec: "ROOT\tBUNDLE\tCGPARENT".
const envExecFromTerminal = "HUTCH_TEST_EXEC_FROM_TERMINAL"

// An administrator runs `hutch exec` from a shell: the caller has a
// controlling terminal. Without -t the exec'd process must not share the
// caller's session: there, the container's /dev/tty (5:0, which the kernel
// resolves to the session's controlling terminal) would open the
// administrator's terminal, and TIOCSTI on it would type into the root
// shell. The test makes such a caller (a test binary that is a session
// leader with a pty as its controlling terminal) and checks, from inside,
// that /dev/tty does not open (ENXIO: no controlling terminal) and, from
// the host, that the exec'd process is in another session and has no
// terminal.
func TestExecRunsInASessionOfItsOwn(t *testing.T) {
	if env := os.Getenv(envExecFromTerminal); env != "" {
		execFromTerminal(t, env)
		return
	}
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	master, slave, err := OpenPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^TestExecRunsInASessionOfItsOwn$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envExecFromTerminal+"="+c.root+"\t"+c.bundle+"\t"+filepath.Dir(c.cgPath))
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		t.Fatalf("the caller with a terminal: %v\n%s", err, out.String())
	}
	got := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "result.") {
			got[strings.TrimPrefix(k, "result.")] = v
		}
	}
	t.Logf("the caller says:\n%s", out.String())
	if got["caller-tty"] != "opened" {
		t.Fatalf("the caller cannot open its own /dev/tty (%q): the test proves nothing", got["caller-tty"])
	}
	if got["exit"] != "0" {
		t.Errorf("exec exited %q", got["exit"])
	}
	if got["tty"] != "refused" || !strings.Contains(got["tty-error"], "No such device or address") {
		t.Errorf("inside, /dev/tty: %q %q; want refused with ENXIO", got["tty"], got["tty-error"])
	}
	if got["sid"] == "" || got["sid"] == got["caller-sid"] {
		t.Errorf("the exec'd process is in session %q, the caller's is %q", got["sid"], got["caller-sid"])
	}
	if got["tty_nr"] != "0" {
		t.Errorf("the exec'd process has terminal %q, want none (0)", got["tty_nr"])
	}
}

// execFromTerminal is the caller of TestExecRunsInASessionOfItsOwn: it runs
// in a test binary that is a session leader with a pty as its controlling
// terminal, execs a shell into the container without -t and prints
// result.KEY=VALUE lines.
func execFromTerminal(t *testing.T, env string) {
	f := strings.Split(env, "\t")
	if len(f) != 3 {
		t.Fatalf("%s=%q", envExecFromTerminal, env)
	}
	root, bundle, parent := f[0], f[1], f[2]
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err != nil {
		fmt.Printf("result.caller-tty=%v\n", err)
	} else {
		tty.Close()
		fmt.Println("result.caller-tty=opened")
	}
	sid, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("result.caller-sid=%d\n", sid)
	cg, err := cgroupdrv.New("", parent)
	if err != nil {
		t.Fatal(err)
	}
	d := New(root, cg)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	// true, not the special built-in ':', whose failed redirection would
	// end the shell; the shell reports the failed open on the stderr of
	// the braces.
	script := `if { true </dev/tty; } 2>/tmp/err; then echo tty=opened; else echo tty=refused; fi
echo "tty-error=$(cat /tmp/err)"
echo ready
read x`
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := d.Exec(context.Background(), bundle, []string{"sh", "-c", script}, Stdio{In: inR, Out: outW, Err: outW}, false, nil)
		outW.Close()
		done <- result{code, err}
	}()
	lines := bufio.NewScanner(outR)
	for lines.Scan() && lines.Text() != "ready" {
		fmt.Println("result." + lines.Text())
	}
	// The shell waits on its stdin now: find it from the host, the child of
	// hutch-nsenter, this process's child.
	if nsenter := childrenOf(t, os.Getpid()); len(nsenter) != 1 {
		t.Errorf("children %v, want hutch-nsenter alone", nsenter)
	} else if sh := childrenOf(t, nsenter[0]); len(sh) != 1 {
		t.Errorf("hutch-nsenter's children %v, want the shell alone", sh)
	} else {
		st := statFields(t, sh[0])
		// Fields 6 (session) and 7 (tty_nr) of /proc/PID/stat.
		fmt.Printf("result.sid=%s\nresult.tty_nr=%s\n", st[3], st[4])
	}
	inW.Write([]byte("\n"))
	inW.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	fmt.Printf("result.exit=%d\n", r.code)
}

// statFields are the fields of /proc/PID/stat after comm: [0] is field 3.
func statFields(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
}

// childrenOf lists the processes whose parent is pid (field 4 of
// /proc/PID/stat).
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

// hostSleep starts a sleep on the host, in hutch's own namespaces, and
// returns it with its start time.
func hostSleep(t *testing.T) (*exec.Cmd, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	start, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, start
}

// A process.json that names a process in the host's mount namespace (a
// bundle gone wrong, or a pid that a host process holds with the recorded
// start time) must not be joined: exec would run the container's command
// as root on the host's filesystem. The old exec skipped the namespaces it
// shared and ran the command on the host.
func TestExecRefusesTheHostsMountNamespace(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	sleep, start := hostSleep(t)
	pid := sleep.Process.Pid
	st := State{Container: c.name, Status: StatusRunning, SupervisorPID: pid, SupervisorStart: start, PID: pid, PIDStart: start}
	if err := writeJSON(filepath.Join(c.bundle, stateFile), &st); err != nil {
		t.Fatal(err)
	}
	// The driver's Delete would stop the "supervisor": the host's sleep.
	// Remove the made-up state first.
	t.Cleanup(func() { os.Remove(filepath.Join(c.bundle, stateFile)) })
	// What the driver writes before a supervisor starts (no cgroup: the
	// host's sleep is not moved into the container's).
	if err := writeJSON(filepath.Join(c.bundle, configFile), &supervisorConfig{Process: *c.proc}); err != nil {
		t.Fatal(err)
	}
	if !c.state().Alive() {
		t.Fatal("the made-up state is not alive: the test proves nothing")
	}
	marker := filepath.Join(t.TempDir(), "ran")
	var out, errb bytes.Buffer
	code, err := c.d.Exec(t.Context(), c.bundle, []string{"/bin/sh", "-c", "touch " + marker}, Stdio{Out: &out, Err: &errb}, false, nil)
	if err == nil || !strings.Contains(err.Error(), "mount namespace is the host's") {
		t.Errorf("exec into the host's mount namespace: exit %d, %v (stdout %q, stderr %q)", code, err, out.String(), errb.String())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran on the host: %s exists", marker)
	}
}

// openInit holds the process by a pidfd and checks the start time after
// it is open: a pid that another process holds now, or that nobody holds,
// is refused; the container's init gives the namespaces to join.
func TestExecOpensTheInitByPidfd(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	st := c.state()
	pidfd, flags, err := openInit(st.PID, st.PIDStart)
	if err != nil {
		t.Fatal(err)
	}
	// The pidfd is the init's: signal 0 through it reaches the init, whose
	// pid the kernel reports in the pidfd's fdinfo.
	if err := unix.PidfdSendSignal(int(pidfd.Fd()), 0, nil, 0); err != nil {
		t.Errorf("pidfd_send_signal: %v", err)
	}
	if info := procStatus(readFile(t, "/proc/self/fdinfo/"+strconv.Itoa(int(pidfd.Fd())))); info["Pid"] != strconv.Itoa(st.PID) {
		t.Errorf("the pidfd is of pid %q, want the init %d", info["Pid"], st.PID)
	}
	pidfd.Close()
	want := unix.CLONE_NEWCGROUP | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET | unix.CLONE_NEWPID | unix.CLONE_NEWNS
	if flags != want {
		t.Errorf("flags %#x, want %#x (no user namespace: the container has none of its own)", flags, want)
	}

	// A process with the pid but another start time: the init ended and
	// its pid went to someone else.
	sleep, start := hostSleep(t)
	if f, _, err := openInit(sleep.Process.Pid, start+1); err == nil || !strings.Contains(err.Error(), "not the container's init") {
		if f != nil {
			f.Close()
		}
		t.Errorf("openInit with another start time: %v", err)
	}
	// A pid nobody holds.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if f, _, err := openInit(gone.Process.Pid, start); !errors.Is(err, unix.ESRCH) {
		if f != nil {
			f.Close()
		}
		t.Errorf("openInit of an ended process: %v, want ESRCH", err)
	}
}
