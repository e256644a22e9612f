//go:build linux

package process

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// supervisorConfig is what the driver writes to supervisor.json for the
// supervisor: the Process resource and the cgroup path. The supervisor reads
// it at start and again on SIGHUP (an in-place update of the restart, stop
// and log policies).
type supervisorConfig struct {
	Process plan.Process `json:"process"`
	Cgroup  string       `json:"cgroup,omitempty"` // relative to each hierarchy's root
}

// readyMsg is the supervisor's report on the first start, passed up through
// the spawn stage to the driver.
type readyMsg struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// spawnMain is the first fork: the driver started it with setsid(2), so it
// leads a new session without a terminal. It starts the supervisor (which,
// not being a session leader, can never acquire a terminal again), passes
// its report on the first start to the driver on stdout, and exits: the
// supervisor is then re-parented to init (or the nearest subreaper) and
// `hutch apply` may exit.
func spawnMain() int {
	bundle := os.Getenv(envBundle)
	// Descriptors that whoever ran hutch held without O_CLOEXEC end here:
	// the supervisor lives long and should pin nothing of theirs.
	closeExtraFds()
	r, w, err := os.Pipe()
	if err != nil {
		return report(readyMsg{Error: fmt.Sprintf("supervisor: pipe: %v", err)})
	}
	errLog, err := os.OpenFile(filepath.Join(bundle, "supervisor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return report(readyMsg{Error: fmt.Sprintf("supervisor: %v", err)})
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"hutch-supervisor", filepath.Base(bundle)},
		Env:        append([]string{envStage + "=" + stageSupervisor, envBundle + "=" + bundle, "GOMAXPROCS=1"}, supervisorChoice()...),
		Dir:        "/",
		ExtraFiles: []*os.File{w},
		Stderr:     errLog,
	}
	if err := cmd.Start(); err != nil {
		return report(readyMsg{Error: fmt.Sprintf("supervisor: start: %v", err)})
	}
	w.Close()
	b, _ := io.ReadAll(r)
	if len(b) == 0 {
		return report(readyMsg{Error: "supervisor: ended without a report (see " + filepath.Join(bundle, "supervisor.log") + ")"})
	}
	os.Stdout.Write(b)
	return 0
}

func report(m readyMsg) int {
	json.NewEncoder(os.Stdout).Encode(m)
	return 1
}

// supervisor runs one container's first process, again and again as its
// restart policy says. This is the supervisor in Go, which a binary built
// without cgo runs (or any, with _HUTCH_SUPERVISOR=go); with cgo,
// supervisor.c takes the stage before the Go runtime starts and does the
// same in a fraction of the memory.
type supervisor struct {
	bundle string
	cfg    supervisorConfig
	cg     CgroupJoiner
	log    *logFile
	events *eventLog
	health *healthMonitor
	state  State
	// The OOM kill count: notifications of a change (watchOOM), a read
	// again due (cgroup v1), and the count last reported.
	oomCh      <-chan struct{}
	oomRecheck bool
	oomAgain   <-chan time.Time
	oomSeen    uint64
}

func supervisorMain(newCgroup CgroupFactory) int {
	// The supervisor lives as long as the container: keep it small. One P
	// (fewer threads and per-P caches) and a GC target of half the live heap
	// instead of all of it. A memory limit below what start-up leaves live
	// would make the GC run without pause, touching (and so paging back in)
	// the type data it needs.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(50)
	runtime.MemProfileRate = 0 // no heap profile: its tables cost memory too
	ready := os.NewFile(3, "ready pipe")
	s := &supervisor{bundle: os.Getenv(envBundle)}
	if err := s.setup(newCgroup); err != nil {
		json.NewEncoder(ready).Encode(readyMsg{Error: err.Error()})
		return 1
	}
	defer s.log.Close()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	signal.Ignore(unix.SIGPIPE)
	r, err := s.start()
	if err != nil {
		s.state.Status, s.state.Error = StatusFailed, err.Error()
		s.state.Finished = time.Now()
		code := 127 // a start that fails counts as a run that exits 127
		s.events.add(Event{Time: s.state.Finished, Type: EventExit, ExitCode: &code, Message: err.Error()})
		s.save()
		json.NewEncoder(ready).Encode(readyMsg{Error: err.Error()})
		return 1
	}
	json.NewEncoder(ready).Encode(readyMsg{PID: r.cmd.Process.Pid})
	ready.Close()
	debug.FreeOSMemory()
	trimText()
	return s.loop(r, sigs)
}

