//go:build linux

package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// Health checks, as both supervisors run them (this file for the one in
// Go; supervisor_health.c for the one in C, which does the same):
//
//   - At each start of the process the state is starting. Checks run every
//     StartInterval until one passes, then every Interval (each counted
//     from the end of the check before).
//   - A passing check makes it healthy and the failing streak 0. A failing
//     check outside StartPeriod (counted from the process's start) adds one
//     to the streak; Retries in a row make it unhealthy, and the checks go
//     on every Interval (a later pass makes it healthy again).
//   - A check that takes longer than Timeout fails; an exec check's process
//     group is then killed with SIGKILL.
//   - No check runs while the process does not (back-off, exited) or is
//     being stopped; a check in flight then is dropped.
//
// tcp and http checks are made by the supervisor itself: a socket made in
// the container's network namespace (setns(2) only long enough to create
// it; a socket keeps the namespace it was made in) connects to 127.0.0.1,
// without a process start. An exec check runs the command as `hutch exec`
// does (exec.go, nsenter.c): a short-lived exec stage of the sealed hutch
// binary joins every namespace of the container's init through a pidfd,
// runs in the container's cgroup, and takes the container's user,
// capabilities, no_new_privs, rlimits and seccomp filter before it executes
// the command; its stdin is /dev/null and it runs in a session of its own
// without a terminal.

// stageHealth is the exec stage of an exec health check (after nsenter.c):
// its command is in argv, the container's config.json on execFdConfig.
const stageHealth = "health"

// healthExecMain is the exec stage of an exec health check: nsenter.c has
// joined the container's namespaces and forked, so this process is inside
// the container. It reads config.json (the supervisor opened it on the host
// and passed the descriptor: the stage cannot reach the bundle from inside),
// takes the container's process settings with argv's command, and execs it
// as execMain does for `hutch exec`.
func healthExecMain() {
	f := os.NewFile(execFdConfig, "config.json")
	var spec specs.Spec
	if err := json.NewDecoder(f).Decode(&spec); err != nil {
		fail(nil, fmt.Errorf("health check: read config: %w", err))
	}
	f.Close()
	if spec.Process == nil || len(os.Args) < 2 {
		fail(nil, errors.New("health check: no command"))
	}
	p := *spec.Process
	p.Args = os.Args[1:]
	p.Terminal = false
	if err := finishAndExec(&p, seccompOf(&spec)); err != nil {
		fmt.Fprintf(os.Stderr, "health check: %v\n", err)
		os.Exit(127)
	}
}

// newHealth is the health state at a start of the process: starting, with
// the results of the runs before kept (as Docker keeps them).
func newHealth(old *Health) *Health {
	h := &Health{Status: HealthStarting}
	if old != nil {
		h.Log = old.Log
	}
	return h
}

// record adds a check's result to h and says whether the status changed.
// A failure in the start period (inStart) is logged but not counted.
func (h *Health) record(r HealthResult, inStart bool, retries int) bool {
	before := h.Status
	h.Log = append(h.Log, r)
	if len(h.Log) > healthLogSize {
		h.Log = append([]HealthResult(nil), h.Log[len(h.Log)-healthLogSize:]...)
	}
	switch {
	case r.Passed:
		h.Status, h.FailingStreak = HealthHealthy, 0
	case !inStart:
		h.FailingStreak++
		if h.FailingStreak >= retries {
			h.Status = HealthUnhealthy
		}
	}
	return h.Status != before
}

// checkTarget is the running process a check is made against.
type checkTarget struct {
	bundle   string
	cg       CgroupJoiner
	cgPath   string
	pid      int
	pidStart uint64
}

