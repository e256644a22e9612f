package fs

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	"hutch/internal/testutil"
)

// A folder's metadata is set at the end of the unpack through the folder
// itself, for the last entry of its name only: a layer that makes `x/`
// with mode 04777 and then replaces it with `x -> /some/host/file` must
// not change the host file's mode (it made the host's file setuid and
// world-writable before).
func TestImageFolderModeNotThroughALaterSymlink(t *testing.T) {
	testutil.RequireRoot(t)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("host file"), 0o600); err != nil {
		t.Fatal(err)
	}
	layer, err := unpackEntries(t, []testutil.Entry{
		{Name: "x/", Type: tar.TypeDir, Mode: 0o4777},
		{Name: "x", Type: tar.TypeSymlink, Link: victim},
		{Name: "d/", Type: tar.TypeDir, Mode: 0o700},
		{Name: "d/", Type: tar.TypeDir, Mode: 0o751},
	})
	fi, serr := os.Stat(victim)
	if serr != nil {
		t.Fatal(serr)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
		t.Fatalf("the host file's mode is %v after the unpack (err %v), want -rw------- unchanged", fi.Mode(), err)
	}
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(layer, "x")); err != nil || l != victim {
		t.Errorf("x: %q, %v; want the symlink to %s", l, err, victim)
	}
	if fi, err := os.Lstat(filepath.Join(layer, "d")); err != nil || fi.Mode().Perm() != 0o751 {
		t.Errorf("d: %v, %v; want the last entry's mode 0751", fi.Mode(), err)
	}
}