func (s *supervisor) setup(newCgroup CgroupFactory) error {
	if err := readJSON(filepath.Join(s.bundle, configFile), &s.cfg); err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	if s.cfg.Cgroup != "" {
		if newCgroup == nil {
			return fmt.Errorf("supervisor: cgroup %s: no cgroup driver", s.cfg.Cgroup)
		}
		cg, err := newCgroup(filepath.Dir(s.cfg.Cgroup))
		if err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
		s.cg = cg
		if f, err := cg.OOMFile(s.cfg.Cgroup); err == nil {
			s.oomCh, s.oomRecheck = watchOOM(f)
		}
	}
	p := s.cfg.Process
	l, err := openLog(filepath.Join(s.bundle, logDir, logName), p.Logs.MaxSize, p.Logs.MaxFiles)
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	s.log = l
	s.events = openEvents(s.bundle, p.Container)
	s.health = newHealthMonitor(p.Health)
	st, err := startTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	s.state = State{Container: p.Container, Status: StatusCreated, Digest: p.Digest, SupervisorPID: os.Getpid(), SupervisorStart: st}
	return s.save()
}

func (s *supervisor) save() error {
	return writeJSON(filepath.Join(s.bundle, stateFile), &s.state)
}

// run is one life of the container's process.
type run struct {
	cmd       *exec.Cmd
	out, err  *streamWriter
	oomBefore uint64
	started   time.Time
	done      chan error
}

func (s *supervisor) start() (*run, error) {
	r := &run{out: &streamWriter{log: s.log, stream: "stdout"}, err: &streamWriter{log: s.log, stream: "stderr"}, done: make(chan error, 1)}
	if s.cg != nil {
		n, err := s.cg.OOMKills(s.cfg.Cgroup)
		if err != nil {
			return nil, err
		}
		r.oomBefore, s.oomSeen = n, n
	}
	cmd, err := startInit(s.bundle, s.cg, s.cfg.Cgroup, r.out, r.err)
	if err != nil {
		return nil, err
	}
	r.cmd = cmd
	r.started = time.Now()
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("container %s: %w", s.cfg.Process.Container, err)
	}
	s.state.PID, s.state.PIDStart = cmd.Process.Pid, st
	s.state.Status, s.state.Started, s.state.Error = StatusRunning, r.started, ""
	s.state.Finished, s.state.ExitCode, s.state.Signal, s.state.OOMKilled = time.Time{}, 0, "", false
	if s.health.cfg != nil {
		s.state.Health = newHealth(s.state.Health)
	}
	// The event first: whoever sees the state has its event to read.
	s.events.add(Event{Time: r.started, Type: EventStart, PID: cmd.Process.Pid})
	s.save()
	s.health.startRun(checkTarget{bundle: s.bundle, cg: s.cg, cgPath: s.cfg.Cgroup, pid: cmd.Process.Pid, pidStart: st}, r.started)
	go func() { r.done <- cmd.Wait() }()
	return r, nil
}

