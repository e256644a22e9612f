package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPure checks that plan stays pure code: nothing it imports runs
// programs, speaks netlink or reaches into the drivers. golang.org/x/sys/unix
// is in its dependencies only through github.com/moby/profiles/seccomp
// (socket family constants, and one uname(2) to decide whether the kernel is
// at least 4.8 for ptrace); plan itself never imports it.
func TestPure(t *testing.T) {
	list := func(args ...string) []string {
		out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return strings.Fields(string(out))
	}
	for _, imp := range list("-f", `{{join .Imports " "}}`, "hutch/plan") {
		if imp == "golang.org/x/sys/unix" || imp == "syscall" || imp == "os/exec" {
			t.Errorf("plan imports %s", imp)
		}
	}
	for _, dep := range list("-deps", "hutch/plan") {
		switch {
		case dep == "os/exec",
			strings.HasPrefix(dep, "github.com/vishvananda/"),
			strings.HasPrefix(dep, "github.com/google/nftables"),
			strings.HasPrefix(dep, "hutch/drivers"),
			strings.HasPrefix(dep, "hutch/reconcile"):
			t.Errorf("plan depends on %s", dep)
		}
	}
}
