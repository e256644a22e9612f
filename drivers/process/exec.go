//go:build linux

package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// execConfig is what the exec stage runs: the container's process settings
// with the command replaced, and its seccomp profile.
type execConfig struct {
	Process specs.Process       `json:"process"`
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
}

// Stdio are the streams of an exec'd process. With a terminal, In and Out
// are joined through a pseudo-terminal and Err is not used.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Exec runs args in the running container of bundle and returns its exit
// status (128+N for a death by signal N). The process joins every namespace
// of the container's init (nsenter.c does the joining before the Go runtime
// starts) and its cgroup, and gets the container's user, capabilities,
// no_new_privs, rlimits, cwd and seccomp filter, like the init did. It runs
// in a session of its own (setsid(2), as runc's nsexec does): in the
// caller's session the container's /dev/tty would open the caller's
// terminal, where TIOCSTI pushes keystrokes into the administrator's shell.
// With tty it gets a new pseudo-terminal (from the host's /dev/ptmx) as the
// controlling terminal of that session; without, it has none. Every signal
// that arrives on signals is passed to it (nsenter.c's waiting parent
// passes it on to the command); when ctx ends it is killed.
func (d *Driver) Exec(ctx context.Context, bundle string, args []string, stdio Stdio, tty bool, signals <-chan os.Signal) (int, error) {
	name := filepath.Base(bundle)
	if len(args) == 0 {
		return -1, fmt.Errorf("container %s: exec: no command", name)
	}
	if !withC {
		return -1, fmt.Errorf("container %s: exec: this hutch was built without cgo, which joining a mount namespace needs", name)
	}
	st, err := d.State(bundle)
	if err != nil {
		return -1, err
	}
	r, err := d.startExec(bundle, st, args, stdio, tty)
	if err != nil {
		return -1, fmt.Errorf("container %s: exec: %w", name, err)
	}
	code, err := r.wait(ctx, stdio, signals)
	if err != nil {
		return -1, fmt.Errorf("container %s: exec: %w", name, err)
	}
	return code, nil
}

// execRun is a command started by Exec.
type execRun struct {
	cmd    *exec.Cmd
	master *os.File // the pseudo-terminal's master, with tty
}

// startExec checks that the container's first process (st) runs, starts
// the exec stage in the container (its cgroup first) and gives it the
// command with the container's process settings.
func (d *Driver) startExec(bundle string, st *State, args []string, stdio Stdio, tty bool) (*execRun, error) {
	if !st.Alive() {
		return nil, fmt.Errorf("not running (%s)", st.Status)
	}
	spec, err := loadSpec(bundle)
	if err != nil {
		return nil, err
	}
	cfg := execConfig{Process: *spec.Process, Seccomp: seccompOf(spec)}
	cfg.Process.Args = args
	cfg.Process.Terminal = tty
	pidfd, nsFlags, err := openInit(st.PID, st.PIDStart)
	if err != nil {
		return nil, err
	}
	defer pidfd.Close()
	r, syncW, cfgW, err := startExecStage(bundle, pidfd, nsFlags, stdio, tty)
	if err != nil {
		return nil, err
	}
	defer syncW.Close()
	defer cfgW.Close()
	if err := d.release(r, bundle, syncW, cfgW, &cfg); err != nil {
		if r.master != nil {
			r.master.Close()
		}
		return nil, abort(r.cmd, err)
	}
	return r, nil
}