// loop waits for the process to end, records how, and restarts it as the
// policy says; a stop request (SIGTERM) ends it.
func (s *supervisor) loop(r *run, sigs chan os.Signal) int {
	var stopping bool
	var killTimer <-chan time.Time
	var restartTimer <-chan time.Time
	for {
		var done chan error
		if r != nil {
			done = r.done
		}
		select {
		case sig := <-sigs:
			switch sig {
			case unix.SIGHUP:
				s.reload()
			default:
				if stopping {
					continue
				}
				stopping = true
				s.events.add(Event{Type: EventStop, PID: s.state.PID, Message: "stop asked for (" + unix.SignalName(sig.(unix.Signal)) + " to the supervisor)"})
				s.health.endRun()
				if r == nil {
					s.state.Status = StatusStopped
					s.state.Finished = time.Now()
					s.save()
					return 0
				}
				s.state.Status = StatusStopping
				s.save()
				killTimer = time.After(s.stopSignal(r))
			}
		case <-s.oomCh:
			s.checkOOM()
			if s.oomRecheck {
				s.oomAgain = time.After(100 * time.Millisecond)
			}
		case <-s.oomAgain:
			s.oomAgain = nil
			s.checkOOM()
		case <-s.health.due:
			s.startCheck()
		case d := <-s.health.results:
			s.checkDone(d)
		case <-killTimer:
			// The process did not end within the timeout: SIGKILL every
			// process in the container's cgroup, then the init itself (in
			// case it has no cgroup).
			if s.cg != nil {
				s.cg.KillAll(s.cfg.Cgroup)
			}
			r.cmd.Process.Signal(unix.SIGKILL)
		case <-done:
			r.out.flush()
			r.err.flush()
			s.health.endRun()
			s.recordExit(r)
			ran := time.Since(r.started)
			r = nil
			killTimer = nil
			if stopping {
				s.state.Status = StatusStopped
				s.save()
				return 0
			}
			if !s.shouldRestart() {
				s.state.Status = StatusExited
				s.save()
				return 0
			}
			s.state.Status = StatusRestarting
			s.save()
			restartTimer = time.After(backoff(s.state.Restarts, ran))
		case <-restartTimer:
			restartTimer = nil
			s.state.Restarts++
			s.events.add(Event{Type: EventRestart, Message: "restart " + strconv.Itoa(s.state.Restarts)})
			nr, err := s.start()
			if err != nil {
				// A start that fails counts as a failed run.
				s.state.Error = err.Error()
				s.state.ExitCode, s.state.Signal, s.state.Finished = 127, "", time.Now()
				s.events.add(Event{Type: EventExit, ExitCode: &s.state.ExitCode, Message: err.Error()})
				if !s.shouldRestart() {
					s.state.Status = StatusFailed
					s.save()
					return 1
				}
				s.save()
				restartTimer = time.After(backoff(s.state.Restarts, 0))
				continue
			}
			r = nr
		}
	}
}

// stopSignal sends the stop signal to the process and returns how long to
// wait before SIGKILL: the timeout of a stop request, else the config's.
func (s *supervisor) stopSignal(r *run) time.Duration {
	timeout := s.cfg.Process.StopTimeout
	if b, err := os.ReadFile(filepath.Join(s.bundle, stopFile)); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		timeout = time.Duration(n) // a request may ask for 0: SIGKILL at once
	} else if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sig, err := parseSignal(s.cfg.Process.StopSignal)
	if err != nil {
		sig = unix.SIGTERM
	}
	r.cmd.Process.Signal(sig)
	if !catches(r.cmd.Process.Pid, sig) {
		return 0 // the kernel dropped it: see catches
	}
	return timeout
}

// catches says whether pid has a handler for sig (SigCgt in
// /proc/PID/status). The kernel discards a signal sent from outside to the
// first process of a pid namespace when that process keeps the default
// action (pid_namespaces(7)); waiting the stop timeout for it is time lost.
func catches(pid int, sig unix.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true // unknown: wait, as before
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || mask>>(uint(sig)-1)&1 == 1
		}
	}
	return true
}

// parseSignal reads "SIGTERM", "TERM" or "15".
func parseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func (s *supervisor) recordExit(r *run) {
	pid := s.state.PID
	s.state.Finished = time.Now()
	s.state.PID, s.state.PIDStart = 0, 0
	s.state.ExitCode, s.state.Signal = -1, ""
	if ps := r.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				s.state.ExitCode = ws.ExitStatus()
			case ws.Signaled():
				s.state.ExitCode = 128 + int(ws.Signal())
				s.state.Signal = unix.SignalName(ws.Signal())
			}
		}
	}
	if s.cg != nil {
		// The kernel counts OOM kills per cgroup (v1 memory.oom_control
		// oom_kill, v2 memory.events): a rise during this run means the
		// OOM killer killed one of its processes.
		if n, err := s.cg.OOMKills(s.cfg.Cgroup); err == nil {
			s.state.OOMKilled = n > r.oomBefore
			// Not reported yet (checkOOM): the kill of the process
			// itself, most often, whose exit came with the notification.
			if n > s.oomSeen {
				s.events.add(Event{Time: s.state.Finished, Type: EventOOM, PID: pid, Message: oomMessage(n - s.oomSeen)})
			}
			s.oomSeen = n
		}
	}
	e := exitEvent(&s.state)
	e.PID = pid
	s.events.add(e)
}

