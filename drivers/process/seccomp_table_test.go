//go:build linux

package process

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
)

// TestSeccompTable checks the generated table (zseccomp_linux_GOARCH.go)
// against the library it was generated from, so that `go generate` after
// an upgrade is not forgotten, and against the kernel's own numbers in
// linux-libc-dev's unistd header, which building the C code needs anyway.
func TestSeccompTable(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	if seccompAuditArch != uint32(info.ID) {
		t.Errorf("seccompAuditArch = %#x, the library's %s is %#x", seccompAuditArch, info.Name, uint32(info.ID))
	}
	if want := info == arch.X86_64; seccompX32 != want {
		t.Errorf("seccompX32 = %v, want %v", seccompX32, want)
	}
	for i, e := range seccompSyscalls {
		if i > 0 && seccompSyscalls[i-1].name >= e.name {
			t.Errorf("table not sorted by name: %q before %q", seccompSyscalls[i-1].name, e.name)
		}
		if nr, ok := info.SyscallNames[e.name]; !ok || nr != e.nr {
			t.Errorf("%s: table %d, library %d (known: %v); run go generate ./drivers/process", e.name, e.nr, nr, ok)
		}
	}
	for name, nr := range info.SyscallNames {
		if got, ok := syscallNumber(name); !ok || got != nr {
			t.Errorf("syscallNumber(%q) = %d, %v; the library has %d", name, got, ok, nr)
		}
	}
	if _, ok := syscallNumber("no_such_call"); ok {
		t.Error("syscallNumber found no_such_call")
	}

	headers := map[string]string{"amd64": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"}
	h, ok := headers[runtime.GOARCH]
	if !ok {
		t.Logf("no unistd header to compare on %s", runtime.GOARCH)
		return
	}
	f, err := os.Open(h)
	if err != nil {
		t.Fatalf("%v (linux-libc-dev, which building drivers/process's C code needs)", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] != "#define" || !strings.HasPrefix(fields[1], "__NR_") {
			continue
		}
		want, err := strconv.Atoi(fields[2])
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(fields[1], "__NR_")
		if got, ok := syscallNumber(name); !ok || got != want {
			t.Errorf("%s: table %d (known: %v), %s says %d", name, got, ok, h, want)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 300 {
		t.Fatalf("%s: only %d system calls read", h, n)
	}
}