// startExecStage starts the exec stage for the container whose init
// pidfd names, with the namespaces of nsFlags to join, and returns it
// with the parent's ends of its sync and config pipes.
func startExecStage(bundle string, pidfd *os.File, nsFlags int, stdio Stdio, tty bool) (r *execRun, syncW, cfgW *os.File, err error) {
	exe, err := sealedSelf()
	if err != nil {
		return nil, nil, nil, err
	}
	defer exe.Close()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	defer syncR.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		syncW.Close()
		return nil, nil, nil, err
	}
	defer cfgR.Close()
	st := stage{name: stageExec, arg: filepath.Base(bundle), files: []*os.File{exe, syncR, cfgR, pidfd},
		env:   []string{envNsenter + "=" + strconv.Itoa(execFdPidfd) + ":" + strconv.Itoa(execFdSync) + ":" + strconv.FormatUint(uint64(nsFlags), 10)},
		stdin: stdio.In, stdout: stdio.Out, stderr: stdio.Err, attr: &syscall.SysProcAttr{Setsid: true}}
	r = &execRun{}
	var slave *os.File
	if tty {
		if r.master, slave, err = OpenPty(); err != nil {
			syncW.Close()
			cfgW.Close()
			return nil, nil, nil, err
		}
		st.stdin, st.stdout, st.stderr = slave, slave, slave
		st.attr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	r.cmd, err = startStage(st)
	if slave != nil {
		// Only the child holds the terminal now: when it and its children
		// have closed it, reads of the master end with EIO.
		slave.Close()
	}
	if err != nil {
		if r.master != nil {
			r.master.Close()
		}
		syncW.Close()
		cfgW.Close()
		return nil, nil, nil, err
	}
	return r, syncW, cfgW, nil
}

// release puts the exec stage in the container's cgroup, lets nsenter.c go
// on (one byte on the sync pipe) and writes the stage its command.
func (d *Driver) release(r *execRun, bundle string, syncW, cfgW *os.File, cfg *execConfig) error {
	var c supervisorConfig
	if err := readJSON(filepath.Join(bundle, configFile), &c); err != nil {
		return err
	}
	if c.Cgroup != "" && d.cg != nil {
		if err := d.cg.AddProcess(c.Cgroup, r.cmd.Process.Pid); err != nil {
			return err
		}
	}
	if _, err := syncW.Write([]byte{1}); err != nil {
		return err
	}
	syncW.Close()
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		return err
	}
	return cfgW.Close()
}

// wait copies the terminal, passes signals on and waits for the command's
// end: its exit status.
func (r *execRun) wait(ctx context.Context, stdio Stdio, signals <-chan os.Signal) (int, error) {
	var copied chan struct{}
	if r.master != nil {
		defer r.master.Close()
		restore := rawTerminal(stdio.In)
		defer restore()
		if stdio.In != nil {
			go io.Copy(r.master, stdio.In)
		}
		copied = make(chan struct{})
		go func() {
			out := stdio.Out
			if out == nil {
				out = io.Discard
			}
			io.Copy(out, r.master)
			close(copied)
		}()
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	for {
		select {
		case s := <-signals:
			r.cmd.Process.Signal(s)
		case <-ctx.Done():
			r.cmd.Process.Signal(unix.SIGKILL)
		case err := <-done:
			if copied != nil {
				// Print what is still in the terminal's buffer (bounded:
				// a background process may hold the terminal open).
				select {
				case <-copied:
				case <-time.After(time.Second):
				}
			}
			var ee *exec.ExitError
			if err == nil || errors.As(err, &ee) {
				return r.cmd.ProcessState.ExitCode(), nil
			}
			return -1, err
		}
	}
}

// execMain is the exec stage: nsenter.c has joined the container's
// namespaces and forked, so this process is inside the container's pid
// namespace and sees its root. It applies the container's settings and
// execs the command.
func execMain() {
	f := os.NewFile(execFdConfig, "config pipe")
	var c execConfig
	if err := json.NewDecoder(f).Decode(&c); err != nil {
		fail(nil, fmt.Errorf("hutch exec: read config: %w", err))
	}
	f.Close()
	if len(c.Process.Args) == 0 {
		fail(nil, errors.New("hutch exec: no command"))
	}
	if err := finishAndExec(&c.Process, c.Seccomp); err != nil {
		fmt.Fprintf(os.Stderr, "hutch exec: %v\n", err)
		os.Exit(127)
	}
}

// execNamespaces are the namespaces exec joins and their clone(2) flags.
// The time namespace is not joined: the runtime refuses containers with
// one (initAttr, launch.go).
var execNamespaces = []struct {
	name string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"mnt", unix.CLONE_NEWNS},
	{"user", unix.CLONE_NEWUSER},
}

