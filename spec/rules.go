package spec

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// rule is a custom validate tag: check says what is wrong with a value ("" if
// nothing) and what was expected; expect is what a missing value should have
// been.
type rule struct {
	check  func(s string) (what, expected string)
	expect string
}

// rules are the custom validate tags of types.go. Each is one small function
// so that the message says exactly why a value is refused.
var rules = map[string]rule{
	"dnslabel":   {checkDNSLabel, expectDNSLabel},
	"labelkey":   {checkLabelKey, expectLabelKey},
	"labelvalue": {checkLabelValue, expectLabelValue},
	"binary":     {checkBinary, expectBinary},
	"abspath":    {checkAbsPath, expectAbsPath},
	"filemode":   {checkFileMode, expectFileMode},
	"envvar":     {checkEnvVar, expectEnvVar},
	"uidgid":     {checkUIDGID, expectUIDGID},
	"rlimit":     {checkRlimit, expectRlimit},
	"signal":     {checkSignal, expectSignal},
	"duration":   {checkDuration, expectDuration},
	"duration0":  {checkDuration0, expectDuration0},
	"httppath":   {checkHTTPPath, expectHTTPPath},
	"netnsname":  {checkNetnsName, expectNetnsName},
	"ifname":     {checkIfname, expectIfname},
	"cidr_addr":  {checkCIDRAddr, expectCIDRAddr},
	"routedst":   {checkRouteDst, expectRouteDst},
	"memory":     {checkMemory, expectMemory},
	"memoryswap": {checkMemorySwap, expectMemorySwap},
	"size":       {checkSize, expectSize},
	"cpu":        {checkCPU, expectCPU},
	"cpulist":    {checkCPUList, expectCPUList},
	"seccomp":    {checkSeccomp, expectSeccomp},
	"capability": {checkCapability, expectCapability},
	"capdrop":    {checkCapDrop, expectCapDrop},
	"sysctl":     {checkSysctl, expectSysctl},
	"imageref":   {checkImageRef, expectImageRef},
	"hostname":   {checkHostname, expectHostname},
}

const (
	expectHostname   = "letters, digits and '-' in dot-separated labels of at most 63 characters, each starting and ending with a letter or digit"
	expectDNSLabel   = "a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
	expectLabelKey   = "an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	expectLabelValue = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, or nothing"
	expectBinary     = "an absolute clean path such as /bin/ls, or a command name looked up on PATH such as ls"
	expectAbsPath    = "an absolute path such as /etc/app.conf"
	expectFileMode   = "an octal mode such as \"0644\" or \"1777\""
	expectEnvVar     = "NAME=value"
	expectUIDGID     = "uid or uid:gid, numbers such as 1000:1000"
	expectRlimit     = "a setrlimit(2) resource such as RLIMIT_NOFILE"
	expectSignal     = "a signal such as SIGTERM, TERM or 15"
	expectDuration   = "a duration above 0 such as 10s or 1m30s"
	expectDuration0  = "a duration such as 1s, 500ms or 0s"
	expectHTTPPath   = "a request path such as /health or /status?full=1: '/' then at most 1023 printable ASCII characters without spaces"
	expectNetnsName  = "a namespace name of letters, digits, '_', '-' and '.', at most 64 bytes"
	expectIfname     = "an interface name of 1-15 bytes without '/', ':' or whitespace"
	expectCIDRAddr   = "an address with its prefix length, such as 172.16.0.2/24 or fd00::2/64"
	expectRouteDst   = "\"default\" or a network prefix such as 10.0.0.0/8 or fd00:1::/64"
	expectMemory     = "bytes, or a number with K, M, G or T (powers of 1024) such as 50M, at least 4M"
	expectMemorySwap = "-1 (unlimited swap), or memory plus swap written as memory is, such as 100M"
	expectSize       = "bytes, or a number with K, M, G or T (powers of 1024) such as 64M, above 0"
	expectCPU        = "cores above 0 such as 1 or 0.5, or millicores such as 250m"
	expectCPUList    = "CPU or node numbers and ranges such as 0-1,3"
	expectSeccomp    = "default, unconfined, or the absolute path of a profile in Docker's JSON format"
	expectCapability = "a capability such as NET_ADMIN or CAP_NET_ADMIN"
	expectCapDrop    = "ALL or a capability such as NET_RAW or CAP_NET_RAW"
)

func checkDNSLabel(s string) (string, string) {
	if !isDNSLabel(s) {
		return fmt.Sprintf("%q is not a DNS label", s), expectDNSLabel
	}
	return "", ""
}

