//go:build linux

package process

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

func TestExitStatusIsAShells(t *testing.T) {
	for _, tc := range []struct {
		script   string
		emulated unix.Signal
		want     int
	}{
		{"exit 0", 0, 0},
		{"exit 7", 0, 7},
		{"kill -TERM $$", 0, 143},
		{"kill -KILL $$", 0, 137},
		// SIGKILL standing in for a SIGINT that pid 1 would not take.
		{"kill -KILL $$", unix.SIGINT, 130},
		// An exit code is the process's own, whatever was forwarded.
		{"exit 3", unix.SIGTERM, 3},
	} {
		cmd := exec.Command("/bin/sh", "-c", tc.script)
		cmd.Run()
		if got := exitStatus(cmd.ProcessState, tc.emulated); got != tc.want {
			t.Errorf("%q (emulated %v): %d, want %d", tc.script, tc.emulated, got, tc.want)
		}
	}
	if got := exitStatus(nil, 0); got != -1 {
		t.Errorf("no process state: %d, want -1", got)
	}
}

// TestForeground runs a container as a child of the test: its streams are
// the ones given, its exit code is returned, and while it runs the bundle
// names the test process as its supervisor, so Observe sees it running.
func TestForeground(t *testing.T) {
	c := newContainer(t, []string{"/bin/sh", "-c", "read x; echo out-$x; echo err >&2; exit 7"}, containerOpts{})
	var out, errb bytes.Buffer
	var during *State
	// The workload waits for its input, which comes once its state is read.
	in, inw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	code, err := c.d.Foreground(context.Background(), c.proc, in, &out, &errb, nil, func() error {
		during = c.state()
		got, err := c.d.Observe(context.Background(), c.proc)
		if err != nil || got == nil {
			t.Errorf("observe while it runs: %v, %v", got, err)
		}
		inw.Write([]byte("in\n"))
		inw.Close()
		return nil
	})
	if err != nil || code != 7 {
		t.Fatalf("foreground: %d, %v; stderr %q", code, err, errb.String())
	}
	if out.String() != "out-in\n" || errb.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
	if during == nil || during.Status != StatusRunning || during.SupervisorPID != os.Getpid() || during.PID == 0 {
		t.Errorf("state while it ran: %+v", during)
	}
	after := c.state()
	if after.Status != StatusExited || after.ExitCode != 7 || after.PID != 0 {
		t.Errorf("state after: %+v", after)
	}
	if got, err := c.d.Observe(context.Background(), c.proc); err != nil || got != nil {
		t.Errorf("observe after the end: %v, %v", got, err)
	}
	if pids, _ := c.cg.Procs(c.cgPath); len(pids) != 0 {
		t.Errorf("processes left in the cgroup: %v", pids)
	}
}

// TestForegroundForwardsSignals: a forwarded SIGTERM reaches a handler of
// the container's first process; one it has no handler for (which the
// kernel would drop) ends it with SIGKILL and the status of a SIGTERM.
func TestForegroundForwardsSignals(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{`trap "exit 3" TERM; echo ready; sleep 1000 & wait`, 3},
		{`echo ready; exec sleep 1000`, 143},
	} {
		c := newContainer(t, []string{"/bin/sh", "-c", tc.script}, containerOpts{})
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		sigs := make(chan os.Signal, 1)
		go func() {
			// Once the workload says it is ready (and, for exec, has
			// exec'd), forward a SIGTERM.
			b := make([]byte, 6)
			r.Read(b)
			for {
				st, _ := readState(c.bundle)
				if st != nil && st.PID > 0 {
					cmdline, _ := os.ReadFile("/proc/" + itoa(st.PID) + "/cmdline")
					if !strings.Contains(tc.script, "exec") || strings.HasPrefix(string(cmdline), "sleep\x00") {
						break
					}
				}
				time.Sleep(time.Millisecond)
			}
			sigs <- syscall.SIGTERM
		}()
		code, err := c.d.Foreground(context.Background(), c.proc, nil, w, os.Stderr, sigs, nil)
		w.Close()
		r.Close()
		if err != nil || code != tc.want {
			t.Errorf("%q: %d, %v; want %d", tc.script, code, err, tc.want)
		}
		if pids, _ := c.cg.Procs(c.cgPath); len(pids) != 0 {
			t.Errorf("%q: processes left in the cgroup: %v", tc.script, pids)
		}
	}
}

// TestForegroundRefusesASupervisedContainer: a container started by its
// supervisor is not started a second time.
func TestForegroundRefusesASupervisedContainer(t *testing.T) {
	c := newContainer(t, []string{"/bin/sleep", "1000"}, containerOpts{})
	c.start()
	before := c.state()
	_, err := c.d.Foreground(context.Background(), c.proc, nil, nil, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("foreground of a supervised container: %v", err)
	}
	if after := c.state(); after.PID != before.PID || !after.Alive() {
		t.Errorf("the supervised process: before %+v, after %+v", before, after)
	}
}

