package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"hutch/internal/testutil"
)

// Every verb pays for the package init of everything the binary links,
// `hutch version` too (issue 18: each verb starts within 2 ms of a bare Go
// program; bench/startup.sh times it). What only some verbs need is built on
// first use (sync.OnceValue), not in a package-level var or init().
// TestPackageInitsStayLight keeps it so without timing anything: it builds
// hutch as scripts/build.sh does and counts the bytes each package's init
// allocates in `hutch version`, as GODEBUG=inittrace=1 reports them.
const (
	// hutch's own packages: a few small tables at most. This one too:
	// main() builds the cobra command tree (newRootCommand), no init
	// does (57 KB of init before issue 19, unbounded since inittrace
	// names the package "main").
	maxHutchInitBytes = 16 << 10
	// every package's together: validator/v10 alone allocates 431 KB
	// (maps of country and currency codes, a BCP 47 regexp) and hutch
	// needs it; 620 KB in November 2026, 1.05 MB before issue 18.
	maxTotalInitBytes = 768 << 10
)

// heavyInits are packages whose init is too costly to link at all, and what
// hutch uses instead.
var heavyInits = map[string]string{
	"github.com/elastic/go-seccomp-bpf/arch": "builds maps of every architecture's system calls at init (165 KB); drivers/process has a generated table (mkseccomp.go)",
}

var initLine = regexp.MustCompile(`^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes, (\d+) allocs$`)

func TestPackageInitsStayLight(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hutch")
	if err := testutil.BuildHutch(bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("GODEBUG=inittrace=1 hutch version: %v\n%s", err, out)
	}
	total, n := 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		m := initLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n++
		pkg := m[1]
		bytes, _ := strconv.Atoi(m[2])
		total += bytes
		if why, ok := heavyInits[pkg]; ok {
			t.Errorf("%s is linked in: it %s", pkg, why)
		}
		limit := 0
		// inittrace names this package (hutch/cmd/apply) "main".
		if pkg == "main" || strings.HasPrefix(pkg, "hutch/") {
			limit = maxHutchInitBytes
		}
		if limit > 0 && bytes > limit {
			t.Errorf("package init of %s allocates %d bytes (at most %d): build what only some verbs need on first use (sync.OnceValue)", pkg, bytes, limit)
		}
	}
	if n < 20 {
		t.Fatalf("GODEBUG=inittrace=1 printed %d init lines, a Go binary has dozens:\n%s", n, out)
	}
	if total > maxTotalInitBytes {
		t.Errorf("package inits allocate %d bytes together (at most %d): a new dependency with a heavy init? (GODEBUG=inittrace=1 hutch version lists them)", total, maxTotalInitBytes)
	}
	t.Logf("%d package inits allocate %d bytes", n, total)
}