// checkHostname is RFC 1123's host name, as the schema has it: dot-separated
// labels of at most 63 letters, digits and '-', each starting and ending
// with a letter or digit. It replaces the validator's hostname_rfc1123,
// whose regular expression, compiled on first use, cost every validate
// 0.07 ms (and let a label end with '-').
func checkHostname(s string) (string, string) {
	for _, label := range strings.Split(s, ".") {
		ok := len(label) >= 1 && len(label) <= 63 && isAlnum(label[0]) && isAlnum(label[len(label)-1])
		for i := 1; ok && i < len(label); i++ {
			ok = isAlnum(label[i]) || label[i] == '-'
		}
		if !ok {
			return fmt.Sprintf("%q is not a hostname", s), expectHostname
		}
	}
	return "", ""
}

// CheckName says why name cannot be the name of a container, network or
// link, or returns nil: it is metadata.name's rule (a DNS label), for the
// names that reach hutch from elsewhere than a validated manifest (the
// command line, `delete -f`, the state store, marks on the host). Every such
// name becomes a path under the state root (containers/NAME, locks/NAME.lock),
// so one like "../../tmp/x" must never get that far.
func CheckName(name string) error {
	if !isDNSLabel(name) {
		return fmt.Errorf("%q is not a container name (%s)", name, expectDNSLabel)
	}
	return nil
}

// isDNSLabel is RFC 1123's label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func checkLabelKey(s string) (string, string) {
	prefix, name, hasPrefix := strings.Cut(s, "/")
	if !hasPrefix {
		prefix, name = "", s
	}
	ok := len(name) > 0 && len(name) <= 63 && isAlnum(name[0]) && isAlnum(name[len(name)-1])
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isAlnum(c) || c == '-' || c == '_' || c == '.'
	}
	if hasPrefix {
		if len(prefix) == 0 || len(prefix) > 253 {
			ok = false
		}
		for _, l := range strings.Split(prefix, ".") {
			ok = ok && isDNSLabel(l)
		}
	}
	if !ok {
		return fmt.Sprintf("%q is not a label key", s), expectLabelKey
	}
	return "", ""
}

// ValidLabelKey reports whether s is a key metadata.labels accepts, for
// the selectors of `hutch get -l`.
func ValidLabelKey(s string) bool {
	what, _ := checkLabelKey(s)
	return what == ""
}

// checkLabelValue follows Kubernetes' label values: what `hutch get -l`
// can select ("key=value,key2!=value2") and a terminal shows as it is.
func checkLabelValue(s string) (string, string) {
	if len(s) > 63 {
		return fmt.Sprintf("%q is %d characters", s, len(s)), "at most 63"
	}
	ok := s == "" || isAlnum(s[0]) && isAlnum(s[len(s)-1])
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Sprintf("%q is not a label value", s), expectLabelValue
	}
	return "", ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func checkBinary(s string) (string, string) {
	if strings.Contains(s, "/") {
		return checkAbsPath(s)
	}
	if s == "" || s == "." || s == ".." || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == 0 }) {
		return fmt.Sprintf("%q is not a command name", s), expectBinary
	}
	return "", ""
}

// checkAbsPath wants an absolute, clean path. A clean absolute path never
// holds "..", so it cannot climb out of the rootfs it is resolved in.
func checkAbsPath(s string) (string, string) {
	switch {
	case s == "":
		return "empty path", expectAbsPath
	case strings.ContainsRune(s, 0):
		return fmt.Sprintf("%q holds a NUL byte", s), expectAbsPath
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("%q is not absolute", s), "a path starting with /, such as /" + path.Clean(s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Sprintf("%q contains ..", s), "a path without .. components"
		}
	}
	if c := path.Clean(s); c != s {
		return fmt.Sprintf("%q is not clean", s), strconv.Quote(c)
	}
	return "", ""
}

func checkFileMode(s string) (string, string) {
	if _, err := ParseMode(s); err != nil {
		return fmt.Sprintf("%q is not a file mode", s), expectFileMode
	}
	return "", ""
}

func checkEnvVar(s string) (string, string) {
	name, _, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return fmt.Sprintf("%q has no '='", s), expectEnvVar
	case name == "":
		return fmt.Sprintf("%q has no name", s), expectEnvVar
	case strings.ContainsRune(s, 0):
		return fmt.Sprintf("%q holds a NUL byte", s), expectEnvVar
	case strings.ContainsFunc(name, unicode.IsSpace):
		return fmt.Sprintf("%q has whitespace in its name", s), expectEnvVar
	}
	return "", ""
}

func checkUIDGID(s string) (string, string) {
	u, g, hasG := strings.Cut(s, ":")
	_, err := strconv.ParseUint(u, 10, 32)
	if err == nil && hasG {
		_, err = strconv.ParseUint(g, 10, 32)
	}
	if err != nil {
		return fmt.Sprintf("%q is not a numeric user", s), expectUIDGID
	}
	return "", ""
}

