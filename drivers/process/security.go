//go:build linux

package process

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// finishAndExec is the end of the init and exec stages, in the order runc
// uses: rlimits, the workload's path and cwd, close-on-exec on every
// inherited descriptor, the bounding set, uid/gid/groups, the remaining
// capability sets, no_new_privs, the seccomp filter, and execve(2). Every
// step runs on the current (locked) thread, the one execve keeps.
func finishAndExec(p *specs.Process, sec *specs.LinuxSeccomp) error {
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	env := p.Env
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir %s: %w", cwd, err)
	}
	// CVE-2024-21626: a cwd reached through a leaked descriptor of the host
	// would be outside the root; getcwd(2) then does not start with "/"
	// (the kernel prefixes "(unreachable)"), which Getwd reports as ENOENT.
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("cwd %s is not inside the container's root (getcwd: %q, %v)", cwd, wd, err)
	}
	if err := closeExtraFds(); err != nil {
		return err
	}
	var filter []unix.SockFilter
	if sec != nil {
		if filter, err = compileSeccomp(sec); err != nil {
			return err
		}
	}
	caps, err := capsOf(p.Capabilities)
	if err != nil {
		return err
	}
	// Loading a filter needs no_new_privs or CAP_SYS_ADMIN. Without
	// no_new_privs the filter goes in now, while the capability is still
	// held; it then also covers the set-up calls below (they are all in
	// Docker's profile).
	if sec != nil && !p.NoNewPrivileges {
		if err := loadSeccomp(filter, sec); err != nil {
			return err
		}
	}
	if err := caps.Apply(capability.BOUNDING); err != nil {
		return fmt.Errorf("drop capabilities from the bounding set: %w", err)
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := caps.Apply(capability.CAPS | capability.AMBIENT); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
		if sec != nil {
			if err := loadSeccomp(filter, sec); err != nil {
				return err
			}
		}
	}
	err = syscall.Exec(path, p.Args, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// lookPath finds the workload in the container's PATH (from its env), as
// execvp(3) would.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", fmt.Errorf("exec %s: %w", file, err)
		}
		return file, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %s: not found in PATH %s", file, pathEnv)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// closeExtraFds marks every descriptor above 2 close-on-exec, so none
// reaches the workload (CVE-2024-21626: a leaked descriptor of a host folder
// is a way out of the root). They are marked rather than closed because the
// Go runtime still uses some of its own until execve. One close_range(2)
// with CLOSE_RANGE_CLOEXEC (Linux 5.11) does it for the whole range, with
// no need of a /proc in the new root, which a config may leave out or a
// rootfs may hide; only where the kernel lacks it (ENOSYS before 5.9, EINVAL
// for the flag before 5.11) are the descriptors listed from /proc/self/fd.
func closeExtraFds() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("close descriptors: close_range: %w", err)
	}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("close descriptors: close_range is missing: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("close descriptors: %w", err)
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

var rlimitTypes = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// CheckRlimits says, before anything is created, whether this host can give
// the container the rlimits its config asks for: raising a hard limit above
// the current one needs CAP_SYS_RESOURCE, which root lacks on some hosts
// (setrlimit(2) then fails with EPERM). Lowering always works.
func CheckRlimits(s *specs.Spec) error {
	if s == nil || s.Process == nil {
		return nil
	}
	canRaise := hasEffectiveCap(unix.CAP_SYS_RESOURCE)
	var errs []error
	for _, r := range s.Process.Rlimits {
		res, ok := rlimitTypes[r.Type]
		if !ok {
			errs = append(errs, fmt.Errorf("rlimit %s: unknown type", r.Type))
			continue
		}
		if r.Soft > r.Hard {
			errs = append(errs, fmt.Errorf("rlimit %s: soft limit %d above the hard limit %d", r.Type, r.Soft, r.Hard))
			continue
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(res, &cur); err != nil {
			errs = append(errs, fmt.Errorf("rlimit %s: getrlimit: %w", r.Type, err))
			continue
		}
		if r.Hard > cur.Max && !canRaise {
			errs = append(errs, fmt.Errorf("rlimit %s: hard limit %d is above the host's %d, and raising it needs CAP_SYS_RESOURCE, which hutch lacks here", r.Type, r.Hard, cur.Max))
		}
	}
	return errors.Join(errs...)
}

// hasEffectiveCap reads CapEff of /proc/self/status.
func hasEffectiveCap(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<uint(c)) != 0
		}
	}
	return false
}

// setRlimits sets each rlimit with setrlimit(2); syscall.Setrlimit also
// tells the Go runtime not to restore its own RLIMIT_NOFILE at execve.
func setRlimits(rl []specs.POSIXRlimit) error {
	for _, r := range rl {
		res, ok := rlimitTypes[r.Type]
		if !ok {
			return fmt.Errorf("rlimit %s: unknown type", r.Type)
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("rlimit %s: set %d/%d: %w (raising a limit needs CAP_SYS_RESOURCE)", r.Type, r.Soft, r.Hard, err)
			}
			return fmt.Errorf("rlimit %s: set %d/%d: %w", r.Type, r.Soft, r.Hard, err)
		}
	}
	return nil
}

// setUser switches to the process's uid, gid and supplementary groups. The
// capabilities are kept over setuid(2) (PR_SET_KEEPCAPS) so that capsOf's
// sets can be applied afterwards, also for a non-root user.
func setUser(u specs.User) error {
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	groups := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := syscall.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	return nil
}

// capNames maps "CAP_NET_BIND_SERVICE" to the capability.
var capNames = func() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
}()

// capsOf builds the five capability sets of the process; a nil
// Capabilities leaves them all empty.
func capsOf(lc *specs.LinuxCapabilities) (capability.Capabilities, error) {
	c, err := capability.NewPid2(0)
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	c.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	if lc == nil {
		return c, nil
	}
	sets := []struct {
		which capability.CapType
		names []string
	}{
		{capability.BOUNDING, lc.Bounding}, {capability.EFFECTIVE, lc.Effective},
		{capability.PERMITTED, lc.Permitted}, {capability.INHERITABLE, lc.Inheritable},
		{capability.AMBIENT, lc.Ambient},
	}
	last, _ := capability.LastCap()
	for _, s := range sets {
		for _, n := range s.names {
			cp, ok := capNames[n]
			if !ok {
				return nil, fmt.Errorf("capabilities: unknown capability %s", n)
			}
			if cp > last {
				continue // the kernel does not know it
			}
			c.Set(s.which, cp)
		}
	}
	return c, nil
}