// runCheck makes one check and returns its result, its output cut to
// healthOutputMax bytes. ctx ends a check that is no longer wanted.
func runCheck(ctx context.Context, hc *plan.HealthCheck, t checkTarget) HealthResult {
	r := HealthResult{Start: time.Now().UTC()}
	cctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	switch hc.Kind {
	case "exec":
		code, out, err := execCheck(cctx, hc.Command, t)
		r.ExitCode, r.Output, r.Passed = code, out, err == nil && code == 0
		if err != nil {
			r.Output = "health check: " + err.Error()
		}
	case "tcp", "http":
		r.Output, r.Passed = netCheck(cctx, hc, t)
		if !r.Passed {
			r.ExitCode = 1
		}
	default:
		r.ExitCode, r.Output = -1, fmt.Sprintf("health check: unknown kind %q", hc.Kind)
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		r.Passed = false
		if hc.Kind == "exec" {
			r.ExitCode = -1
		}
		if r.Output != "" && !strings.HasSuffix(r.Output, "\n") {
			r.Output += "\n"
		}
		r.Output += fmt.Sprintf("health check: timed out after %v", hc.Timeout)
	}
	if len(r.Output) > healthOutputMax {
		r.Output = r.Output[:healthOutputMax]
	}
	r.End = time.Now().UTC()
	return r
}

// netCheck connects to 127.0.0.1:port in the container's network
// namespace; for http it sends GET path and reads the status line (200-399
// passes). The output is the status line, or why it failed.
func netCheck(ctx context.Context, hc *plan.HealthCheck, t checkTarget) (string, bool) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(hc.Port))
	ns, err := os.Open("/proc/" + strconv.Itoa(t.pid) + "/ns/net")
	if err != nil {
		return "health check: network namespace: " + err.Error(), false
	}
	defer ns.Close()
	// The pid may have ended and been taken by another process since it
	// was recorded: the namespace opened is the container's only if the
	// pid still has the recorded start time after the open (the open file
	// holds the namespace from then on).
	if !alive(t.pid, t.pidStart) {
		return "health check: the process ended", false
	}
	conn, err := dialIn(ctx, ns, addr)
	if err != nil {
		return err.Error(), false
	}
	defer conn.Close()
	if hc.Kind == "tcp" {
		return "", true
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	url := "http://" + addr + hc.Path
	req := "GET " + hc.Path + " HTTP/1.0\r\nHost: " + addr + "\r\nUser-Agent: hutch-health\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return "GET " + url + ": " + err.Error(), false
	}
	br := bufio.NewReaderSize(conn, 1024)
	line, err := br.ReadSlice('\n')
	if err != nil && len(line) == 0 {
		return "GET " + url + ": " + err.Error(), false
	}
	status := strings.TrimRight(string(line), "\r\n")
	code, ok := httpStatus(status)
	if !ok {
		return fmt.Sprintf("GET %s: not an HTTP response: %q", url, status), false
	}
	// Read the rest (bounded) before closing: a close with unread data
	// sends a reset, which the server may log as an error.
	io.Copy(io.Discard, io.LimitReader(br, 64<<10))
	return status, code >= 200 && code <= 399
}

// httpStatus reads the code of an HTTP status line ("HTTP/1.0 200 OK").
func httpStatus(line string) (int, bool) {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") || len(f[1]) != 3 {
		return 0, false
	}
	code, err := strconv.Atoi(f[1])
	return code, err == nil
}

