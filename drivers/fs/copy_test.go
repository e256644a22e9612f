//go:build linux

package fs

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// build resolves rf and writes it into a fresh folder (no cache, no mount).
func build(t *testing.T, rf *plan.Rootfs) (string, error) {
	t.Helper()
	tr, err := newResolver().resolve(context.Background(), rf)
	if err != nil {
		return "", err
	}
	dir := t.TempDir()
	return dir, writeTree(context.Background(), dir, tr)
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func TestCopyKeepsModesOwnersLinksHoles(t *testing.T) {
	testutil.RequireRoot(t)
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(src, "owned"), []byte("x"), 0o640))
	must(os.Chown(filepath.Join(src, "owned"), 1234, 5678))
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("#"), 0o755))
	must(os.Chmod(filepath.Join(src, "suid"), 0o755|os.ModeSetuid))
	must(unix.Setxattr(filepath.Join(src, "owned"), "user.hutch", []byte("kept"), 0))
	must(os.Symlink("owned", filepath.Join(src, "rel")))
	must(os.Symlink("/etc/hostname", filepath.Join(src, "abs")))
	must(os.WriteFile(filepath.Join(src, "a"), []byte("linked"), 0o644))
	must(os.Link(filepath.Join(src, "a"), filepath.Join(src, "b")))
	must(os.Mkdir(filepath.Join(src, "empty"), 0o700))
	// 64 MiB with one 4 KiB block of data in the middle.
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(err)
	must(f.Truncate(64 << 20))
	_, err = f.WriteAt(bytes.Repeat([]byte{7}, 4096), 32<<20)
	must(err)
	must(f.Close())

	rf := &plan.Rootfs{Container: "t", Bundle: "/nonexistent",
		Copies: []plan.Copy{{From: src, To: "/data"}},
		Files:  []plan.InlineFile{{Path: "/etc/secret", Mode: 0o600, Content: "s"}},
		Dirs:   []plan.Dir{{Path: "/tmp", Mode: 0o1777}}}
	dir, err := build(t, rf)
	must(err)
	d := filepath.Join(dir, "data")
	if st := lstat(t, filepath.Join(d, "owned")); st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o640 {
		t.Errorf("owned: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	xa := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(d, "owned"), "user.hutch", xa); err != nil || string(xa[:n]) != "kept" {
		t.Errorf("owned: xattr user.hutch %q, %v; want kept", xa, err)
	}
	if st := lstat(t, filepath.Join(d, "suid")); st.Mode&0o7777 != 0o4755 {
		t.Errorf("suid: mode %o, want 4755", st.Mode&0o7777)
	}
	for name, want := range map[string]string{"rel": "owned", "abs": "/etc/hostname"} {
		if got, err := os.Readlink(filepath.Join(d, name)); err != nil || got != want {
			t.Errorf("symlink %s: %q %v, want %q", name, got, err, want)
		}
	}
	a, b := lstat(t, filepath.Join(d, "a")), lstat(t, filepath.Join(d, "b"))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link: inodes %d and %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if st := lstat(t, filepath.Join(d, "empty")); st.Mode&0o7777 != 0o700 || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("empty folder: mode %o", st.Mode)
	}
	st := lstat(t, filepath.Join(d, "sparse"))
	if st.Size != 64<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("sparse: size %d, %d bytes allocated; want 64 MiB in at most 1 MiB", st.Size, st.Blocks*512)
	}
	got, _ := os.ReadFile(filepath.Join(d, "sparse"))
	want, _ := os.ReadFile(filepath.Join(src, "sparse"))
	if !bytes.Equal(got, want) {
		t.Error("sparse: content differs")
	}
	if st := lstat(t, filepath.Join(dir, "etc/secret")); st.Mode&0o7777 != 0o600 {
		t.Errorf("inline file: mode %o, want 600", st.Mode&0o7777)
	}
	if st := lstat(t, filepath.Join(dir, "tmp")); st.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp: mode %o, want 1777", st.Mode&0o7777)
	}
}

func TestCopyRefusesSpecialFiles(t *testing.T) {
	testutil.RequireRoot(t)
	src := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	for from, want := range map[string]string{"/dev/null": "/dev/null is a character device", src: "pipe is a fifo"} {
		_, err := build(t, &plan.Rootfs{Container: "t", Bundle: "/x", Copies: []plan.Copy{{From: from, To: "/x"}}})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "copy "+from) {
			t.Errorf("copy %s: %v, want an error saying %q", from, err, want)
		}
	}
}

