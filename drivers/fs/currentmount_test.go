package fs

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
)

// currentMount answers without mountinfo for a folder that is no mount
// point, and as mountAt does for one that is.
func TestCurrentMount(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "m")
	if m, err := currentMount(dir); err != nil || m != nil {
		t.Fatalf("missing folder: %v, %v; want nil, nil", m, err)
	}
	if err := unix.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if m, err := currentMount(dir); err != nil || m != nil {
		t.Fatalf("plain folder: %v, %v; want nil, nil", m, err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	m, err := currentMount(dir)
	if err != nil || m == nil || m.FSType != "tmpfs" {
		t.Fatalf("tmpfs mount point: %+v, %v; want its tmpfs mount", m, err)
	}
}
