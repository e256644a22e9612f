//go:build linux && !386 && !amd64 && !arm && !arm64

package process

// mkseccomp.go has no system call table for this architecture:
// compileSeccomp refuses every profile rather than guess numbers.
const (
	seccompAuditArch = 0
	seccompX32       = false
)

var seccompSyscalls []seccompSyscall
