//go:build linux

package process

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
)

// TestOverlaySelf checks the binary the init is executed from: the running
// binary's bytes, through a mount that refuses every write (CVE-2019-5736),
// and attached to no mount table.
func TestOverlaySelf(t *testing.T) {
	testutil.RequireRoot(t)
	f, err := overlaySelf()
	if err != nil {
		t.Fatalf("overlaySelf: %v", err)
	}
	defer f.Close()
	p := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if w, err := os.OpenFile(p, os.O_WRONLY, 0); !errors.Is(err, unix.EROFS) {
		if w != nil {
			w.Close()
		}
		t.Fatalf("open %s for writing: %v, want EROFS", p, err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the overlay's file (%d bytes) differs from the running binary (%d bytes)", len(got), len(want))
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	link, _ := os.Readlink(p)
	if bytes.Contains(mi, []byte(" overlay overlay ")) && link != "" && bytes.Contains(mi, []byte(link)) {
		t.Errorf("the binary's overlay is attached to the mount table: %s", link)
	}
}

// BenchmarkSealedSelf is the cost of the binary the init runs from, per
// start: the detached overlay, and the memfd copy it replaced.
func BenchmarkSealedSelf(b *testing.B) {
	testutil.RequireRoot(b)
	for _, c := range []struct {
		name string
		f    func() (*os.File, error)
	}{{"overlay", overlaySelf}, {"memfd", memfdSelf}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				f, err := c.f()
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
