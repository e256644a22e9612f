package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// hostPackages are packages whose use means touching the host: running
// programs, netlink and namespaces, mounts, capabilities, seccomp filters,
// cgroups, or hutch's own host-side layers. spec and plan are pure (they
// turn a manifest into values), so none of these may appear anywhere among
// their dependencies, however indirectly.
var hostPackages = []struct{ prefix, why string }{
	{"os/exec", "runs programs"},
	{"os/signal", "handles process signals"},
	{"os/user", "reads the host's user database (and may run cgo NSS code)"},
	{"plugin", "loads code at run time"},
	{"github.com/vishvananda/", "netlink sockets and setns(2)"},
	{"github.com/mdlayher/", "netlink and raw sockets"},
	{"github.com/google/nftables", "nftables over netlink"},
	{"github.com/moby/sys/mountinfo", "reads /proc/self/mountinfo"},
	{"github.com/moby/sys/capability", "capget/capset(2) and /proc"},
	{"github.com/cyphar/filepath-securejoin", "resolves paths on the host's file system (openat2)"},
	{"github.com/elastic/go-seccomp-bpf", "loads seccomp filters with seccomp(2)"},
	{"github.com/opencontainers/runc", "a container runtime"},
	{"github.com/opencontainers/cgroups", "cgroup files"},
	{"github.com/containerd/", "container runtime internals"},
	{"github.com/godbus/", "D-Bus to systemd"},
	{"github.com/coreos/go-systemd", "systemd"},
	{"hutch/drivers", "hutch's host-side drivers"},
	{"hutch/reconcile", "observes and changes the host through the drivers"},
	{"hutch/internal/testutil", "root test helpers"},
	{"hutch/cmd", "the CLI"},
}

// unixImporters are the only packages through which spec or plan may reach
// golang.org/x/sys/unix (raw system calls; Go's standard library wraps its
// own). plan reaches it through moby's seccomp profile package, for
// syscall-argument constants and, in GetDefaultProfile, one uname(2) to
// learn the kernel version (a read that changes nothing). spec reaches it
// not at all.
var unixImporters = map[string]map[string]bool{
	"hutch/spec": {},
	"hutch/plan": {"github.com/moby/profiles/seccomp": true},
}

// TestPure is the purity test of spec and plan, the packages that turn a
// manifest into values: it checks their `go list -deps` for anything that
// touches the host (hostPackages: drivers, os/exec, netlink, ...),
// golang.org/x/sys/unix reached only through the allowed path, and no
// hutch package among them importing syscall or unsafe itself. spec's
// TestReadsOnlyManifests checks the one host access spec has.
func TestPure(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, pkg := range []string{"hutch/spec", "hutch/plan"} {
		out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		importers := map[string][]string{} // dependency -> packages importing it
		var deps []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			deps = append(deps, f[0])
			for _, imp := range f[1:] {
				importers[imp] = append(importers[imp], f[0])
			}
		}
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, d := range deps {
			for _, h := range hostPackages {
				p := strings.TrimSuffix(h.prefix, "/")
				if d == p || strings.HasPrefix(d, p+"/") {
					t.Errorf("%s depends on %s (%s), imported by %v", pkg, d, h.why, importers[d])
				}
			}
		}
		for _, by := range importers["golang.org/x/sys/unix"] {
			if !unixImporters[pkg][by] {
				t.Errorf("%s reaches golang.org/x/sys/unix through %s", pkg, by)
			}
		}
		// hutch's pure packages make no system call of their own.
		for _, raw := range []string{"syscall", "unsafe"} {
			for _, by := range importers[raw] {
				if strings.HasPrefix(by, "hutch/") {
					t.Errorf("%s imports %s", by, raw)
				}
			}
		}
	}
}
