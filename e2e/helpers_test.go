//go:build linux

// Package e2e holds hutch's end-to-end tests: they build the hutch binary,
// run it as root against the real kernel with a temporary state root and
// manifests whose names and addresses are unique to each test, and check
// what the kernel reports. Every test removes what it made in t.Cleanup.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"hutch/internal/testutil"
)

var hutchBin string

func TestMain(m *testing.M) {
	// Published ports and NAT networks hold the host's forwarding (IPv4
	// and IPv6) while they exist: after every test it is what it was
	// before.
	params := []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}
	before := map[string][]byte{}
	for _, p := range params {
		before[p], _ = os.ReadFile(p)
	}
	code := testutil.RunWithHutch(m, &hutchBin)
	for _, p := range params {
		if after, _ := os.ReadFile(p); len(before[p]) > 0 && string(after) != string(before[p]) {
			fmt.Fprintf(os.Stderr, "e2e: %s is %s after the tests, %s before: a test left it changed\n", p, strings.TrimSpace(string(after)), strings.TrimSpace(string(before[p])))
			code = 1
		}
	}
	os.Exit(code)
}

// lab is one test's world (testutil.Lab): a state root, a manifest of the
// seed's web server with unique names and a unique /24, and the hutch
// binary.
type lab struct {
	*testutil.Lab
}

func newLab(t *testing.T) *lab {
	t.Helper()
	// python is the container's pid 1, and pid 1 of a pid namespace
	// ignores SIGTERM unless it handles it (python does not): every stop
	// would wait the whole stop timeout (10 s by default) before SIGKILL.
	return &lab{testutil.NewLab(t, testutil.LabOptions{Prefix: "h", StopTimeout: "300ms"})}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// processInfo is what `hutch get -o json` says of the container.
type processInfo struct {
	Name      string   `json:"name"`
	State     string   `json:"state"`
	PID       int      `json:"pid"`
	Addresses []string `json:"addresses"`
	Restarts  int      `json:"restarts"`
}

func (l *lab) get() processInfo {
	l.T.Helper()
	out := l.Must("get", "-o", "json", l.Name)
	var rows []processInfo
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		l.T.Fatalf("get -o json: %v\n%s", err, out)
	}
	return rows[0]
}