// checkOOM reads the cgroup's OOM kill count and appends an oom event when
// it rose since it was last seen.
func (s *supervisor) checkOOM() {
	if s.cg == nil {
		return
	}
	n, err := s.cg.OOMKills(s.cfg.Cgroup)
	if err != nil {
		return
	}
	if n > s.oomSeen {
		s.events.add(Event{Type: EventOOM, PID: s.state.PID, Message: oomMessage(n - s.oomSeen)})
	}
	s.oomSeen = n
}

func oomMessage(n uint64) string {
	return fmt.Sprintf("the OOM killer killed %d process(es) of the container", n)
}

func (s *supervisor) shouldRestart() bool {
	p := s.cfg.Process.Restart
	switch p.Policy {
	case "always":
		return true
	case "on-failure":
		if s.state.ExitCode == 0 && s.state.Signal == "" {
			return false
		}
		return p.MaxRetries == 0 || s.state.Restarts < p.MaxRetries
	}
	return false
}

// backoff is the wait before restart number n+1: 100ms doubling to at most
// 30s; a process that ran 10s or longer starts over at 100ms.
func backoff(n int, ran time.Duration) time.Duration {
	if ran >= 10*time.Second {
		return 100 * time.Millisecond
	}
	d := 100 * time.Millisecond
	for i := 0; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// reload rereads supervisor.json after the driver changed the restart, stop
// or log policy in place.
func (s *supervisor) reload() {
	var c supervisorConfig
	if err := readJSON(filepath.Join(s.bundle, configFile), &c); err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: reload: %v\n", err)
		return
	}
	s.cfg.Process.Restart = c.Process.Restart
	s.cfg.Process.StopSignal = c.Process.StopSignal
	s.cfg.Process.StopTimeout = c.Process.StopTimeout
	s.cfg.Process.Logs = c.Process.Logs
	s.log.setPolicy(c.Process.Logs.MaxSize, c.Process.Logs.MaxFiles)
	s.cfg.Process.Health = c.Process.Health
	s.reloadHealth(c.Process.Health)
}

// cgroupPath turns the config's linux.cgroupsPath ("/hutch/web") into the
// path below each hierarchy's root that the cgroup driver takes.
func cgroupPath(s *specs.Spec) string {
	if s.Linux == nil {
		return ""
	}
	return strings.TrimPrefix(filepath.Clean("/"+s.Linux.CgroupsPath), "/")
}

