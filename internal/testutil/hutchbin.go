package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildHutch builds hutch/cmd/apply into out the way every build of it is
// made, with scripts/build.sh (statically linked, see there), so the tests
// run the binary that ships, C constructors and all.
func BuildHutch(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.Command(filepath.Join(root, "scripts", "build.sh"), out)
	cmd.Dir = root
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/build.sh: %w: %s", err, outb.Bytes())
	}
	return nil
}

// hutchBin is the binary RunWithHutch built (or HUTCH_E2E_BIN).
var hutchBin string

// RunWithHutch is a TestMain for tests that run the hutch binary: as root it
// builds hutch/cmd/apply into a temporary folder with BuildHutch (or takes
// HUTCH_E2E_BIN, a binary built elsewhere), sets *bin (and the binary every
// Lab runs), runs the tests and removes the folder.
// Without root the tests run unbuilt: each skips (or fails under CI) in
// RequireRoot. It returns the exit code for os.Exit.
func RunWithHutch(m *testing.M, bin *string) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	if b := os.Getenv("HUTCH_E2E_BIN"); b != "" {
		*bin, hutchBin = b, b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hutch-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "hutch")
	hutchBin = *bin
	if err := BuildHutch(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "build hutch:", err)
		return 1
	}
	return m.Run()
}
