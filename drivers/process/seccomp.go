//go:build linux

package process

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// compileSeccomp turns the runtime-spec form of a seccomp profile (Docker's
// default, as plan.Build writes it) into a classic BPF program for
// seccomp(2). The program reads struct seccomp_data (include/uapi/linux/
// seccomp.h): nr at offset 0, arch at 4, the six 64-bit arguments from 16.
//
// Its shape:
//
//	ld [arch]; foreign ABI (i386 through int 0x80, x32) -> ERRNO(ENOSYS)
//	ld [nr]
//	for each syscall the profile names:
//	    jeq #nr, else skip the block
//	    block: its rules in the profile's order, each a run of argument
//	           tests that falls through to `ret action` or jumps to the
//	           next rule; after the last rule, `ret default`
//	ret default
//
// A block is entered only for its own syscall and always returns, so a rule
// may load arguments into the accumulator without disturbing the number
// every other block compares (the bug of the elastic/go-seccomp-bpf program
// this replaced: after a failed argument test the accumulator held the
// argument, and every later rule compared it against syscall numbers).
//
// The conditions of a rule are ANDed, except that several conditions on the
// same argument are alternatives, each a rule of its own: runc does the
// same, because libseccomp rejects two conditions on one argument.
// Syscall names this architecture does not have are skipped, as libseccomp
// skips them. Calls of another ABI get ENOSYS whatever the default action:
// a default-allow profile must not be bypassed through int 0x80 or x32
// (libseccomp kills them; ENOSYS lets a program fall back).
func compileSeccomp(s *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	if len(seccompSyscalls) == 0 {
		return nil, fmt.Errorf("seccomp: no system call table for %s", runtime.GOARCH)
	}
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: default action: %w", err)
	}
	var order []int
	blocks := map[int]*bpfBlock{}
	for i, r := range s.Syscalls {
		act, err := seccompAction(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule %d (%v): %w", i, r.Names, err)
		}
		alts, err := seccompAlternatives(r.Args)
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule %d (%v): %w", i, r.Names, err)
		}
		for _, n := range r.Names {
			nr, ok := syscallNumber(n)
			if !ok {
				continue
			}
			b := blocks[nr]
			if b == nil {
				b = &bpfBlock{}
				blocks[nr] = b
				order = append(order, nr)
			}
			for _, conds := range alts {
				if err := b.rule(conds, act); err != nil {
					return nil, fmt.Errorf("seccomp: rule %d (%s): %w", i, n, err)
				}
			}
		}
	}

	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	prog := []unix.SockFilter{
		stmt(bpfLoad, seccompArchOff),
		jump(bpfJeq, seccompAuditArch, 1, 0),
		stmt(bpfRet, enosys),
		stmt(bpfLoad, seccompNrOff),
	}
	if seccompX32 {
		// x32 shares x86_64's audit arch; its numbers carry __X32_SYSCALL_BIT.
		prog = append(prog, jump(bpfJge, 0x40000000, 0, 1), stmt(bpfRet, enosys))
	}
	for _, nr := range order {
		body, err := blocks[nr].link(def)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscall %s: %w", syscallName(nr), err)
		}
		if len(body) <= 0xff {
			prog = append(prog, jump(bpfJeq, uint32(nr), 0, uint8(len(body))))
		} else {
			// A conditional jump reaches 255 instructions; ja reaches 2^32.
			prog = append(prog, jump(bpfJeq, uint32(nr), 1, 0), stmt(bpfJa, uint32(len(body))))
		}
		prog = append(prog, body...)
	}
	prog = append(prog, stmt(bpfRet, def))
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: %d instructions, the kernel takes at most %d", len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}

//go:generate go run mkseccomp.go

// seccompSyscall is one entry of the generated table of this
// architecture's system calls (zseccomp_linux_GOARCH.go, written by
// mkseccomp.go): static data, not a map built at package init, since every
// verb of the binary pays for package init.
type seccompSyscall struct {
	name string
	nr   int
}

// syscallNumber gives the number of the system call named name on this
// architecture.
func syscallNumber(name string) (int, bool) {
	i, ok := slices.BinarySearchFunc(seccompSyscalls, name, func(e seccompSyscall, name string) int {
		return strings.Compare(e.name, name)
	})
	if !ok {
		return 0, false
	}
	return seccompSyscalls[i].nr, true
}

// syscallName gives the name of system call nr, for errors.
func syscallName(nr int) string {
	for _, e := range seccompSyscalls {
		if e.nr == nr {
			return e.name
		}
	}
	return fmt.Sprintf("#%d", nr)
}

