package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
)

// The bundle of a container over an image holds the image's files as the
// container sees them, a setuid-root program and a device node of someone
// else's image included: a plain folder of the host, neither nosuid nor
// nodev as the container's overlay is. Its folder is root's alone (0700),
// also when it was there before, so that no other user of the host runs
// the program or opens the device through it.
func TestExportBundleOfAnImageIsRootsAlone(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	base := testutil.Image(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, "",
		testutil.Layer(t, testutil.LayerTar(t, []testutil.Entry{
			{Name: "bin/"}, {Name: "bin/rootshell", Mode: 0o4755, Body: "#!/bin/sh\n"},
			{Name: "srv/"}, {Name: "srv/mem", Type: tar.TypeChar, Major: 1, Minor: 1, Mode: 0o666},
		}), testutil.Gzip))
	testutil.WriteLayout(t, filepath.Join(dir, "base"), []string{"v1"}, base)
	manifest := filepath.Join(dir, "suid.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: suid
spec:
  rootfs:
    image: oci-layout:base:v1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// A folder of that name from before, open to all, is tightened.
	if err := os.Mkdir(filepath.Join(out, "suid"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, o := runCmd(t, "--root", t.TempDir(), "export", "-f", manifest, "--bundle", out); code != 0 {
		t.Fatalf("export: exit %d: %s", code, o)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(out, "suid"), &st); err != nil || st.Mode&0o7777 != 0o700 || st.Uid != 0 {
		t.Errorf("the bundle folder: mode %04o owner %d, %v; want 0700 and root's", st.Mode&0o7777, st.Uid, err)
	}
	if err := unix.Lstat(filepath.Join(out, "suid", "rootfs", "bin", "rootshell"), &st); err != nil || st.Mode != unix.S_IFREG|0o4755 {
		t.Errorf("the image's setuid program in the bundle: mode %o, %v", st.Mode, err)
	}
	if err := unix.Lstat(filepath.Join(out, "suid", "rootfs", "srv", "mem"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 1) {
		t.Errorf("the image's device in the bundle: mode %o rdev %x, %v", st.Mode, st.Rdev, err)
	}
}

// A bundle folder another user made stays theirs whatever its mode: export
// refuses it. A config.json symlink planted in root's folder is replaced,
// never written through.
func TestExportBundleRefusesAnotherUsersFolder(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: bund
spec:
  rootfs:
    binaries: [/bin/true]
  process:
    args: [/bin/true]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	theirs := filepath.Join(out, "bund")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if code, o := runCmd(t, "--root", t.TempDir(), "export", "-f", manifest, "--bundle", out); code == 0 {
		t.Fatalf("export into uid 1000's folder: exit 0, want a refusal: %s", o)
	}
	if err := os.RemoveAll(theirs); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("host file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(theirs, "config.json")); err != nil {
		t.Fatal(err)
	}
	if code, o := runCmd(t, "--root", t.TempDir(), "export", "-f", manifest, "--bundle", out); code != 0 {
		t.Fatalf("export: exit %d: %s", code, o)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "host file" {
		t.Errorf("the symlink's target now holds %q, %v: config.json was written through it", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(theirs, "config.json")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("config.json: %v, %v; want a regular file", fi, err)
	}
}
