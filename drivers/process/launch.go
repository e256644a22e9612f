//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
)

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
// puts it in the cgroup and lets it go on, with stdin (nil: /dev/null),
// stdout and stderr as the workload's streams. It returns once the init
// has executed the workload (the error pipe reached EOF) or failed. This
// is how `hutch run` starts a container in the foreground (foreground.go);
// the supervisor does the same in C (sup_clone in supervisor_clone.c) from
// what newLaunch wrote to supervisor.conf.
func startInit(bundle string, cg CgroupJoiner, cgPath string, stdin io.Reader, stdout, stderr io.Writer) (*exec.Cmd, error) {
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
	s := &initStart{spec: spec, attr: attr, netns: netnsPath, bundle: bundle, exe: exe, join: join, cg: cg, cgPath: cgPath,
		stdin: stdin, stdout: stdout, stderr: stderr}
	into := join != nil && join.v2dir != nil
	for {
		cmd, bornDead, err := s.launch(into)
		if bornDead && into {
			// The kernel killed it at birth (see sup_start_init in
			// supervisor_clone.c): again, without CLONE_INTO_CGROUP.
			into = false
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		return cmd, nil
	}
}

// initStart is what startInit worked out for each try of launch.
type initStart struct {
	spec           *specs.Spec
	attr           *syscall.SysProcAttr
	netns, bundle  string
	exe            *os.File    // the sealed binary
	join           *cgroupJoin // nil: the pid is written to each cgroup.procs (AddProcess)
	cg             CgroupJoiner
	cgPath         string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// initPipes are the pipes between the parent and an init it starts; the
// init's ends become its descriptors (protocol.go's initFd*), hello is
// selfjoin.c's (nil without a cgroupJoin).
type initPipes struct {
	syncR, syncW   *os.File // one byte lets the init go on
	errR, errW     *os.File // the init's error, or EOF at its execve
	cfgR, cfgW     *os.File // config.json; cfgW is closed by its writer
	helloR, helloW *os.File // one byte: the init is alive
}

func openInitPipes(hello bool) (*initPipes, error) {
	p := &initPipes{}
	var err error
	if p.syncR, p.syncW, err = os.Pipe(); err == nil {
		if p.errR, p.errW, err = os.Pipe(); err == nil {
			if p.cfgR, p.cfgW, err = os.Pipe(); err == nil && hello {
				p.helloR, p.helloW, err = os.Pipe()
			}
		}
	}
	if err != nil {
		p.closeInits()
		p.closeOurs()
		if p.cfgW != nil {
			p.cfgW.Close()
		}
		return nil, err
	}
	return p, nil
}

// closeInits closes the init's ends, once it holds them (or failed to
// start): the parent's reads then see the end when the init closes its own.
func (p *initPipes) closeInits() {
	for _, f := range []*os.File{p.syncR, p.errW, p.cfgR, p.helloW} {
		if f != nil {
			f.Close()
		}
	}
}

// closeOurs closes the parent's ends but cfgW.
func (p *initPipes) closeOurs() {
	for _, f := range []*os.File{p.syncW, p.errR, p.helloR} {
		if f != nil {
			f.Close()
		}
	}
}

// launch is one try of startInit: it starts the init and puts it in the
// cgroup (join, when not nil: born in the cgroup2 folder when into,
// moving itself into the v1 hierarchies; else AddProcess), releases it
// and waits until it has executed the workload. bornDead says that it was
// killed by SIGKILL before it ran (with into: the kernel's doing).
func (s *initStart) launch(into bool) (cmd *exec.Cmd, bornDead bool, err error) {
	p, err := openInitPipes(s.join != nil)
	if err != nil {
		return nil, false, err
	}
	defer p.closeOurs()
	cmd, err = s.start(p, into)
	if err != nil {
		p.cfgW.Close()
		// With into: clone3 without CLONE_INTO_CGROUP (Linux 5.3 to 5.6:
		// E2BIG) or refusing it: again, with the pid written.
		return nil, into, fmt.Errorf("start init: %w", err)
	}
	// The config can be larger than a pipe's buffer: write it while the
	// init reads, and close the pipe at the end.
	go func() {
		json.NewEncoder(p.cfgW).Encode(s.spec)
		p.cfgW.Close()
	}()
	if bornDead, err := waitAlive(cmd, p, into); err != nil {
		return nil, bornDead, err
	}
	if err := s.joinLate(cmd.Process.Pid, into); err != nil {
		return nil, false, abort(cmd, err)
	}
	if err := release(cmd, p); err != nil {
		return nil, false, err
	}
	return cmd, false, nil
}

// start starts the init stage with p's ends and the cgroup's files.
func (s *initStart) start(p *initPipes, into bool) (*exec.Cmd, error) {
	files := []*os.File{s.exe, p.syncR, p.errW, p.cfgR}
	env := []string{envBundle + "=" + s.bundle}
	a := *s.attr
	if s.join != nil {
		var v string
		files, v = s.join.files(files, p.helloW)
		env = append(env, envJoin+"="+v)
		if into {
			a.UseCgroupFD, a.CgroupFD = true, int(s.join.v2dir.Fd())
		}
	}
	cmd, err := startStage(stage{name: stageInit, arg: filepath.Base(s.bundle), files: files, env: env,
		stdin: s.stdin, stdout: s.stdout, stderr: s.stderr, attr: &a, netns: s.netns, waitDelay: 2 * time.Second})
	p.closeInits()
	return cmd, err
}

// waitAlive waits for selfjoin.c's hello, when there is one: an init that
// ended before has failed, and bornDead says the kernel killed it at its
// birth (with into).
func waitAlive(cmd *exec.Cmd, p *initPipes, into bool) (bornDead bool, err error) {
	if p.helloR == nil {
		return false, nil
	}
	var b [1]byte
	if n, _ := p.helloR.Read(b[:]); n == 1 {
		return false, nil
	}
	// Ended before selfjoin.c ran: see how.
	cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if into && ws.Signaled() && ws.Signal() == unix.SIGKILL {
		return true, errors.New("start init: killed at its birth")
	}
	msg, _ := io.ReadAll(p.errR)
	return false, fmt.Errorf("start init: it ended before it ran (%v) %s", cmd.ProcessState, msg)
}

// joinLate puts the init pid in the cgroup when it did not get there
// itself: through the cgroup driver without a cgroupJoin, or its
// cgroup2 folder's cgroup.procs when it was not born in it.
func (s *initStart) joinLate(pid int, into bool) error {
	switch {
	case s.join == nil && s.cg != nil && s.cgPath != "":
		return s.cg.AddProcess(s.cgPath, pid)
	case s.join != nil && !into && s.join.v2procs != "":
		if err := os.WriteFile(s.join.v2procs, []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	return nil
}

// release lets the init go on (one byte on the sync pipe) and waits until
// it has executed the workload: EOF on the error pipe, or its error. A
// child that failed to join (selfjoin.c) has closed the sync pipe: the
// write fails, and the error pipe says why.
func release(cmd *exec.Cmd, p *initPipes) error {
	_, werr := p.syncW.Write([]byte{1})
	msg, err := io.ReadAll(p.errR)
	if err != nil {
		return abort(cmd, fmt.Errorf("read init's error pipe: %w", err))
	}
	if len(msg) > 0 {
		cmd.Wait()
		return errors.New(string(msg))
	}
	if werr != nil {
		return abort(cmd, fmt.Errorf("release init: %w", werr))
	}
	return nil
}

// abort kills a stage that was started and waits for it, and returns err.
func abort(cmd *exec.Cmd, err error) error {
	cmd.Process.Kill()
	cmd.Wait()
	return err
}

// stage is a start of one of the hutch binary's stages from Go (protocol.go
// names them): the binary run from the sealed copy no one can write to
// (sealedSelf), named hutch-NAME with the container's name as its
// argument, with the stage in its environment.
type stage struct {
	name  string     // the stage (envStage)
	arg   string     // its argument: the container's name
	files []*os.File // descriptors 3, 4, ...: 3 the sealed binary (initFdExe, execFdExe)
	env   []string   // besides envStage
	stdin io.Reader
	// The stage's stdout and stderr (nil: /dev/null).
	stdout, stderr io.Writer
	attr           *syscall.SysProcAttr
	netns          string        // a network namespace to start it in, "" for none (startInNetns)
	waitDelay      time.Duration // exec.Cmd's
}

// startStage starts a stage: the sealed binary, executed through
// /proc/self/fd/3 (os/exec gives the child ExtraFiles from descriptor 3),
// so /proc/PID/exe of the stage, and of the workload a stage becomes,
// never leads to hutch's binary on disk (CVE-2019-5736).
func startStage(s stage) (*exec.Cmd, error) {
	cmd := &exec.Cmd{
		Path:        fmt.Sprintf("/proc/self/fd/%d", initFdExe),
		Args:        []string{"hutch-" + s.name, s.arg},
		Env:         append([]string{envStage + "=" + s.name}, s.env...),
		Dir:         "/",
		ExtraFiles:  s.files,
		Stdin:       s.stdin,
		Stdout:      s.stdout,
		Stderr:      s.stderr,
		SysProcAttr: s.attr,
		WaitDelay:   s.waitDelay,
	}
	if err := startInNetns(cmd, s.netns); err != nil {
		return nil, err
	}
	return cmd, nil
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