// RlimitNames are the resources of setrlimit(2), <asm-generic/resource.h>.
var RlimitNames = []string{
	"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
	"RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
	"RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
	"RLIMIT_RTPRIO", "RLIMIT_RTTIME",
}

// RlimitName is the kernel's name of an rlimit type written in any case,
// with or without RLIMIT_ ("nofile" gives RLIMIT_NOFILE), or "" if unknown.
func RlimitName(s string) string {
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "RLIMIT_") {
		n = "RLIMIT_" + n
	}
	for _, r := range RlimitNames {
		if r == n {
			return r
		}
	}
	return ""
}

func checkRlimit(s string) (string, string) {
	if RlimitName(s) == "" {
		return fmt.Sprintf("unknown rlimit %q", s), closest(strings.ToUpper(s), RlimitNames, expectRlimit)
	}
	return "", ""
}

// SignalNames are the names of the kernel's signals 1-31 (signal(7)).
var SignalNames = []string{
	"SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
	"SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM",
	"SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
	"SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM",
	"SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
}

func checkSignal(s string) (string, string) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return fmt.Sprintf("signal %d is out of range", n), "1-64"
		}
		return "", ""
	}
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	for _, sig := range SignalNames {
		if sig == n {
			return "", ""
		}
	}
	return fmt.Sprintf("unknown signal %q", s), closest(n, SignalNames, expectSignal)
}

func checkDuration(s string) (string, string) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Sprintf("%q is not a duration above 0", s), expectDuration
	}
	return "", ""
}

func checkDuration0(s string) (string, string) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Sprintf("%q is not a duration of 0 or more", s), expectDuration0
	}
	return "", ""
}

// checkHTTPPath wants what can go in a request line as it is: no space
// or control character would split or end it.
func checkHTTPPath(s string) (string, string) {
	ok := strings.HasPrefix(s, "/") && len(s) <= 1024
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] > ' ' && s[i] <= '~'
	}
	if !ok {
		return fmt.Sprintf("%q is not a request path", s), expectHTTPPath
	}
	return "", ""
}

// checkNetnsName wants a name `ip netns` can show: a file name in
// /run/netns, kept to a portable set of characters.
func checkNetnsName(s string) (string, string) {
	ok := len(s) > 0 && len(s) <= 64 && s != "." && s != ".."
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		return fmt.Sprintf("%q is not a namespace name", s), expectNetnsName
	}
	return "", ""
}

// IFNAMSIZ is the kernel's buffer for an interface name, NUL included
// (<linux/if.h>): names are at most 15 bytes.
const IFNAMSIZ = 16

// checkIfname follows the kernel's dev_valid_name() (net/core/dev.c): at
// most IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or whitespace.
func checkIfname(s string) (string, string) {
	switch {
	case s == "":
		return "empty interface name", expectIfname
	case len(s) >= IFNAMSIZ:
		return fmt.Sprintf("%q is %d bytes", s, len(s)), "at most 15 bytes, the kernel's IFNAMSIZ-1"
	case s == "." || s == "..":
		return fmt.Sprintf("%q is not an interface name", s), expectIfname
	case strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) }):
		return fmt.Sprintf("%q holds '/', ':' or whitespace", s), expectIfname
	}
	return "", ""
}

func checkCIDRAddr(s string) (string, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			return fmt.Sprintf("%q has no prefix length", s), fmt.Sprintf("an address with its prefix length, such as %s/24", s)
		}
		return fmt.Sprintf("%q is not an address with a prefix length", s), expectCIDRAddr
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return fmt.Sprintf("%q is an IPv4-mapped IPv6 address", s), "a plain IPv4 or IPv6 address"
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return fmt.Sprintf("%q is not a unicast address", s), "a unicast address for an interface"
	case a.Is4() && p.Bits() < 31 && a == p.Masked().Addr():
		return fmt.Sprintf("%q is the network address of %s", s, p.Masked()), "a host address inside the subnet"
	case a.Is4() && p.Bits() < 31 && a == lastAddr(p):
		return fmt.Sprintf("%q is the broadcast address of %s", s, p.Masked()), "a host address inside the subnet"
	}
	return "", ""
}

// lastAddr is the highest address of a prefix (IPv4's broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ParseRouteDst reads a route destination: "default" is 0.0.0.0/0 or ::/0
// depending on the family of via (invalid Prefix when not yet known).
func ParseRouteDst(s string) (netip.Prefix, bool, error) {
	if s == "default" {
		return netip.Prefix{}, true, nil
	}
	p, err := netip.ParsePrefix(s)
	return p, false, err
}