func TestMountPointsStayFolders(t *testing.T) {
	testutil.RequireRoot(t)
	src := t.TempDir()
	if err := os.Symlink("/var/tmp", filepath.Join(src, "tmp")); err != nil {
		t.Fatal(err)
	}
	rf := &plan.Rootfs{Container: "t", Bundle: "/x", Copies: []plan.Copy{{From: src, To: "/"}},
		Dirs: []plan.Dir{{Path: "/tmp", Mode: 0o1777}}}
	_, err := build(t, rf)
	if err == nil || !strings.Contains(err.Error(), "folder /tmp") {
		t.Fatalf("a recipe making /tmp a symlink: %v, want refused", err)
	}
	// Without the recipe naming them, the mount points are made, and kept
	// plain.
	os.Remove(filepath.Join(src, "tmp"))
	os.Symlink("/", filepath.Join(src, "dev"))
	rf = &plan.Rootfs{Container: "t", Bundle: "/x", Copies: []plan.Copy{{From: src, To: "/"}}}
	if _, err := build(t, rf); err == nil || !strings.Contains(err.Error(), "mount point /dev") {
		t.Fatalf("a recipe making /dev a symlink: %v, want refused", err)
	}
	dir, err := build(t, &plan.Rootfs{Container: "t", Bundle: "/x", Binaries: []string{"/bin/ls"}})
	if err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]uint32{"/proc": 0o555, "/sys": 0o555, "/dev": 0o755, "/tmp": 0o1777} {
		if st := lstat(t, filepath.Join(dir, p)); st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Mode&0o7777 != mode {
			t.Errorf("%s: mode %o, want a folder %o", p, st.Mode, mode)
		}
	}
	// The same made by a symlinked parent on the way is refused when written.
	rf = &plan.Rootfs{Container: "t", Bundle: "/x",
		Files: []plan.InlineFile{{Path: "/proc", Mode: 0o644, Content: "x"}},
		Dirs:  []plan.Dir{{Path: "/proc/self", Mode: 0o755}}}
	if _, err := build(t, rf); err == nil {
		t.Fatal("a folder under a file: no error")
	}
}

func TestScriptBinaryNamesInterpreter(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "python3"), []byte("#!/usr/bin/env bash\nexec /usr/bin/python3 \"$@\"\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	r := newResolver()
	r.pathEnv = dir + ":/usr/bin:/bin"
	sh, _ := filepath.EvalSymlinks("/bin/sh")
	for name, wants := range map[string][]string{
		"python3": {`"/usr/bin/env bash"`, "#!", "python field", "/usr/bin/python3"},
		"tool":    {`"/bin/sh"`, sh},
	} {
		err := r.addBinary(newTree(), name)
		if err == nil {
			t.Fatalf("%s: a script accepted as a binary", name)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v: want it to say %q", name, err, w)
			}
		}
	}
	// The pyenv shim of this machine, where there is one.
	if _, err := os.Stat("/root/.pyenv/shims/python3"); err == nil {
		err := newResolver().addBinary(newTree(), "/root/.pyenv/shims/python3")
		t.Logf("pyenv shim as a binary: %v", err)
		if err == nil || !strings.Contains(err.Error(), "env bash") || !strings.Contains(err.Error(), "/root/.pyenv/versions/") {
			t.Errorf("pyenv shim: %v", err)
		}
	}
}

// elfHeader is a bare ELF file header (no segments, no sections) of a class
// and machine.
func elfHeader(class elf.Class, m elf.Machine) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', byte(class), 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	binary.Write(&b, le, uint16(elf.ET_DYN))
	binary.Write(&b, le, uint16(m))
	binary.Write(&b, le, uint32(1))
	if class == elf.ELFCLASS32 {
		binary.Write(&b, le, [3]uint32{})
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, [6]uint16{52, 32, 0, 40, 0, 0})
	} else {
		binary.Write(&b, le, [3]uint64{})
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, [6]uint16{64, 56, 0, 64, 0, 0})
	}
	return b.Bytes()
}

func TestClosureRejectsOtherArch(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "libfoo.so.1"), elfHeader(elf.ELFCLASS32, elf.EM_386), 0o644)
	os.WriteFile(filepath.Join(dir, "arm64"), elfHeader(elf.ELFCLASS64, elf.EM_AARCH64), 0o755)
	l, err := newLoader("/etc/ld.so.cache", "/etc/ld.so.conf")
	if err != nil {
		t.Fatal(err)
	}
	bash, err := l.read("/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = l.find("libfoo.so.1", "libfoo.so.1", []string{dir}, nil, bash)
	if err == nil || !strings.Contains(err.Error(), "32-bit 386") || !strings.Contains(err.Error(), "want 64-bit X86_64") {
		t.Errorf("a 32-bit library for a 64-bit program: %v", err)
	}
	if _, _, err := l.closure(filepath.Join(dir, "arm64"), bash); err == nil || !strings.Contains(err.Error(), "AARCH64") {
		t.Errorf("an arm64 module for an x86-64 interpreter: %v", err)
	}
}

// TestClosureOrigin builds a program whose library is found through
// DT_RUNPATH $ORIGIN/../lib, and checks the closure against ldd.
func TestClosureOrigin(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "foo.c"), []byte("int foo(void){return 1;}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.c"), []byte("int foo(void); int main(void){return foo()-1;}\n"), 0o644)
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-o", "lib/libhutchfoo.so.1", "-Wl,-soname,libhutchfoo.so.1", "foo.c"},
		{"-o", "bin/prog", "main.c", "lib/libhutchfoo.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"},
	} {
		cmd := exec.Command("cc", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cc %v: %v\n%s", args, err, out)
		}
	}
	l, err := newLoader("/etc/ld.so.cache", "/etc/ld.so.conf")
	if err != nil {
		t.Fatal(err)
	}
	paths, _, err := l.closure(filepath.Join(dir, "bin/prog"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "bin/../lib/libhutchfoo.so.1")
	found := false
	for _, p := range paths {
		found = found || p == want
	}
	if !found {
		t.Fatalf("closure %v: no %s", paths, want)
	}
	if err := exec.Command(filepath.Join(dir, "bin/prog")).Run(); err != nil {
		t.Fatalf("the program itself does not run: %v", err)
	}
}