// initAttr turns the config's namespaces into how the init is cloned: the
// clone flags, the user namespace's maps and credentials, and the path of
// the network namespace to join ("" for none). The cgroup namespace is
// unshared by the init itself once it is in its cgroup (containerInit).
func initAttr(spec *specs.Spec) (*syscall.SysProcAttr, string, error) {
	if spec.Process.Terminal {
		return nil, "", errors.New("process.terminal: a detached container has no terminal")
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	var netnsPath string
	if spec.Linux == nil {
		return attr, "", nil
	}
	for _, ns := range spec.Linux.Namespaces {
		switch ns.Type {
		case specs.PIDNamespace:
			attr.Cloneflags |= unix.CLONE_NEWPID
		case specs.MountNamespace:
			attr.Cloneflags |= unix.CLONE_NEWNS
		case specs.UTSNamespace:
			attr.Cloneflags |= unix.CLONE_NEWUTS
		case specs.IPCNamespace:
			attr.Cloneflags |= unix.CLONE_NEWIPC
		case specs.CgroupNamespace:
			// unshared by the init once it is in its cgroup, see containerInit
		case specs.UserNamespace:
			attr.Cloneflags |= unix.CLONE_NEWUSER
			for _, m := range spec.Linux.UIDMappings {
				attr.UidMappings = append(attr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
			}
			for _, m := range spec.Linux.GIDMappings {
				attr.GidMappings = append(attr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
			}
			attr.GidMappingsEnableSetgroups = true
			// The child keeps the host's uid 0 until it changes it, and
			// that uid has no name in the new namespace (it shows as the
			// overflow uid, and execve would drop every capability):
			// setuid(0)/setgid(0) after the maps are written make it the
			// namespace's root, the host uid the map gives.
			attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		case specs.NetworkNamespace:
			if ns.Path == "" {
				attr.Cloneflags |= unix.CLONE_NEWNET
			} else {
				netnsPath = ns.Path
			}
		case specs.TimeNamespace:
			return nil, "", errors.New("time namespaces are not supported")
		}
		if ns.Path != "" && ns.Type != specs.NetworkNamespace {
			return nil, "", fmt.Errorf("joining a %s namespace by path is not supported", ns.Type)
		}
	}
	return attr, netnsPath, nil
}

// startInit starts the container's init stage from a sealed copy of the
// hutch binary, in new namespaces and the container's network namespace,
// puts it in the cgroup and lets it go on. It returns once the init has
// executed the workload (the error pipe reached EOF) or failed. This is
// the Go supervisor's way; supervisor.c does the same itself (sup_clone)
// from what newLaunch wrote to supervisor.conf.
func startInit(bundle string, cg CgroupJoiner, cgPath string, stdout, stderr io.Writer) (*exec.Cmd, error) {
	return startInitStdio(bundle, cg, cgPath, nil, stdout, stderr)
}

// startInitStdio is startInit with a standard input for the workload (nil:
// /dev/null), for a container run in the foreground (foreground.go).
func startInitStdio(bundle string, cg CgroupJoiner, cgPath string, stdin io.Reader, stdout, stderr io.Writer) (*exec.Cmd, error) {
	name := filepath.Base(bundle)
	spec, err := loadSpec(bundle)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	attr, netnsPath, err := initAttr(spec)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	exe, err := sealedSelf()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	defer exe.Close()
	join, err := openCgroupJoin(cg, cgPath, attr.Cloneflags&unix.CLONE_NEWUSER != 0)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	defer join.close()
	into := join != nil && join.v2dir != nil
	for {
		cmd, bornDead, err := launchInit(spec, attr, netnsPath, bundle, exe, join, into, cg, cgPath, stdin, stdout, stderr)
		if bornDead && into {
			// The kernel killed it at birth (see sup_start_init in
			// supervisor.c): again, without CLONE_INTO_CGROUP.
			into = false
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		return cmd, nil
	}
}

// launchInit is one try of startInitStdio: it starts the init and puts it
// in the cgroup (join, when not nil: born in the cgroup2 folder when into,
// moving itself into the v1 hierarchies; else AddProcess), releases it and
// waits until it has executed the workload. bornDead says that it was
// killed by SIGKILL before it ran (with into: the kernel's doing).
func launchInit(spec *specs.Spec, attr *syscall.SysProcAttr, netnsPath, bundle string, exe *os.File, join *cgroupJoin, into bool,
	cg CgroupJoiner, cgPath string, stdin io.Reader, stdout, stderr io.Writer) (*exec.Cmd, bool, error) {
	name := filepath.Base(bundle)
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, false, err
	}
	defer syncW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		return nil, false, err
	}
	defer errR.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		errW.Close()
		return nil, false, err
	}
	files := []*os.File{exe, syncR, errW, cfgR}
	env := []string{envStage + "=" + stageInit, envBundle + "=" + bundle}
	var helloR, helloW *os.File
	a := *attr
	if join != nil {
		if helloR, helloW, err = os.Pipe(); err != nil {
			syncR.Close()
			errW.Close()
			cfgR.Close()
			cfgW.Close()
			return nil, false, err
		}
		defer helloR.Close()
		var v string
		files, v = join.files(files, helloW)
		env = append(env, "_HUTCH_JOIN="+v)
		if into {
			a.UseCgroupFD, a.CgroupFD = true, int(join.v2dir.Fd())
		}
	}
	cmd := &exec.Cmd{
		// fd 3 in the child is the sealed binary: exec it through /proc/self/fd.
		Path:        fmt.Sprintf("/proc/self/fd/%d", initFdExe),
		Args:        []string{"hutch-init", name},
		Env:         env,
		Dir:         "/",
		ExtraFiles:  files,
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: &a,
		WaitDelay:   2 * time.Second,
	}
	err = startInNetns(cmd, netnsPath)
	syncR.Close()
	errW.Close()
	cfgR.Close()
	if helloW != nil {
		helloW.Close()
	}
	if err != nil {
		cfgW.Close()
		if into {
			// clone3 without CLONE_INTO_CGROUP (Linux 5.3 to 5.6: E2BIG)
			// or refusing it: again, with the pid written.
			return nil, true, fmt.Errorf("start init: %w", err)
		}
		return nil, false, fmt.Errorf("start init: %w", err)
	}
	// The config can be larger than a pipe's buffer: write it while the
	// init reads, and close the pipe at the end.
	go func() {
		json.NewEncoder(cfgW).Encode(spec)
		cfgW.Close()
	}()
	abort := func(err error) (*exec.Cmd, bool, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, false, err
	}
	if helloR != nil {
		var b [1]byte
		if n, _ := helloR.Read(b[:]); n != 1 {
			// Ended before selfjoin.c ran: see how.
			cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if into && ws.Signaled() && ws.Signal() == unix.SIGKILL {
				return nil, true, errors.New("start init: killed at its birth")
			}
			msg, _ := io.ReadAll(errR)
			return nil, false, fmt.Errorf("start init: it ended before it ran (%v) %s", cmd.ProcessState, msg)
		}
	}
	switch {
	case join == nil && cg != nil && cgPath != "":
		if err := cg.AddProcess(cgPath, cmd.Process.Pid); err != nil {
			return abort(err)
		}
	case join != nil && !into && join.v2procs != "":
		if err := os.WriteFile(join.v2procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			return abort(fmt.Errorf("cgroup: %w", err))
		}
	}
	// A child that failed to join (selfjoin.c) has closed the sync pipe:
	// the write fails, and the error pipe says why.
	_, werr := syncW.Write([]byte{1})
	msg, err := io.ReadAll(errR)
	if err != nil {
		return abort(fmt.Errorf("read init's error pipe: %w", err))
	}
	if len(msg) > 0 {
		cmd.Wait()
		return nil, false, errors.New(string(msg))
	}
	if werr != nil {
		return abort(fmt.Errorf("release init: %w", werr))
	}
	return cmd, false, nil
}

// startInNetns starts cmd from a thread that was moved into the network
// namespace at path with setns(2): clone(2) gives the child the calling
// thread's namespaces. A network namespace, unlike a mount or user
// namespace, can be joined by one thread of a multi-threaded process. The
// thread goes back to its namespace afterwards; when that fails it is left
// locked, and the Go runtime ends it with the goroutine.
func startInNetns(cmd *exec.Cmd, path string) error {
	if path == "" {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("network namespace %s: setns: %w", path, err)
			return
		}
		err = cmd.Start()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// trimText lets go of the resident pages of the supervisor's read-only
// file mappings: the code of the binary and of the shared libraries, and the
// binary's constants. Start-up touched far more of them than the
// supervisor's loop needs. They are clean copies of the files, so
// madvise(MADV_DONTNEED) only unmaps them and the few the loop uses fault
// back in from the page cache. (MADV_PAGEOUT would be the gentler call, but
// it skips pages that other processes map too, as every hutch process and
// libc user does.) A read-only mapping can also hold pages written before
// they were made read-only (relocations, the PT_GNU_RELRO range), where
// dropping them would throw data away: so read-only data is trimmed only in
// the binary, outside its RELRO range, and only code in shared libraries.
func trimText() {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	var self unix.Stat_t
	if unix.Stat("/proc/self/exe", &self) != nil {
		return
	}
	relroLo, relroHi, firstLoad, ok := relro()
	if !ok {
		return
	}
	type mapping struct {
		start, end uint64
		perms      string
		offset     uint64
		inode      uint64
	}
	var maps []mapping
	bias := uint64(0)
	biasSet := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		// address perms offset dev inode path
		if len(f) < 6 || f[4] == "0" || strings.HasPrefix(f[5], "[") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		var m mapping
		var err [4]error
		m.start, err[0] = strconv.ParseUint(lo, 16, 64)
		m.end, err[1] = strconv.ParseUint(hi, 16, 64)
		m.offset, err[2] = strconv.ParseUint(f[2], 16, 64)
		m.inode, err[3] = strconv.ParseUint(f[4], 10, 64)
		if err[0] != nil || err[1] != nil || err[2] != nil || err[3] != nil || m.end <= m.start {
			continue
		}
		m.perms = f[1]
		if m.inode == self.Ino && m.offset == 0 && !biasSet {
			bias, biasSet = m.start-firstLoad, true
		}
		maps = append(maps, m)
	}
	for _, m := range maps {
		own := m.inode == self.Ino
		switch {
		case m.perms == "r-xp":
		case m.perms == "r--p" && own && biasSet && (m.end <= relroLo+bias || m.start >= relroHi+bias):
		default:
			continue
		}
		// MADV_RANDOM and MADV_NOHUGEPAGE first: they turn off fault-around
		// and huge-page mapping for the range, so a page the loop needs
		// again brings back that page, not the 64 KiB or the 2 MiB folio
		// of the page cache around it.
		unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_RANDOM)
		unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_NOHUGEPAGE)
		unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED)
	}
}

