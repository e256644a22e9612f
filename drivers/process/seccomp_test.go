//go:build linux

package process

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// call is one system call as the filter sees it: struct seccomp_data.
type call struct {
	arch uint32
	nr   string // a name of this architecture, or "#N" for a raw number
	args [6]uint64
}

// packet lays out seccomp_data for golang.org/x/net/bpf's VM. The kernel's
// loads are native-endian; the VM's are big-endian, so each 32-bit word is
// stored big-endian at the offset the native layout gives it.
func (c call) packet(t *testing.T, info *arch.Info) []byte {
	t.Helper()
	nr := 0
	if _, err := fmt.Sscanf(c.nr, "#%d", &nr); err != nil {
		var ok bool
		if nr, ok = info.SyscallNames[c.nr]; !ok {
			t.Fatalf("no syscall %s on %s", c.nr, info.Name)
		}
	}
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[seccompNrOff:], uint32(nr))
	binary.BigEndian.PutUint32(b[seccompArchOff:], c.arch)
	for i, a := range c.args {
		lo, hi := argWords(uint(i))
		binary.BigEndian.PutUint32(b[lo:], uint32(a))
		binary.BigEndian.PutUint32(b[hi:], uint32(a>>32))
	}
	return b
}

// runFilter runs a compiled program on one call in a BPF interpreter and
// returns the SECCOMP_RET_* value it gives.
func runFilter(t *testing.T, prog []unix.SockFilter, c call) uint32 {
	t.Helper()
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	if c.arch == 0 {
		c.arch = uint32(info.ID)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, p := range prog {
		raw[i] = bpf.RawInstruction{Op: p.Code, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("the program holds an instruction x/net/bpf cannot read")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatalf("the VM refuses the program: %v", err)
	}
	got, err := vm.Run(c.packet(t, info))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(got)
}

func dockerProfile(t *testing.T) *specs.LinuxSeccomp {
	t.Helper()
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: dockerCaps}}}
	def, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

