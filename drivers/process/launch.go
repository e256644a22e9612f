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
// the supervisor does the same in C (sup_clone in supervisor.c) from what
// newLaunch wrote to supervisor.conf.
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

// launchInit is one try of startInit: it starts the init and puts it
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
		env = append(env, envJoin+"="+v)
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