// relro reads the binary's ELF program headers: the PT_GNU_RELRO range
// (page-aligned outwards) and the page-aligned address of the first
// PT_LOAD, from which the load bias follows.
func relro() (lo, hi, firstLoad uint64, ok bool) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return 0, 0, 0, false
	}
	defer f.Close()
	const page = 4096
	firstLoad = ^uint64(0)
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			firstLoad = min(firstLoad, p.Vaddr&^(page-1))
		case elf.PT_GNU_RELRO:
			lo, hi = p.Vaddr&^(page-1), (p.Vaddr+p.Memsz+page-1)&^(page-1)
		}
	}
	return lo, hi, firstLoad, firstLoad != ^uint64(0)
}

// supervisorChoice passes _HUTCH_SUPERVISOR=go on to the supervisor: it
// selects the supervisor in Go (this file) over the one in C
// (supervisor.c), which a binary built with cgo runs otherwise.
func supervisorChoice() []string {
	if v := os.Getenv("_HUTCH_SUPERVISOR"); v != "" {
		return []string{"_HUTCH_SUPERVISOR=" + v}
	}
	return nil
}

// launch is what supervisor.c needs, beyond the policies, to start the
// container's init itself (sup_clone) without a Go process: what startInit
// reads from config.json and asks the cgroup driver, worked out by the
// driver when it writes supervisor.conf.
type launch struct {
	OOMFile     string   // the cgroup file with the oom_kill line (v1 memory.oom_control, v2 memory.events)
	CloneFlags  uintptr  // CLONE_NEW* of the init's new namespaces
	Netns       string   // the network namespace to join, "" for none
	UIDMap      []string // lines of /proc/PID/uid_map ("0 100000 65536"), for a user namespace
	GIDMap      []string
	CgroupProcs []string // the cgroup.procs file of each hierarchy (CgroupJoiner.ProcsFiles)
}

