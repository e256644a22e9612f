//go:build linux

package process

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hutch/plan"
)

// fastCheck is a check that decides within a second or two.
func fastCheck(kind string) *plan.HealthCheck {
	return &plan.HealthCheck{Kind: kind, Interval: 200 * time.Millisecond, StartInterval: 50 * time.Millisecond,
		Timeout: 5 * time.Second, Retries: 2}
}

// waitHealth waits until the container's health status is want and
// returns the state then.
func (c *testContainer) waitHealth(t *testing.T, want string) *State {
	t.Helper()
	var st *State
	deadline := time.Now().Add(60 * time.Second)
	for {
		st = c.state()
		if st.Health != nil && st.Health.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never became %s: %+v, health %+v", want, st, st.Health)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// events reads the container's events (all of them).
func (c *testContainer) events(t *testing.T) []Event {
	t.Helper()
	evs, err := ReadEvents(c.bundle, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func eventTypes(evs []Event) []string {
	var out []string
	for _, e := range evs {
		s := e.Type
		if e.Health != "" {
			s += ":" + e.Health
		}
		out = append(out, s)
	}
	return out
}

// httpdArgs serve the rootfs's /www on 127.0.0.1:port, with busybox httpd.
func httpdArgs(port int) []string {
	return []string{"httpd", "-f", "-p", "127.0.0.1:" + strconv.Itoa(port), "-h", "/www"}
}

// TestHealthTCP: a tcp check passes on a port the container listens on and
// fails on one it does not; a server that appears later turns unhealthy
// into healthy.
func TestHealthTCP(t *testing.T) {
	up := newContainer(t, httpdArgs(8080), containerOpts{})
	up.proc.Health = fastCheck("tcp")
	up.proc.Health.Port = 8080
	up.start()
	st := up.waitHealth(t, HealthHealthy)
	if st.Health.FailingStreak != 0 || len(st.Health.Log) == 0 || !st.Health.Log[len(st.Health.Log)-1].Passed {
		t.Errorf("healthy: %+v", st.Health)
	}

	// Nothing listens on 8081 until a server starts there later.
	late := newContainer(t, []string{"sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exec httpd -f -p 127.0.0.1:8081 -h /www"}, containerOpts{})
	late.proc.Health = fastCheck("tcp")
	late.proc.Health.Port = 8081
	late.start()
	st = late.waitHealth(t, HealthUnhealthy)
	last := st.Health.Log[len(st.Health.Log)-1]
	if st.Health.FailingStreak < 2 || last.Passed || last.ExitCode != 1 || !strings.Contains(last.Output, "connection refused") {
		t.Errorf("unhealthy: %+v", st.Health)
	}
	if last.End.Before(last.Start) || last.Start.Before(st.Started) {
		t.Errorf("check times %v-%v, process started %v", last.Start, last.End, st.Started)
	}
	late.mustExec("touch", "/tmp/go")
	late.waitHealth(t, HealthHealthy)
	got := eventTypes(late.events(t))
	if want := []string{"start", "health:unhealthy", "health:healthy"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestHealthHTTP: an http check passes on a status of 200-399 and records
// the status line; a 404 fails.
func TestHealthHTTP(t *testing.T) {
	ok := newContainer(t, httpdArgs(8080), containerOpts{})
	ok.proc.Health = fastCheck("http")
	ok.proc.Health.Port, ok.proc.Health.Path = 8080, "/index.html"
	ok.start()
	st := ok.waitHealth(t, HealthHealthy)
	last := st.Health.Log[len(st.Health.Log)-1]
	if !last.Passed || last.ExitCode != 0 || !strings.HasPrefix(last.Output, "HTTP/1.") || !strings.Contains(last.Output, " 200 ") {
		t.Errorf("healthy: %+v", st.Health)
	}

	missing := newContainer(t, httpdArgs(8080), containerOpts{})
	missing.proc.Health = fastCheck("http")
	missing.proc.Health.Port, missing.proc.Health.Path = 8080, "/missing"
	missing.start()
	st = missing.waitHealth(t, HealthUnhealthy)
	last = st.Health.Log[len(st.Health.Log)-1]
	if last.Passed || last.ExitCode != 1 || !strings.Contains(last.Output, " 404 ") {
		t.Errorf("unhealthy: %+v", st.Health)
	}
	evs := missing.events(t)
	if i := slices.IndexFunc(evs, func(e Event) bool { return e.Type == EventHealth }); i < 0 || evs[i].Health != HealthUnhealthy || !strings.Contains(evs[i].Message, "404") {
		t.Errorf("events %+v: want a health event unhealthy with the status line", evs)
	}
	// Nothing listens: the connect fails.
	none := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	none.proc.Health = fastCheck("http")
	none.proc.Health.Port, none.proc.Health.Path = 8080, "/"
	none.start()
	st = none.waitHealth(t, HealthUnhealthy)
	if last := st.Health.Log[len(st.Health.Log)-1]; !strings.Contains(last.Output, "connection refused") {
		t.Errorf("unhealthy: %+v", st.Health)
	}
}

// TestHealthExec: an exec check passes when its command exits 0, fails
// otherwise (with its output and status), and turns healthy when what it
// tests appears.
func TestHealthExec(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.Health = fastCheck("exec")
	c.proc.Health.Command = []string{"sh", "-c", "echo out; echo err >&2; test -e /tmp/ok"}
	c.start()
	st := c.waitHealth(t, HealthUnhealthy)
	last := st.Health.Log[len(st.Health.Log)-1]
	if last.Passed || last.ExitCode != 1 || last.Output != "out\nerr\n" || st.Health.FailingStreak < 2 {
		t.Errorf("unhealthy: %+v", st.Health)
	}
	c.mustExec("touch", "/tmp/ok")
	st = c.waitHealth(t, HealthHealthy)
	if last := st.Health.Log[len(st.Health.Log)-1]; !last.Passed || last.ExitCode != 0 || st.Health.FailingStreak != 0 {
		t.Errorf("healthy: %+v", st.Health)
	}
	if n := len(st.Health.Log); n > healthLogSize {
		t.Errorf("%d results kept, want at most %d", n, healthLogSize)
	}
	// The check's output is kept up to healthOutputMax bytes (the rest
	// is read and dropped: the command ends).
	big := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	big.proc.Health = fastCheck("exec")
	big.proc.Health.Command = []string{"sh", "-c", "yes 0123456789abcdef | head -c 100000; true"}
	big.start()
	st = big.waitHealth(t, HealthHealthy)
	if out := st.Health.Log[len(st.Health.Log)-1].Output; len(out) != healthOutputMax {
		t.Errorf("output of %d bytes kept, want %d", len(out), healthOutputMax)
	}
}

// TestHealthExecInContainer: an exec check's process runs in the
// container's cgroup and every namespace of its init, with its
// capabilities, no_new_privs and seccomp filter, stdin /dev/null and no
// terminal, as the kernel reports them for the process while it runs.
func TestHealthExecInContainer(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.Health = fastCheck("exec")
	c.proc.Health.Command = []string{"sh", "-c", "hostname; tty; readlink /proc/self/fd/0; cat /proc/self/cgroup; exec sleep 3"}
	c.proc.Health.Timeout = time.Minute
	c.start()
	init := c.state()
	var pid int
	waitFor(t, "the check's process in the cgroup", func() bool {
		pids, _ := c.cg.Procs(c.cgPath)
		for _, p := range pids {
			if b, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline"); string(b) == "sleep\x003\x00" {
				pid = p
				return true
			}
		}
		return false
	})
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "cgroup", "net", "user"} {
		want, err1 := os.Readlink("/proc/" + itoa(init.PID) + "/ns/" + ns)
		got, err2 := os.Readlink("/proc/" + itoa(pid) + "/ns/" + ns)
		if err1 != nil || err2 != nil || got != want {
			t.Errorf("%s namespace of the check %q (%v), of the init %q (%v)", ns, got, err2, want, err1)
		}
	}
	in := procStatus(readFile(t, "/proc/"+itoa(init.PID)+"/status"))
	chk := procStatus(readFile(t, "/proc/"+itoa(pid)+"/status"))
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs", "Seccomp", "Uid", "Gid"} {
		if chk[k] != in[k] || chk[k] == "" {
			t.Errorf("%s: check %q, init %q", k, chk[k], in[k])
		}
	}
	// No terminal (field 7 of /proc/PID/stat, tty_nr), a session of
	// its own (field 6), not the supervisor's.
	f, sf := statFields(t, pid), statFields(t, init.SupervisorPID)
	if f[4] != "0" || f[3] == sf[3] {
		t.Errorf("check: tty_nr %s, session %s (the supervisor's %s)", f[4], f[3], sf[3])
	}
	st := c.waitHealth(t, HealthHealthy)
	out := st.Health.Log[len(st.Health.Log)-1].Output
	if want := c.name + "\nnot a tty\n/dev/null\n"; !strings.HasPrefix(out, want) {
		t.Errorf("output %q, want it to begin %q", out, want)
	}
	// The cgroup namespace's root is the container's cgroup.
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[3:] {
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("check's /proc/self/cgroup line %q: not the container's cgroup", l)
		}
	}
}

// TestHealthExecTimeout: a check that outlives its timeout fails with -1,
// and its processes are killed (the container's cgroup holds the init
// alone again).
func TestHealthExecTimeout(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.Health = fastCheck("exec")
	c.proc.Health.Command = []string{"sh", "-c", "echo started; sleep 100 & sleep 100"}
	c.proc.Health.Timeout = 500 * time.Millisecond
	c.proc.Health.Retries = 1
	c.proc.Health.Interval = time.Hour
	c.start()
	st := c.waitHealth(t, HealthUnhealthy)
	last := st.Health.Log[len(st.Health.Log)-1]
	if last.Passed || last.ExitCode != -1 || !strings.Contains(last.Output, "started") || !strings.Contains(last.Output, "timed out after 500ms") {
		t.Errorf("unhealthy: %+v", last)
	}
	if d := last.End.Sub(last.Start); d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("the check took %v, timeout 500ms", d)
	}
	waitFor(t, "the check's processes killed", func() bool {
		pids, err := c.cg.Procs(c.cgPath)
		return err == nil && len(pids) == 1 && pids[0] == st.PID
	})
}

// TestHealthReload: a check changed in place (the driver rewrites the
// supervisor's config and sends SIGHUP) applies to the running process:
// no restart, and the new check's verdict.
func TestHealthReload(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.Health = fastCheck("exec")
	c.proc.Health.Command = []string{"false"}
	c.start()
	before := c.waitHealth(t, HealthUnhealthy)
	ctx := context.Background()
	got, err := c.d.Observe(ctx, c.proc)
	if err != nil || got == nil {
		t.Fatalf("observe: %v %v", got, err)
	}
	want := *c.proc
	want.Health = fastCheck("exec")
	want.Health.Command = []string{"true"}
	f, fr := c.d.Diff(got, &want)
	if !slices.Equal(f, []string{"health"}) || len(fr) != 0 {
		t.Fatalf("diff %v %v", f, fr)
	}
	if err := c.d.Apply(ctx, &plan.Change{Action: plan.Update, Before: got, After: &want, Fields: f}); err != nil {
		t.Fatal(err)
	}
	after := c.waitHealth(t, HealthHealthy)
	if after.PID != before.PID || after.SupervisorPID != before.SupervisorPID || after.Restarts != 0 {
		t.Errorf("restarted: before %+v, after %+v", before, after)
	}
	// Removed: no health state.
	want.Health = nil
	if err := c.d.Apply(ctx, &plan.Change{Action: plan.Update, Before: got, After: &want, Fields: []string{"health"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no health state", func() bool { return c.state().Health == nil })
	got2 := eventTypes(c.events(t))
	if want := []string{"start", "health:unhealthy", "health:starting", "health:healthy"}; !slices.Equal(got2, want) {
		t.Errorf("events %v, want %v", got2, want)
	}
}

// TestHealthOnlyWhileRunning: the health state starts again as starting
// at each start, and no check runs in the back-off between runs.
func TestHealthOnlyWhileRunning(t *testing.T) {
	// Each run lives 1.5 s and serves from its start (busybox httpd
	// without -f goes to the background); a tcp check, which starts
	// no process, passes at once. A restart's back-off is 100 ms,
	// 200 ms, ...
	c := newContainer(t, []string{"sh", "-c", "httpd -p 127.0.0.1:8080 -h /www; sleep 1.5; exit 1"}, containerOpts{})
	c.proc.Restart = plan.RestartPolicy{Policy: "on-failure", MaxRetries: 2}
	c.proc.Health = fastCheck("tcp")
	c.proc.Health.Port = 8080
	c.start()
	st := c.waitEnd()
	if st.Restarts != 2 || st.Health == nil {
		t.Fatalf("state %+v", st)
	}
	evs := c.events(t)
	// Each run: start, healthy, exit.
	if got, want := eventTypes(evs), []string{"start", "health:healthy", "exit", "restart", "start", "health:healthy", "exit", "restart", "start", "health:healthy", "exit"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	// Every check ran while a process ran: between a start and its exit.
	var runs [][2]time.Time
	for i, e := range evs {
		if e.Type == EventStart {
			runs = append(runs, [2]time.Time{e.Time})
		}
		if e.Type == EventExit && len(runs) > 0 {
			runs[len(runs)-1][1] = evs[i].Time
		}
	}
	for _, r := range st.Health.Log {
		in := false
		for _, run := range runs {
			in = in || (!r.Start.Before(run[0]) && !r.End.After(run[1]))
		}
		if !in {
			t.Errorf("check %v-%v outside every run %v", r.Start, r.End, runs)
		}
	}
}

// TestEvents: the events file holds one JSON line per start, exit (code,
// signal), OOM kill, restart and stop, in order, with times in order and
// within the test's, and it outlives its supervisor: the next start
// appends.
func TestEvents(t *testing.T) {
	begin := time.Now()
	c := newContainer(t, []string{"sh", "-c", "echo run; exit 3"}, containerOpts{})
	c.proc.Restart = plan.RestartPolicy{Policy: "on-failure", MaxRetries: 1}
	c.start()
	c.waitEnd()
	oom := newContainer(t, []string{"sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"}, containerOpts{memLimit: 32 << 20})
	oom.start()
	oom.waitEnd()
	s := newContainer(t, []string{"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"}, containerOpts{})
	s.start()
	s.waitReady()
	if err := s.d.Stop(context.Background(), s.bundle, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Started again: a new supervisor appends.
	s.start()
	end := time.Now()

	check := func(c *testContainer, want []string) []Event {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(c.bundle, eventsFile))
		if err != nil {
			t.Fatal(err)
		}
		evs, used := DecodeEvents(b)
		if used != len(b) || strings.Count(string(b), "\n") != len(evs) {
			t.Errorf("%d of %d bytes decode into %d events:\n%s", used, len(b), len(evs), b)
		}
		if got := eventTypes(evs); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
		for i, e := range evs {
			if e.Container != c.name || e.Time.Location() != time.UTC || e.Time.Before(begin) || e.Time.After(end) || (i > 0 && e.Time.Before(evs[i-1].Time)) {
				t.Errorf("event %d %+v: container or time out of place (test %v to %v)", i, e, begin, end)
			}
			if e.Type == EventStart && e.PID <= 0 {
				t.Errorf("start without a pid: %+v", e)
			}
		}
		return evs
	}
	evs := check(c, []string{"start", "exit", "restart", "start", "exit"})
	for _, i := range []int{1, 4} {
		if e := evs[i]; e.ExitCode == nil || *e.ExitCode != 3 || e.Signal != "" || e.PID != evs[i-1].PID {
			t.Errorf("exit event %+v, want code 3 of pid %d", e, evs[i-1].PID)
		}
	}
	evs = check(oom, []string{"start", "oom", "exit"})
	if e := evs[2]; e.ExitCode == nil || *e.ExitCode != 137 || e.Signal != "SIGKILL" {
		t.Errorf("exit after the OOM kill: %+v", e)
	}
	evs = check(s, []string{"start", "stop", "exit", "start"})
	if e := evs[2]; e.Signal != "SIGKILL" || e.ExitCode == nil || *e.ExitCode != 137 {
		t.Errorf("exit after the stop: %+v", e)
	}
	if evs[0].PID == evs[3].PID {
		t.Errorf("the same pid %d started twice", evs[0].PID)
	}
}

// TestEventsRotate: at eventsMax bytes the file becomes events.jsonl.1
// (replacing the one before) and a new one begins; ReadEvents reads both.
func TestEventsRotate(t *testing.T) {
	c := newContainer(t, []string{"true"}, containerOpts{})
	p := filepath.Join(c.bundle, eventsFile)
	old := `{"time":"2026-01-01T00:00:00Z","container":"` + c.name + `","type":"exit","exitCode":0}` + "\n"
	full := strings.Repeat(old, eventsMax/len(old))
	if err := os.WriteFile(p, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".1", []byte("replaced\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start()
	c.waitEnd()
	if b := readFile(t, p+".1"); b != full {
		t.Errorf("events.jsonl.1 holds %d bytes, want the %d of the full file", len(b), len(full))
	}
	evs, _ := DecodeEvents([]byte(readFile(t, p)))
	if got := eventTypes(evs); !slices.Equal(got, []string{"start", "exit"}) {
		t.Errorf("new events.jsonl: %d events %v, want [start exit]", len(got), got[:min(len(got), 4)])
	}
	all := c.events(t)
	if len(all) != strings.Count(full, "\n")+2 {
		t.Errorf("ReadEvents: %d events, want %d", len(all), strings.Count(full, "\n")+2)
	}
}

// TestHealthConfLines: an exec check's arguments reach supervisor.conf as
// lines the C supervisor reads back (a newline in one is escaped), and a
// command longer than the supervisor holds is refused before anything
// starts.
func TestHealthConfLines(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.proc.Health = fastCheck("exec")
	c.proc.Health.Command = []string{"sh", "-c", "printf '%s|' \"$0\" \"$1\"; test \"$1\" = 'a\\b'", "x\ny", "a\\b"}
	c.start()
	st := c.waitHealth(t, HealthHealthy)
	if out := st.Health.Log[len(st.Health.Log)-1].Output; out != "x\ny|a\\b|" {
		t.Errorf("the command's arguments arrived as %q", out)
	}
	if conf := readFile(t, filepath.Join(c.bundle, confFile)); !strings.Contains(conf, "\nhealth_arg x\\ny\n") {
		t.Errorf("supervisor.conf:\n%s", conf)
	}
	long := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	long.proc.Health = fastCheck("exec")
	long.proc.Health.Command = make([]string, 65)
	for i := range long.proc.Health.Command {
		long.proc.Health.Command[i] = "true"
	}
	if err := long.d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: long.proc}); err == nil || !strings.Contains(err.Error(), "more than the supervisor holds") {
		t.Errorf("a command of 65 arguments: %v", err)
	}
	if st := long.state(); st.Status != StatusAbsent {
		t.Errorf("after the refused start: %+v", st)
	}
}

// TestEventsOOMWhileRunning: the OOM killer's kill of a process other
// than the container's first (here one hutch exec started, as the seed's
// memory test is run) is an oom event when it happens, while the first
// process runs on.
func TestEventsOOMWhileRunning(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{memLimit: 32 << 20})
	c.start()
	if _, _, code := c.exec("sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"); code != 137 {
		t.Fatalf("the memory hog exited %d, not killed by the OOM killer", code)
	}
	var oom Event
	waitFor(t, "an oom event", func() bool {
		evs := c.events(t)
		i := slices.IndexFunc(evs, func(e Event) bool { return e.Type == EventOOM })
		if i >= 0 {
			oom = evs[i]
		}
		return i >= 0
	})
	st := c.state()
	if st.Status != StatusRunning || !st.Alive() || oom.PID != st.PID || !strings.Contains(oom.Message, "killed 1 process") {
		t.Errorf("oom event %+v while the state is %+v", oom, st)
	}
	if got := eventTypes(c.events(t)); !slices.Equal(got, []string{"start", "oom"}) {
		t.Errorf("events %v, want [start oom]", got)
	}
	// The init's own end reports no second oom.
	if err := c.d.Stop(context.Background(), c.bundle, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := eventTypes(c.events(t)); !slices.Equal(got, []string{"start", "oom", "stop", "exit"}) {
		t.Errorf("events %v, want [start oom stop exit]", got)
	}
}