// dialIn connects to addr from a socket made in the network namespace ns.
// The socket is created on an OS thread locked for it and moved into ns
// with setns(2) (a network namespace, unlike a mount namespace, can be
// joined by one thread of a process); the thread goes back to its own
// namespace in the dialer's Control hook, which runs after socket(2) and
// before connect(2): a socket keeps the namespace it was made in. When
// going back fails the thread stays locked and the runtime ends it with
// the goroutine.
func dialIn(ctx context.Context, ns *os.File, addr string) (net.Conn, error) {
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- dialed{nil, fmt.Errorf("own network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- dialed{nil, fmt.Errorf("network namespace: setns: %w", err)}
			return
		}
		back := false
		goBack := func() error {
			if back {
				return nil
			}
			if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("back to the supervisor's network namespace: setns: %w", err)
			}
			back = true
			return nil
		}
		d := net.Dialer{Control: func(string, string, syscall.RawConn) error { return goBack() }}
		c, err := d.DialContext(ctx, "tcp4", addr)
		if berr := goBack(); berr != nil && err == nil {
			c.Close()
			c, err = nil, berr
		}
		if back {
			runtime.UnlockOSThread()
		}
		ch <- dialed{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// limitedBuffer keeps the first max bytes written to it and drops the rest
// (the writer is never blocked: a check's output beyond it is read and
// thrown away).
type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// execCheck runs args inside the container of t as `hutch exec` does
// (exec.go): a pidfd of the init, checked by its start time, the sealed
// binary with nsenter.c's _HUTCH_NSENTER, the container's cgroup before
// the namespaces are joined. It returns the exit status and what the
// command wrote to stdout and stderr (one pipe, healthOutputMax bytes
// kept). When ctx ends first, the check's process group is killed with
// SIGKILL and the status is -1.
func execCheck(ctx context.Context, args []string, t checkTarget) (int, string, error) {
	if !haveNsenter {
		return -1, "", errors.New("this hutch was built without cgo, which joining a mount namespace needs")
	}
	pidfd, nsFlags, err := openInit(t.pid, t.pidStart)
	if err != nil {
		return -1, "", err
	}
	defer pidfd.Close()
	exe, err := sealedSelf()
	if err != nil {
		return -1, "", err
	}
	defer exe.Close()
	cfg, err := os.Open(filepath.Join(t.bundle, "config.json"))
	if err != nil {
		return -1, "", err
	}
	defer cfg.Close()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return -1, "", err
	}
	defer syncW.Close()
	out := &limitedBuffer{max: healthOutputMax}
	cmd := &exec.Cmd{
		Path: fmt.Sprintf("/proc/self/fd/%d", execFdExe),
		Args: append([]string{"hutch-health"}, args...),
		Env: []string{
			"_HUTCH_NSENTER=" + strconv.Itoa(execFdPidfd) + ":" + strconv.Itoa(execFdSync) + ":" + strconv.FormatUint(uint64(nsFlags), 10),
			envStage + "=" + stageHealth,
		},
		ExtraFiles: []*os.File{exe, syncR, cfg, pidfd},
		// One writer for both streams: os/exec gives them one pipe, so
		// the output keeps its order.
		Stdout: out,
		Stderr: out,
		// A session of its own, without a terminal (as `hutch exec`), and
		// so a process group of its own that the timeout kills whole.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
		// A background process of the command may keep the pipe open:
		// the check ends with the command, not with the pipe.
		WaitDelay: 100 * time.Millisecond,
	}
	err = cmd.Start()
	syncR.Close()
	if err != nil {
		return -1, "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kill := func() {
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-done
	}
	// In the container's cgroup before nsenter.c joins the namespaces
	// (one byte on the sync pipe lets it go on).
	if t.cg != nil && t.cgPath != "" {
		if err := t.cg.AddProcess(t.cgPath, cmd.Process.Pid); err != nil {
			kill()
			return -1, "", err
		}
	}
	if _, err := syncW.Write([]byte{1}); err != nil {
		kill()
		return -1, "", fmt.Errorf("release the check: %w", err)
	}
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), string(out.b), nil
	case <-ctx.Done():
		kill()
		return -1, string(out.b), nil
	}
}

// healthMonitor schedules the Go supervisor's checks of one container:
// the timer of the next check, the check in flight (a goroutine, whose
// result comes back on results to the supervisor's loop) and the
// generation that tells a result of a run or a check since replaced.
type healthMonitor struct {
	cfg     *plan.HealthCheck
	target  checkTarget
	started time.Time // the process's start, for the start period
	running bool
	timer   *time.Timer
	due     <-chan time.Time
	cancel  context.CancelFunc
	gen     int
	results chan healthDone
}