const (
	allow  = unix.SECCOMP_RET_ALLOW
	eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// Docker's default profile, compiled and run: each answer is the one
// Docker's profile gives under libseccomp.
func TestSeccompDockerProfileDecisions(t *testing.T) {
	prog, err := compileSeccomp(dockerProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	const (
		cloneNewUser = unix.CLONE_NEWUSER
		cloneThread  = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	)
	for _, tc := range []struct {
		name string
		call call
		want uint32
	}{
		{"read", call{nr: "read"}, allow},
		{"socket AF_UNIX", call{nr: "socket", args: [6]uint64{unix.AF_UNIX}}, allow},
		{"socket AF_INET", call{nr: "socket", args: [6]uint64{unix.AF_INET}}, allow},
		{"socket AF_INET6", call{nr: "socket", args: [6]uint64{unix.AF_INET6, unix.SOCK_DGRAM}}, allow},
		{"socket AF_NETLINK", call{nr: "socket", args: [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW}}, allow},
		{"socket AF_PACKET", call{nr: "socket", args: [6]uint64{unix.AF_PACKET, unix.SOCK_RAW}}, allow},
		{"socket AF_VSOCK", call{nr: "socket", args: [6]uint64{unix.AF_VSOCK}}, eperm},
		{"socket AF_INET6 with high bits", call{nr: "socket", args: [6]uint64{1<<32 | unix.AF_INET6}}, eperm},
		{"personality 0", call{nr: "personality", args: [6]uint64{0}}, allow},
		{"personality 8", call{nr: "personality", args: [6]uint64{8}}, allow},
		{"personality 0xffffffff", call{nr: "personality", args: [6]uint64{0xffffffff}}, allow},
		{"personality ADDR_NO_RANDOMIZE", call{nr: "personality", args: [6]uint64{0x0040000}}, eperm},
		{"clone of a thread", call{nr: "clone", args: [6]uint64{cloneThread}}, allow},
		{"clone of a process", call{nr: "clone", args: [6]uint64{uint64(unix.SIGCHLD)}}, allow},
		{"clone with CLONE_NEWUSER", call{nr: "clone", args: [6]uint64{cloneNewUser | uint64(unix.SIGCHLD)}}, eperm},
		{"clone with CLONE_NEWNET", call{nr: "clone", args: [6]uint64{unix.CLONE_NEWNET}}, eperm},
		{"clone3", call{nr: "clone3"}, enosys},
		{"unshare", call{nr: "unshare", args: [6]uint64{unix.CLONE_NEWUSER}}, eperm},
		{"mount", call{nr: "mount"}, eperm},
		{"keyctl", call{nr: "keyctl"}, eperm},
		{"kexec_load", call{nr: "kexec_load"}, eperm},
		{"ptrace", call{nr: "ptrace"}, allow},
		{"a number no syscall has", call{nr: "#999"}, eperm},
		{"x32 read", call{nr: fmt.Sprintf("#%d", 0x40000000)}, enosys},
		{"i386 through int 0x80", call{arch: unix.AUDIT_ARCH_I386, nr: "#3"}, enosys},
	} {
		if runtimeArch() != "x86_64" && (strings.HasPrefix(tc.name, "x32") || strings.HasPrefix(tc.name, "i386")) {
			continue
		}
		if got := runFilter(t, prog, tc.call); got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// Custom profiles: every operator on 64-bit values, two conditional rules on
// one syscall, conditions ANDed across arguments and ORed on one argument,
// rule order, and a default-allow profile.
func TestSeccompCustomProfiles(t *testing.T) {
	arg := func(i uint, op specs.LinuxSeccompOperator, v, v2 uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Op: op, Value: v, ValueTwo: v2}
	}
	deny := func(names string, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: strings.Split(names, ","), Action: specs.ActErrno, Args: args}
	}
	allowRule := func(names string, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: strings.Split(names, ","), Action: specs.ActAllow, Args: args}
	}
	big := uint64(0x1_0000_0005) // high word 1, low word 5
	for _, tc := range []struct {
		name  string
		def   specs.LinuxSeccompAction
		rules []specs.LinuxSyscall
		calls map[string]call
		want  map[string]uint32
	}{{
		name:  "two conditional rules on ioctl",
		def:   specs.ActAllow,
		rules: []specs.LinuxSyscall{deny("ioctl", arg(1, specs.OpEqualTo, unix.TIOCSTI, 0)), deny("ioctl", arg(1, specs.OpEqualTo, unix.TIOCLINUX, 0))},
		calls: map[string]call{
			"TIOCSTI":   {nr: "ioctl", args: [6]uint64{0, unix.TIOCSTI}},
			"TIOCLINUX": {nr: "ioctl", args: [6]uint64{0, unix.TIOCLINUX}},
			"TCGETS":    {nr: "ioctl", args: [6]uint64{0, unix.TCGETS}},
			"read":      {nr: "read"},
		},
		want: map[string]uint32{"TIOCSTI": eperm, "TIOCLINUX": eperm, "TCGETS": allow, "read": allow},
	}, {
		name:  "conditions on two arguments are ANDed",
		def:   specs.ActAllow,
		rules: []specs.LinuxSyscall{deny("kill", arg(0, specs.OpEqualTo, 1, 0), arg(1, specs.OpEqualTo, 9, 0))},
		calls: map[string]call{"1,9": {nr: "kill", args: [6]uint64{1, 9}}, "1,15": {nr: "kill", args: [6]uint64{1, 15}}, "2,9": {nr: "kill", args: [6]uint64{2, 9}}},
		want:  map[string]uint32{"1,9": eperm, "1,15": allow, "2,9": allow},
	}, {
		name:  "conditions on one argument are alternatives",
		def:   specs.ActErrno,
		rules: []specs.LinuxSyscall{allowRule("kill", arg(1, specs.OpEqualTo, 9, 0), arg(1, specs.OpEqualTo, 15, 0))},
		calls: map[string]call{"9": {nr: "kill", args: [6]uint64{0, 9}}, "15": {nr: "kill", args: [6]uint64{0, 15}}, "2": {nr: "kill", args: [6]uint64{0, 2}}},
		want:  map[string]uint32{"9": allow, "15": allow, "2": eperm},
	}, {
		name:  "the first matching rule decides",
		def:   specs.ActErrno,
		rules: []specs.LinuxSyscall{deny("kill", arg(1, specs.OpEqualTo, 9, 0)), allowRule("kill")},
		calls: map[string]call{"9": {nr: "kill", args: [6]uint64{0, 9}}, "15": {nr: "kill", args: [6]uint64{0, 15}}},
		want:  map[string]uint32{"9": eperm, "15": allow},
	}, {
		name: "64-bit comparisons",
		def:  specs.ActErrno,
		rules: []specs.LinuxSyscall{
			allowRule("read", arg(0, specs.OpEqualTo, big, 0)),
			allowRule("write", arg(0, specs.OpNotEqual, big, 0)),
			allowRule("lseek", arg(0, specs.OpGreaterThan, big, 0)),
			allowRule("pread64", arg(0, specs.OpGreaterEqual, big, 0)),
			allowRule("pwrite64", arg(0, specs.OpLessThan, big, 0)),
			allowRule("readv", arg(0, specs.OpLessEqual, big, 0)),
		},
		calls: map[string]call{
			"read big": {nr: "read", args: [6]uint64{big}}, "read low only": {nr: "read", args: [6]uint64{5}},
			"write big": {nr: "write", args: [6]uint64{big}}, "write low only": {nr: "write", args: [6]uint64{5}},
			"lseek big": {nr: "lseek", args: [6]uint64{big}}, "lseek big+1": {nr: "lseek", args: [6]uint64{big + 1}}, "lseek high word 2, low 0": {nr: "lseek", args: [6]uint64{2 << 32}}, "lseek high word 0, low max": {nr: "lseek", args: [6]uint64{0xffffffff}},
			"pread64 big": {nr: "pread64", args: [6]uint64{big}}, "pread64 big-1": {nr: "pread64", args: [6]uint64{big - 1}},
			"pwrite64 big": {nr: "pwrite64", args: [6]uint64{big}}, "pwrite64 low max": {nr: "pwrite64", args: [6]uint64{0xffffffff}}, "pwrite64 high 1 low 6": {nr: "pwrite64", args: [6]uint64{big + 1}},
			"readv big": {nr: "readv", args: [6]uint64{big}}, "readv big+1": {nr: "readv", args: [6]uint64{big + 1}},
		},
		want: map[string]uint32{
			"read big": allow, "read low only": eperm,
			"write big": eperm, "write low only": allow,
			"lseek big": eperm, "lseek big+1": allow, "lseek high word 2, low 0": allow, "lseek high word 0, low max": eperm,
			"pread64 big": allow, "pread64 big-1": eperm,
			"pwrite64 big": eperm, "pwrite64 low max": allow, "pwrite64 high 1 low 6": eperm,
			"readv big": allow, "readv big+1": eperm,
		},
	}, {
		name:  "masked equal",
		def:   specs.ActErrno,
		rules: []specs.LinuxSyscall{allowRule("writev", arg(0, specs.OpMaskedEqual, 0xff_0000_00ff, 0x01_0000_0005))},
		calls: map[string]call{"match": {nr: "writev", args: [6]uint64{0x01_1234_5605}}, "high differs": {nr: "writev", args: [6]uint64{0x02_0000_0005}}, "low differs": {nr: "writev", args: [6]uint64{0x01_0000_0006}}},
		want:  map[string]uint32{"match": allow, "high differs": eperm, "low differs": eperm},
	}, {
		name:  "errnoRet, kill and trap",
		def:   specs.ActAllow,
		rules: []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: ptrUint(uint(unix.EACCES))}, {Names: []string{"reboot"}, Action: specs.ActKillProcess}, {Names: []string{"swapon"}, Action: specs.ActTrap}},
		calls: map[string]call{"mount": {nr: "mount"}, "reboot": {nr: "reboot"}, "swapon": {nr: "swapon"}, "i386 mount": {arch: unix.AUDIT_ARCH_I386, nr: "#21"}},
		want:  map[string]uint32{"mount": unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES), "reboot": unix.SECCOMP_RET_KILL_PROCESS, "swapon": unix.SECCOMP_RET_TRAP, "i386 mount": enosys},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := compileSeccomp(&specs.LinuxSeccomp{DefaultAction: tc.def, Syscalls: tc.rules})
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range tc.calls {
				if c.arch != 0 && runtimeArch() != "x86_64" {
					continue
				}
				if got := runFilter(t, prog, c); got != tc.want[name] {
					t.Errorf("%s: %#x, want %#x", name, got, tc.want[name])
				}
			}
		})
	}
}

func TestSeccompCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    specs.LinuxSeccomp
		want string
	}{
		{"unknown operator", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_NONE"}}}}}, "unknown operator"},
		{"argument 6", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, "6 arguments"},
		{"notify", specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, "unsupported action"},
	} {
		if _, err := compileSeccomp(&tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Names this architecture does not have are skipped.
	prog, err := compileSeccomp(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"no_such_syscall"}, Action: specs.ActErrno}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := runFilter(t, prog, call{nr: "read"}); got != allow {
		t.Errorf("a profile of unknown names: read gets %#x", got)
	}
}

// A syscall with more rules than a conditional jump can skip still compiles
// and decides right.
func TestSeccompLongBlock(t *testing.T) {
	var rules []specs.LinuxSyscall
	for i := range 100 {
		rules = append(rules, specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: uint64(1000 + i)}}})
	}
	rules = append(rules, specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow})
	prog, err := compileSeccomp(&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules})
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[call]uint32{
		{nr: "kill", args: [6]uint64{0, 1099}}: allow,
		{nr: "kill", args: [6]uint64{0, 1100}}: eperm,
		{nr: "read"}:                           allow,
		{nr: "write"}:                          eperm,
	} {
		if got := runFilter(t, prog, c); got != want {
			t.Errorf("%s%v: %#x, want %#x", c.nr, c.args[:2], got, want)
		}
	}
}

func ptrUint(v uint) *uint { return &v }

func runtimeArch() string {
	info, err := arch.GetInfo("")
	if err != nil {
		return ""
	}
	return info.Name
}