// Classic BPF opcodes the compiler uses (include/uapi/linux/filter.h).
const (
	bpfLoad = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfAnd  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	bpfJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgt  = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	bpfJge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJa   = unix.BPF_JMP | unix.BPF_JA
	bpfRet  = unix.BPF_RET | unix.BPF_K

	seccompNrOff   = 0
	seccompArchOff = 4
	seccompArgsOff = 16
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// argWords gives the offsets of an argument's low and high 32-bit words in
// seccomp_data: the kernel stores each argument as a native-endian u64.
func argWords(index uint) (lo, hi uint32) {
	off := uint32(seccompArgsOff + 8*index)
	var probe uint16 = 1
	if *(*byte)(unsafe.Pointer(&probe)) == 1 { // little-endian
		return off, off + 4
	}
	return off + 4, off
}

// bpfBlock holds one syscall's rules. Jumps inside it target labels that
// link turns into offsets: next (-1) is the following instruction, fail
// the start of the next rule.
type bpfBlock struct {
	ins   []unix.SockFilter
	jumps []blockJump
	rules []int // index in ins where each rule starts
}

type blockJump struct {
	at     int
	jt, jf int // target instruction index; -1 means the next rule
}

const toNextRule = -1

// rule appends one rule: the tests of conds, all of which must pass, then
// `ret action`. A test that fails jumps to the next rule.
func (b *bpfBlock) rule(conds []specs.LinuxSeccompArg, action uint32) error {
	b.rules = append(b.rules, len(b.ins))
	for _, c := range conds {
		if c.Index >= 6 {
			return fmt.Errorf("argument %d: syscalls have 6 arguments", c.Index)
		}
		if err := b.cond(c); err != nil {
			return err
		}
	}
	b.ins = append(b.ins, stmt(bpfRet, action))
	return nil
}

// The targets of a jump inside one argument test.
const (
	tNext = iota // the following instruction
	tPass        // the instruction after the test
	tFail        // the start of the next rule
)

type bpfOp struct {
	code   uint16
	k      uint32
	jt, jf int
}

// cond appends the test of one 64-bit argument against its value with
// 32-bit BPF: the high words decide unless they are equal, then the low
// words do.
func (b *bpfBlock) cond(c specs.LinuxSeccompArg) error {
	lo, hi := argWords(c.Index)
	vlo, vhi := uint32(c.Value), uint32(c.Value>>32)
	ldHi, ldLo := bpfOp{code: bpfLoad, k: hi}, bpfOp{code: bpfLoad, k: lo}
	var ops []bpfOp
	switch c.Op {
	case specs.OpEqualTo:
		ops = []bpfOp{ldHi, {bpfJeq, vhi, tNext, tFail}, ldLo, {bpfJeq, vlo, tPass, tFail}}
	case specs.OpNotEqual:
		ops = []bpfOp{ldHi, {bpfJeq, vhi, tNext, tPass}, ldLo, {bpfJeq, vlo, tFail, tPass}}
	case specs.OpMaskedEqual:
		// (arg & value) == valueTwo.
		mlo, mhi := uint32(c.ValueTwo), uint32(c.ValueTwo>>32)
		ops = []bpfOp{ldHi, {bpfAnd, vhi, 0, 0}, {bpfJeq, mhi, tNext, tFail}, ldLo, {bpfAnd, vlo, 0, 0}, {bpfJeq, mlo, tPass, tFail}}
	case specs.OpGreaterThan:
		ops = []bpfOp{ldHi, {bpfJgt, vhi, tPass, tNext}, {bpfJeq, vhi, tNext, tFail}, ldLo, {bpfJgt, vlo, tPass, tFail}}
	case specs.OpGreaterEqual:
		ops = []bpfOp{ldHi, {bpfJgt, vhi, tPass, tNext}, {bpfJeq, vhi, tNext, tFail}, ldLo, {bpfJge, vlo, tPass, tFail}}
	case specs.OpLessThan:
		ops = []bpfOp{ldHi, {bpfJge, vhi, tNext, tPass}, {bpfJeq, vhi, tNext, tFail}, ldLo, {bpfJge, vlo, tFail, tPass}}
	case specs.OpLessEqual:
		ops = []bpfOp{ldHi, {bpfJge, vhi, tNext, tPass}, {bpfJeq, vhi, tNext, tFail}, ldLo, {bpfJgt, vlo, tFail, tPass}}
	default:
		return fmt.Errorf("argument %d: unknown operator %s", c.Index, c.Op)
	}
	start := len(b.ins)
	target := func(i, t int) int {
		switch t {
		case tNext:
			return start + i + 1
		case tPass:
			return start + len(ops)
		}
		return toNextRule
	}
	for i, o := range ops {
		b.ins = append(b.ins, stmt(o.code, o.k))
		if o.code&0x07 == unix.BPF_JMP {
			b.jumps = append(b.jumps, blockJump{at: start + i, jt: target(i, o.jt), jf: target(i, o.jf)})
		}
	}
	return nil
}

// link resolves the block's jumps and ends it with the default action, the
// answer when no rule of this syscall matches.
func (b *bpfBlock) link(def uint32) ([]unix.SockFilter, error) {
	out := append(append([]unix.SockFilter(nil), b.ins...), stmt(bpfRet, def))
	nextRule := func(at int) int {
		for _, r := range b.rules {
			if r > at {
				return r
			}
		}
		return len(b.ins) // the final ret default
	}
	for _, j := range b.jumps {
		for _, p := range []struct {
			to  int
			set *uint8
		}{{j.jt, &out[j.at].Jt}, {j.jf, &out[j.at].Jf}} {
			to := p.to
			if to == toNextRule {
				to = nextRule(j.at)
			}
			off := to - j.at - 1
			if off < 0 || off > 0xff {
				return nil, fmt.Errorf("jump of %d instructions", off)
			}
			*p.set = uint8(off)
		}
	}
	return out, nil
}

// seccompAlternatives splits a rule's conditions into the rules it stands
// for: one rule with every condition when each argument is tested once,
// else one rule per condition (runc's reading; see compileSeccomp). A rule
// without conditions is one unconditional rule.
func seccompAlternatives(args []specs.LinuxSeccompArg) ([][]specs.LinuxSeccompArg, error) {
	seen := map[uint]bool{}
	for _, a := range args {
		if seen[a.Index] {
			alts := make([][]specs.LinuxSeccompArg, len(args))
			for i, a := range args {
				alts[i] = []specs.LinuxSeccompArg{a}
			}
			return alts, nil
		}
		seen[a.Index] = true
	}
	return [][]specs.LinuxSeccompArg{args}, nil
}

// seccompAction gives the SECCOMP_RET_* value of a runtime-spec action.
func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		data = uint32(*errnoRet) & unix.SECCOMP_RET_DATA
	}
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | data, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | data, nil
	}
	return 0, fmt.Errorf("unsupported action %s", a)
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