func checkRouteDst(s string) (string, string) {
	p, isDefault, err := ParseRouteDst(s)
	if isDefault {
		return "", ""
	}
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return fmt.Sprintf("%q has no prefix length", s), fmt.Sprintf("a network prefix such as %s", netip.PrefixFrom(a, a.BitLen()))
		}
		return fmt.Sprintf("%q is not a network prefix", s), expectRouteDst
	}
	if p.Masked() != p {
		// The kernel answers EINVAL ("Invalid prefix for given prefix
		// length") to RTM_NEWROUTE with host bits set.
		return fmt.Sprintf("%q has host bits set", s), strconv.Quote(p.Masked().String())
	}
	return "", ""
}

func checkMemory(s string) (string, string) {
	n, err := ParseMemory(s)
	if err != nil {
		return fmt.Sprintf("%q is not a memory quantity", s), expectMemory
	}
	if n != 0 && n < MinMemory {
		return fmt.Sprintf("%s is %d bytes, below the minimum", s, n), "at least 4M (4194304 bytes), or 0 for no limit"
	}
	return "", ""
}

func checkMemorySwap(s string) (string, string) {
	if s == "-1" {
		return "", ""
	}
	if _, err := ParseMemory(s); err != nil {
		return fmt.Sprintf("%q is not a memory quantity", s), expectMemorySwap
	}
	return "", ""
}

func checkSize(s string) (string, string) {
	n, err := ParseMemory(s)
	if err != nil || n <= 0 {
		return fmt.Sprintf("%q is not a size above 0", s), expectSize
	}
	return "", ""
}

func checkCPU(s string) (string, string) {
	if _, err := ParseCPU(s); err != nil {
		return fmt.Sprintf("%q is not a CPU quantity above 0", s), expectCPU
	}
	return "", ""
}

// maxCPUs bounds cpuset numbers: the kernel's NR_CPUS is at most 8192.
const maxCPUs = 8192

func checkCPUList(s string) (string, string) {
	if err := parseCPUList(s); err != nil {
		return fmt.Sprintf("%q is not a CPU list: %v", s, err), expectCPUList
	}
	return "", ""
}

// parseCPUList checks the list format of cpuset.cpus and cpuset.mems
// (Documentation/admin-guide/cgroup-v1/cpusets.rst): "0-3,5,7-8".
func parseCPUList(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a >= maxCPUs {
			return fmt.Errorf("%q is not a number 0-%d", lo, maxCPUs-1)
		}
		if isRange {
			b, err := strconv.Atoi(hi)
			if err != nil || b < 0 || b >= maxCPUs {
				return fmt.Errorf("%q is not a number 0-%d", hi, maxCPUs-1)
			}
			if b < a {
				return fmt.Errorf("range %s runs backwards", part)
			}
		}
	}
	return nil
}

func checkSeccomp(s string) (string, string) {
	if s == "default" || s == "unconfined" {
		return "", ""
	}
	if strings.HasPrefix(s, "/") {
		return checkAbsPath(s)
	}
	return fmt.Sprintf("unknown seccomp profile %q", s), closest(s, []string{"default", "unconfined"}, expectSeccomp)
}

// CapabilityNames are the kernel's capabilities, numbered as in
// <linux/capability.h>, up to CAP_CHECKPOINT_RESTORE (40, Linux 5.9).
var CapabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapabilityName is the kernel's name of a capability written in any case,
// with or without CAP_ ("net_admin" gives CAP_NET_ADMIN), or "" if unknown.
func CapabilityName(s string) string {
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for _, c := range CapabilityNames {
		if c == n {
			return c
		}
	}
	return ""
}

func checkCapability(s string) (string, string) {
	if strings.EqualFold(s, "ALL") {
		return `"ALL" can be dropped, not added`, "the capabilities to add, one by one, such as NET_ADMIN"
	}
	if CapabilityName(s) == "" {
		n := strings.ToUpper(s)
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		return fmt.Sprintf("unknown capability %q", s), closest(n, CapabilityNames, expectCapability)
	}
	return "", ""
}

func checkCapDrop(s string) (string, string) {
	if strings.EqualFold(s, "ALL") {
		return "", ""
	}
	if what, _ := checkCapability(s); what != "" {
		n := strings.ToUpper(s)
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		return what, closest(n, CapabilityNames, expectCapDrop)
	}
	return "", ""
}

// closest is `did you mean "X"?` for the valid value nearest s when it is a
// likely misspelling, else the general expectation.
func closest(s string, valid []string, expect string) string {
	if hint := suggest(s, valid); strings.HasPrefix(hint, " (did you mean") {
		return expect + "; " + strings.TrimSuffix(strings.TrimPrefix(hint, " ("), ")")
	}
	return expect
}
