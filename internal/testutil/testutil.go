// Package testutil holds helpers shared by hutch's tests: the root gate that
// CI turns from a skip into a failure, unique names for host objects, and
// the lab of the tests that run the hutch binary (Lab, RunWithHutch).
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// RequireRoot skips a test that needs root when it runs without root, except
// under CI (CI=true), where such a skip would hide a missing test: there it fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI runs as root: run it as root")
	}
	t.Skip("needs root")
}

// Name returns prefix followed by random hex digits, at most 15 bytes in all
// (the kernel's limit for interface names, IFNAMSIZ-1), so that tests running
// at once never share a host object.
func Name(prefix string) string {
	n := 15 - len(prefix)
	if n < 4 {
		panic("testutil.Name: prefix too long: " + prefix)
	}
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)[:n]
}