// newLaunch works out the launch of spec's init for the cgroup at cgPath
// ("" for none) through cg.
func newLaunch(spec *specs.Spec, cg CgroupJoiner, cgPath string) (*launch, error) {
	attr, netns, err := initAttr(spec)
	if err != nil {
		return nil, err
	}
	l := &launch{CloneFlags: attr.Cloneflags, Netns: netns}
	for _, m := range attr.UidMappings {
		l.UIDMap = append(l.UIDMap, fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size))
	}
	for _, m := range attr.GidMappings {
		l.GIDMap = append(l.GIDMap, fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size))
	}
	if cgPath != "" && cg != nil {
		if l.OOMFile, err = cg.OOMFile(cgPath); err != nil {
			return nil, err
		}
		if l.CgroupProcs, err = cg.ProcsFiles(cgPath); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// writeConf writes supervisor.conf for the supervisor in C: the policies
// of p and the launch of its init, as "key value" lines (a key with
// several values repeats).
func writeConf(bundle string, p *plan.Process, l *launch) error {
	sig, err := parseSignal(p.StopSignal)
	if err != nil {
		return fmt.Errorf("container %s: stop signal: %w", p.Container, err)
	}
	b := fmt.Appendf(nil, "container %s\ndigest %s\nrestart %s\nmax_retries %d\nstop_signal %d\nstop_timeout_ns %d\nlog_max_size %d\nlog_max_files %d\n",
		p.Container, p.Digest, p.Restart.Policy, p.Restart.MaxRetries, int(sig), int64(p.StopTimeout), p.Logs.MaxSize, p.Logs.MaxFiles)
	// supervisor.c holds up to 16 cgroup.procs files and 1 KiB of each map.
	if len(l.CgroupProcs) > 16 || len(strings.Join(l.UIDMap, "\n")) > 1000 || len(strings.Join(l.GIDMap, "\n")) > 1000 {
		return fmt.Errorf("container %s: %d cgroup hierarchies, %d uid and %d gid mappings: more than the supervisor holds", p.Container, len(l.CgroupProcs), len(l.UIDMap), len(l.GIDMap))
	}
	b = fmt.Appendf(b, "clone_flags %d\n", l.CloneFlags)
	kv := [][2]string{{"oom_file", l.OOMFile}, {"netns", l.Netns}}
	if h := p.Health; h != nil {
		// supervisor_health.c holds 64 arguments in 16 KiB.
		n := 0
		for _, a := range h.Command {
			n += len(a) + 1
		}
		if len(h.Command) > 64 || n > 16<<10 {
			return fmt.Errorf("container %s: health check: %d arguments of %d bytes: more than the supervisor holds (64, 16 KiB)", p.Container, len(h.Command), n)
		}
		b = fmt.Appendf(b, "health_kind %s\nhealth_port %d\nhealth_interval_ns %d\nhealth_start_interval_ns %d\nhealth_timeout_ns %d\nhealth_retries %d\nhealth_start_period_ns %d\n",
			h.Kind, h.Port, int64(h.Interval), int64(h.StartInterval), int64(h.Timeout), h.Retries, int64(h.StartPeriod))
		kv = append(kv, [2]string{"health_path", h.Path})
		for _, a := range h.Command {
			if strings.Contains(a, "\x00") {
				return fmt.Errorf("container %s: health check: argument %q holds a NUL byte", p.Container, a)
			}
			// One line each, a newline in it written as \n (and \ as \\).
			kv = append(kv, [2]string{"health_arg", confEscaper.Replace(a)})
		}
	}
	for _, m := range l.UIDMap {
		kv = append(kv, [2]string{"uid_map", m})
	}
	for _, m := range l.GIDMap {
		kv = append(kv, [2]string{"gid_map", m})
	}
	for _, f := range l.CgroupProcs {
		kv = append(kv, [2]string{"cgroup_procs", f})
	}
	for _, e := range kv {
		if e[1] == "" && e[0] != "health_arg" {
			continue
		}
		// The C supervisor reads lines of up to 4 KiB.
		if strings.ContainsAny(e[1], "\n\x00") || len(e[1]) > 4000 {
			return fmt.Errorf("container %s: %s %q: not a line supervisor.conf can hold", p.Container, e[0], e[1])
		}
		b = fmt.Appendf(b, "%s %s\n", e[0], e[1])
	}
	return writeAtomic(filepath.Join(bundle, confFile), b)
}

// confEscaper writes a value that may hold newlines as one line of
// supervisor.conf (hc_unescape in supervisor_health.c reads it back).
var confEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n")

// The helper stage the C supervisor runs for what still needs Go.

// cgroupKillMain kills every process of the container's cgroup for the C
// supervisor, when the stop timeout passed.
func cgroupKillMain(newCgroup CgroupFactory) int {
	c, cg, err := helperSetup(os.Getenv(envBundle), newCgroup)
	if err == nil && cg != nil {
		err = cg.KillAll(c.Cgroup)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: %v\n", err)
		return 1
	}
	return 0
}

func helperSetup(bundle string, newCgroup CgroupFactory) (*supervisorConfig, CgroupJoiner, error) {
	var c supervisorConfig
	if err := readJSON(filepath.Join(bundle, configFile), &c); err != nil {
		return nil, nil, fmt.Errorf("supervisor: %w", err)
	}
	if c.Cgroup == "" {
		return &c, nil, nil
	}
	if newCgroup == nil {
		return nil, nil, fmt.Errorf("supervisor: cgroup %s: no cgroup driver", c.Cgroup)
	}
	cg, err := newCgroup(filepath.Dir(c.Cgroup))
	if err != nil {
		return nil, nil, fmt.Errorf("supervisor: %w", err)
	}
	return &c, cg, nil
}