// openInit opens a pidfd (pidfd_open(2)) of the container's init, pid
// started at start, and returns it with the CLONE_NEW* flags of the
// namespaces that nsenter.c joins with setns(2) on it.
//
// A pid alone names whichever process holds it when it is used: between
// State's liveness check and the joining, the init may end and any other
// process, a host's one, take its pid. The pidfd names one process for
// good; the start time, read after the pidfd is open, proves that this
// process is the init (a pid and its start time are never reused
// together), and pidfd_send_signal(2) of signal 0 after /proc/PID/ns/* is
// read proves that the pid was still the init's then (a pid is not reused
// before its process is reaped).
//
// It refuses an init whose mount namespace is hutch's own or pid 1's:
// joining it would run the command, as root, on the host's filesystem.
func openInit(pid int, start uint64) (*os.File, int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("init %d: pidfd_open: %w", pid, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd "+strconv.Itoa(pid))
	flags, err := initNamespaces(pidfd, pid, start)
	if err != nil {
		pidfd.Close()
		return nil, 0, fmt.Errorf("init %d: %w", pid, err)
	}
	return pidfd, flags, nil
}

func initNamespaces(pidfd *os.File, pid int, start uint64) (int, error) {
	state, got, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if got != start || state == 'Z' || state == 'X' {
		return 0, fmt.Errorf("not the container's init any more (state %c, started at %d, not %d)", state, got, start)
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/ns/"
	flags := 0
	var mnt, user fileID
	for _, ns := range execNamespaces {
		id, err := statID(dir + ns.name)
		if errors.Is(err, unix.ENOENT) && ns.name != "mnt" {
			continue // the kernel lacks this namespace type
		}
		if err != nil {
			return 0, fmt.Errorf("namespace: %w", err)
		}
		switch ns.name {
		case "mnt":
			mnt = id
		case "user":
			user = id
		}
		flags |= ns.flag
	}
	if err := unix.PidfdSendSignal(int(pidfd.Fd()), 0, nil, 0); err != nil {
		return 0, fmt.Errorf("ended while its namespaces were read: %w", err)
	}
	// The user namespace is per process (setns(2) refuses it to a process
	// with threads), and joining one's own fails with EINVAL: a container
	// without a user namespace of its own is in hutch's.
	if flags&unix.CLONE_NEWUSER != 0 {
		if self, err := statID("/proc/self/ns/user"); err != nil {
			return 0, fmt.Errorf("own user namespace: %w", err)
		} else if self == user {
			flags &^= unix.CLONE_NEWUSER
		}
	}
	// The mount namespace is per thread: hutch's is read on a thread locked
	// for it (the one the exec stage is forked from has the same) and from
	// /proc/self (the main thread's). pid 1's is the host's too (a hutch in
	// a mount namespace of its own, as a systemd unit with PrivateTmp, is
	// not the only host), where hutch may read it: in some sandboxes
	// /proc/1/ns refuses even root (EACCES).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, host := range []string{"/proc/thread-self/ns/mnt", "/proc/self/ns/mnt", "/proc/1/ns/mnt"} {
		id, err := statID(host)
		if err != nil && host == "/proc/1/ns/mnt" {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("host mount namespace: %w", err)
		}
		if id == mnt {
			return 0, fmt.Errorf("its mount namespace is the host's (%s): refusing to join it", host)
		}
	}
	return flags, nil
}

// OpenPty opens a new pseudo-terminal pair on the host's devpts: the
// master through /dev/ptmx, unlocked with TIOCSPTLCK, and the slave by the
// number TIOCGPTN reports.
func OpenPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	var unlock int32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", e)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty %d: %w", n, err)
	}
	return m, s, nil
}

// rawTerminal puts the caller's terminal (when in is one) in raw mode, so
// that keys reach the container's terminal unchanged, and returns the
// function that restores it.
func rawTerminal(in io.Reader) func() {
	f, ok := in.(*os.File)
	if !ok {
		return func() {}
	}
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	unix.IoctlSetTermios(fd, unix.TCSETS, &raw)
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}