type healthDone struct {
	gen int
	res HealthResult
}

func newHealthMonitor(cfg *plan.HealthCheck) *healthMonitor {
	return &healthMonitor{cfg: cfg, results: make(chan healthDone, 1)}
}

// schedule sets the next check after d (none without a check or while
// the process does not run).
func (m *healthMonitor) schedule(d time.Duration) {
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timer, m.due = nil, nil
	if m.cfg == nil || !m.running {
		return
	}
	m.timer = time.NewTimer(d)
	m.due = m.timer.C
}

// drop ends the check in flight, if any, and makes its result stale.
func (m *healthMonitor) drop() {
	m.gen++
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
}

// startRun starts checking the process t, started at started.
func (m *healthMonitor) startRun(t checkTarget, started time.Time) {
	m.drop()
	m.target, m.started, m.running = t, started, true
	if m.cfg != nil {
		m.schedule(m.cfg.StartInterval)
	}
}

// endRun stops the checks: the process ended or is being stopped.
func (m *healthMonitor) endRun() {
	m.drop()
	m.running = false
	m.schedule(0)
}

// launch starts the check that is due.
func (m *healthMonitor) launch() {
	m.due = nil
	if m.cfg == nil || !m.running {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	gen, cfg, t := m.gen, *m.cfg, m.target
	go func() {
		r := runCheck(ctx, &cfg, t)
		cancel()
		m.results <- healthDone{gen, r}
	}()
}

// startCheck is the Go supervisor's part of a check that is due.
func (s *supervisor) startCheck() { s.health.launch() }

// checkDone records a check's result in the state (saved after every
// check), logs a change of status as an event, and schedules the next.
func (s *supervisor) checkDone(d healthDone) {
	m := s.health
	if d.gen != m.gen || m.cfg == nil || !m.running || s.state.Health == nil {
		return // stale: the run or the check changed meanwhile
	}
	m.cancel = nil
	h := s.state.Health
	inStart := d.res.Start.Sub(m.started) < m.cfg.StartPeriod
	// The event first: whoever sees the state has its event to read.
	if h.record(d.res, inStart, m.cfg.Retries) {
		s.events.add(Event{Type: EventHealth, PID: s.state.PID, Health: h.Status, Message: d.res.Output})
	}
	s.save()
	next := m.cfg.Interval
	if h.Status == HealthStarting {
		next = m.cfg.StartInterval
	}
	m.schedule(next)
}

// reloadHealth takes a health check changed in place (SIGHUP): the check
// in flight is dropped, and a running process is checked anew from
// starting (the old status says nothing of the new check); a check removed
// leaves no health state.
func (s *supervisor) reloadHealth(hc *plan.HealthCheck) {
	m := s.health
	if healthEqual(m.cfg, hc) {
		return
	}
	m.drop()
	m.cfg = hc
	if hc == nil {
		s.state.Health = nil
		m.schedule(0)
		s.save()
		return
	}
	before := ""
	if s.state.Health != nil {
		before = s.state.Health.Status
	}
	s.state.Health = newHealth(s.state.Health)
	if m.running && before != "" && before != HealthStarting {
		s.events.add(Event{Type: EventHealth, PID: s.state.PID, Health: HealthStarting, Message: "the health check changed"})
	}
	s.save()
	m.schedule(hc.StartInterval)
}

func healthEqual(a, b *plan.HealthCheck) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.Port == b.Port && a.Path == b.Path && strings.Join(a.Command, "\x00") == strings.Join(b.Command, "\x00") &&
		len(a.Command) == len(b.Command) && a.Interval == b.Interval && a.StartInterval == b.StartInterval &&
		a.Timeout == b.Timeout && a.Retries == b.Retries && a.StartPeriod == b.StartPeriod
}