// TestForegroundSurvivesAnUpdate: an apply that changes only a policy
// (here the stop timeout) updates a `hutch run` container in place without
// the SIGHUP a supervisor would get: hutch run would forward it, and the
// container's pid 1, with no handler, would end. The new policy is in
// supervisor.json, where a stop reads it.
func TestForegroundSurvivesAnUpdate(t *testing.T) {
	c := newContainer(t, []string{"/bin/sh", "-c", "echo ready; exec sleep 1000"}, containerOpts{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// As cmd/apply does: what the hutch process receives is forwarded.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP)
	defer signal.Stop(sigs)
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := c.d.Foreground(context.Background(), c.proc, nil, w, os.Stderr, sigs, nil)
		w.Close()
		res <- result{code, err}
	}()
	b := make([]byte, 6)
	r.Read(b)
	// process.json names the process once Foreground has seen it run,
	// which may be just after it printed.
	var st *State
	waitFor(t, "process.json to name the running process", func() bool {
		st = c.state()
		return st.PID > 0
	})
	if !st.Foreground || !st.Alive() {
		sigs <- unix.SIGTERM // end it: the cleanup's stop would signal this test
		<-res
		t.Fatalf("state while it runs: %+v", st)
	}
	after := *c.proc
	after.StopTimeout = c.proc.StopTimeout + time.Second
	if err := c.d.Apply(context.Background(), &plan.Change{ID: after.ID(), Kind: after.Kind(), Action: plan.Update,
		Before: c.proc, After: &after, Fields: []string{"stopTimeout"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a forwarded signal would have ended it by now
	if _, err := os.Stat("/proc/" + itoa(st.PID)); err != nil || !c.state().Alive() {
		if err == nil {
			sigs <- unix.SIGTERM
			<-res
		}
		t.Fatalf("the container ended after an update in place: %v", err)
	}
	var conf supervisorConfig
	if err := readJSON(filepath.Join(c.bundle, configFile), &conf); err != nil || conf.Process.StopTimeout != after.StopTimeout {
		t.Errorf("supervisor.json after the update: stop timeout %v, %v; want %v", conf.Process.StopTimeout, err, after.StopTimeout)
	}
	// (Stop would wait for this test process, the "supervisor", to end.)
	sigs <- unix.SIGTERM
	select {
	case got := <-res:
		if got.err != nil || got.code != 143 {
			t.Errorf("after a SIGTERM: %d, %v; want 143", got.code, got.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hutch run did not end after a SIGTERM")
	}
}

// TestForegroundJoinsItsCgroups: an init started from Go is in the
// container's cgroup in every hierarchy, as the host sees it
// (/proc/PID/cgroup): born in the cgroup2 folder, moved into each v1
// hierarchy by itself (selfjoin.c). Also after the cgroup was killed
// through cgroup.kill, which makes the kernel kill a child born into it
// (it is then started again the old way).
func TestForegroundJoinsItsCgroups(t *testing.T) {
	c := newContainer(t, []string{"/bin/sh", "-c", "read x; exit 0"}, containerOpts{})
	for round := 0; round < 2; round++ {
		in, inw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var cgroups string
		code, err := c.d.Foreground(context.Background(), c.proc, in, nil, os.Stderr, nil, func() error {
			b, err := os.ReadFile("/proc/" + itoa(c.state().PID) + "/cgroup")
			cgroups = string(b)
			inw.Close()
			return err
		})
		in.Close()
		if err != nil || code != 0 {
			t.Fatalf("round %d: %d, %v", round, code, err)
		}
		lines := strings.Split(strings.TrimSpace(cgroups), "\n")
		joined := 0
		for _, l := range lines {
			f := strings.SplitN(l, ":", 3)
			if len(f) != 3 || f[1] == "name=systemd" {
				continue
			}
			for _, want := range []string{"memory", "cpu", "pids", ""} {
				if f[1] == want || strings.Contains(","+f[1]+",", ","+want+",") && want != "" {
					if f[2] != "/"+c.cgPath {
						t.Errorf("round %d: %s: in %s, want /%s", round, l, f[2], c.cgPath)
					}
					joined++
				}
			}
		}
		if joined < 2 {
			t.Errorf("round %d: /proc/PID/cgroup names too few of the container's hierarchies:\n%s", round, cgroups)
		}
		if round == 0 {
			if err := c.cg.KillAll(c.cgPath); err != nil {
				t.Fatal(err)
			}
		}
	}
}
