//go:build linux

package process

import (
	"fmt"
	"math/bits"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// compileSeccomp turns the runtime-spec form of a seccomp profile (Docker's
// default, as plan.Build writes it) into a classic BPF program for
// seccomp(2), in pure Go with elastic/go-seccomp-bpf.
//
// Each rule becomes one group, in the profile's order (the first rule that
// matches decides); the conditions of a rule are ANDed, as libseccomp does
// for conditions on different arguments. Syscall names this architecture
// does not have are skipped, as libseccomp skips them. The program checks
// the architecture first: calls of another ABI (i386 through int 0x80, x32)
// get the default action (x32: ENOSYS).
func compileSeccomp(s *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: default action: %w", err)
	}
	pol := seccomp.Policy{DefaultAction: seccomp.ActionErrno}
	for i, r := range s.Syscalls {
		act, err := seccompAction(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule %d (%v): %w", i, r.Names, err)
		}
		g := seccomp.SyscallGroup{Action: act}
		var conds seccomp.ArgumentConditions
		for _, a := range r.Args {
			c, err := seccompCondition(a)
			if err != nil {
				return nil, fmt.Errorf("seccomp: rule %d (%v): %w", i, r.Names, err)
			}
			conds = append(conds, c)
		}
		for _, n := range r.Names {
			if _, ok := info.SyscallNames[n]; !ok {
				continue
			}
			if len(conds) == 0 {
				g.Names = append(g.Names, n)
			} else {
				g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: n, Conditions: conds})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			pol.Syscalls = append(pol.Syscalls, g)
		}
	}
	if len(pol.Syscalls) == 0 {
		// The library wants one group; a rule that can never match (no such
		// syscall number) keeps the program a plain default action.
		pol.Syscalls = []seccomp.SyscallGroup{{Names: []string{"read"}, Action: def}}
	}
	insts, err := pol.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	// The library only knows a bare ERRNO (EPERM) as the default action;
	// put the real one in the final return.
	last := len(insts) - 1
	if r, ok := insts[last].(bpf.RetConstant); ok && r.Val == uint32(seccomp.ActionErrno)|uint32(unix.EPERM) {
		insts[last] = bpf.RetConstant{Val: uint32(def)}
	} else {
		return nil, fmt.Errorf("seccomp: unexpected program end %v", insts[last])
	}
	// The jump for a foreign architecture lands on that same final return.
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (seccomp.Action, error) {
	switch a {
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActErrno:
		e := uint(unix.EPERM)
		if errnoRet != nil {
			e = *errnoRet
		}
		return seccomp.ActionErrno | seccomp.Action(e&unix.SECCOMP_RET_DATA), nil
	case specs.ActKill, specs.ActKillThread:
		return seccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return seccomp.ActionTrap, nil
	case specs.ActLog:
		return seccomp.ActionLog, nil
	case specs.ActTrace:
		e := uint(unix.EPERM)
		if errnoRet != nil {
			e = *errnoRet
		}
		return seccomp.ActionTrace | seccomp.Action(e&unix.SECCOMP_RET_DATA), nil
	}
	return 0, fmt.Errorf("unsupported action %s", a)
}

func seccompCondition(a specs.LinuxSeccompArg) (seccomp.Condition, error) {
	c := seccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	switch a.Op {
	case specs.OpEqualTo:
		c.Operation = seccomp.Equal
	case specs.OpNotEqual:
		c.Operation = seccomp.NotEqual
	case specs.OpLessThan:
		c.Operation = seccomp.LessThan
	case specs.OpLessEqual:
		c.Operation = seccomp.LessOrEqual
	case specs.OpGreaterThan:
		c.Operation = seccomp.GreaterThan
	case specs.OpGreaterEqual:
		c.Operation = seccomp.GreaterOrEqual
	case specs.OpMaskedEqual:
		// (arg & value) == valueTwo. The two forms profiles use: no bit of
		// the mask set (valueTwo 0, Docker's clone and unshare rules), and
		// one bit set.
		switch {
		case a.ValueTwo == 0:
			c.Operation = seccomp.BitsNotSet
		case a.ValueTwo == a.Value && bits.OnesCount64(a.Value) == 1:
			c.Operation = seccomp.BitsSet
		default:
			return c, fmt.Errorf("argument %d: SCMP_CMP_MASKED_EQ %#x == %#x is not supported", a.Index, a.Value, a.ValueTwo)
		}
	default:
		return c, fmt.Errorf("argument %d: unknown operator %s", a.Index, a.Op)
	}
	return c, nil
}

var seccompFlags = map[specs.LinuxSeccompFlag]uint{
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: 1 << 5, // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
}

// loadSeccomp installs the filter on the calling thread with
// seccomp(SECCOMP_SET_MODE_FILTER); execve keeps it, and the workload and
// every child inherit it.
func loadSeccomp(filter []unix.SockFilter, s *specs.LinuxSeccomp) error {
	var flags uint
	for _, f := range s.Flags {
		v, ok := seccompFlags[f]
		if !ok {
			return fmt.Errorf("seccomp: unknown flag %s", f)
		}
		flags |= v
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter of %d instructions: %w", len(filter), errno)
	}
	return nil
}
