//go:build linux

package export

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rootfsFixture makes a small rootfs: folders with special modes, a file, a
// hard link to it, symlinks, a fifo, a socket and, as root, a device node
// with another owner.
func rootfsFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(unix.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(os.Mkdir(filepath.Join(root, "proc"), 0o555))
	must(os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("#!/bin/sh\necho tool\n"), 0o755))
	must(unix.Chmod(filepath.Join(root, "usr/bin/tool"), 0o4755))
	must(os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	must(os.WriteFile(filepath.Join(root, "server.py"), []byte("print(1)\n"), 0o644))
	old := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	must(os.Chtimes(filepath.Join(root, "usr/bin/tool"), old, old))
	must(os.Chtimes(filepath.Join(root, "server.py"), old, old))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	must(err)
	t.Cleanup(func() { l.Close() })
	if os.Geteuid() == 0 {
		must(os.Mkdir(filepath.Join(root, "dev"), 0o755))
		must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Lchown(filepath.Join(root, "server.py"), 1000, 1001))
	}
	return root
}

// readLayer reads a layer tar into its headers by name, in order.
func readLayer(t *testing.T, b []byte) ([]string, map[string]*tar.Header) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	hs := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, hs
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		hs[h.Name] = h
	}
}

func TestWriteLayerKeepsMetadata(t *testing.T) {
	root := rootfsFixture(t)
	var buf bytes.Buffer
	keep := func(p string) bool { return p == "/usr/bin/tool" }
	if err := WriteLayer(&buf, root, keep); err != nil {
		t.Fatal(err)
	}
	names, hs := readLayer(t, buf.Bytes())
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries out of order: %q before %q", names[i-1], names[i])
		}
	}
	want := map[string]struct {
		typ  byte
		mode int64
		link string
	}{
		"bin":          {tar.TypeSymlink, 0o777, "usr/bin"},
		"tmp/":         {tar.TypeDir, 0o1777, ""},
		"proc/":        {tar.TypeDir, 0o555, ""},
		"usr/bin/tool": {tar.TypeReg, 0o4755, ""},
		"server.py":    {tar.TypeReg, 0o644, ""},
		"fifo":         {tar.TypeFifo, 0o600, ""},
	}
	for name, w := range want {
		h := hs[name]
		if h == nil {
			t.Errorf("%s: missing; layer has %q", name, names)
			continue
		}
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Linkname != w.link {
			t.Errorf("%s: type %c mode %#o link %q; want %c %#o %q", name, h.Typeflag, h.Mode, h.Linkname, w.typ, w.mode, w.link)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: user %q group %q: host names in the layer", name, h.Uname, h.Gname)
		}
	}
	// Exactly one of the two names of the file holds its content.
	t1, t2 := hs["usr/bin/tool"], hs["usr/bin/tool2"]
	if t1 == nil || t2 == nil || t2.Typeflag != tar.TypeLink || t2.Linkname != "usr/bin/tool" || t2.Size != 0 {
		t.Errorf("usr/bin/tool2: %+v; want a hard link to usr/bin/tool", t2)
	}
	if _, ok := hs["sock"]; ok {
		t.Errorf("the socket is in the layer")
	}
	if got := hs["usr/bin/tool"].ModTime; !got.Equal(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Errorf("usr/bin/tool (kept): mtime %v, want its own", got)
	}
	for _, name := range []string{"server.py", "tmp/", "usr/"} {
		if got := hs[name].ModTime; !got.Equal(Epoch) {
			t.Errorf("%s (not kept): mtime %v, want %v", name, got, Epoch)
		}
	}
	if os.Geteuid() == 0 {
		d := hs["dev/null"]
		if d == nil || d.Typeflag != tar.TypeChar || d.Devmajor != 1 || d.Devminor != 3 {
			t.Errorf("dev/null: %+v; want char device 1,3", d)
		}
		if s := hs["server.py"]; s.Uid != 1000 || s.Gid != 1001 {
			t.Errorf("server.py: owner %d:%d, want 1000:1001", s.Uid, s.Gid)
		}
	}
}

// A layer is the same bytes whenever the folder holds the same files:
// folders' times, the order readdir returns and the moment of the export
// do not show.
func TestWriteLayerIsDeterministic(t *testing.T) {
	a, b := rootfsFixture(t), rootfsFixture(t)
	// b's folders are made later and in another order of creation.
	os.Remove(filepath.Join(b, "server.py"))
	if err := os.WriteFile(filepath.Join(b, "server.py"), []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(b, "server.py"), 1000, 1001)
	}
	var la, lb bytes.Buffer
	keep := func(p string) bool { return p == "/usr/bin/tool" }
	if err := WriteLayer(&la, a, keep); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayer(&lb, b, keep); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(la.Bytes(), lb.Bytes()) {
		t.Errorf("two layers of the same files differ (%d and %d bytes)", la.Len(), lb.Len())
	}
}
