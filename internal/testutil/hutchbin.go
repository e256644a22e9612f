package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunWithHutch is a TestMain for tests that run the hutch binary: as root it
// builds hutch/cmd/apply into a temporary folder (or takes HUTCH_E2E_BIN, a
// binary built elsewhere), sets *bin, runs the tests and removes the folder.
// Without root the tests run unbuilt: each skips (or fails under CI) in
// RequireRoot. It returns the exit code for os.Exit.
func RunWithHutch(m *testing.M, bin *string) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	if b := os.Getenv("HUTCH_E2E_BIN"); b != "" {
		*bin = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hutch-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "hutch")
	cmd := exec.Command("go", "build", "-o", *bin, "hutch/cmd/apply")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hutch:", err)
		return 1
	}
	return m.Run()
}
