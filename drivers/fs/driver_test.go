//go:build linux

package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"hutch/internal/testutil"
	"hutch/plan"
)

const serverPy = `import http.server
import socketserver

PORT = 8000
Handler = http.server.SimpleHTTPRequestHandler

with socketserver.TCPServer(("", PORT), Handler) as httpd:
    print(f"Serving at port {PORT}")
    httpd.serve_forever()
`

// webserver is the rootfs recipe plan.Build makes of manifests/webserver.yaml.
func webserver(stateRoot, name string) *plan.Rootfs {
	sum := sha256.Sum256([]byte(serverPy))
	return &plan.Rootfs{
		Container: name,
		Bundle:    filepath.Join(stateRoot, "containers", name),
		Binaries:  []string{"/bin/bash", "/bin/ls", "/bin/ps"},
		Python:    "/usr/bin/python3",
		Files:     []plan.InlineFile{{Path: "/server.py", Mode: 0o644, Content: serverPy, Digest: "sha256:" + hex.EncodeToString(sum[:])}},
		Dirs:      []plan.Dir{{Path: "/dev", Mode: 0o755}, {Path: "/proc", Mode: 0o555}, {Path: "/sys", Mode: 0o555}, {Path: "/tmp", Mode: 0o1777}},
	}
}

// stateRoot is a fresh state root whose mounts are removed when the test
// ends, failed or not.
func stateRoot(t testing.TB) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
		for i := len(ms) - 1; i >= 0; i-- {
			unmountAll(ms[i].Mountpoint)
		}
	})
	return dir
}

// apply observes and applies rf as the reconciler does.
func apply(t testing.TB, d *Driver, rf *plan.Rootfs) {
	t.Helper()
	ctx := context.Background()
	got, err := d.Observe(ctx, rf)
	if err != nil {
		t.Fatal(err)
	}
	ch := &plan.Change{ID: rf.ID(), Kind: rf.Kind(), Action: plan.Create, After: rf}
	if got != nil {
		ch.Before = got
		ch.Action = plan.Replace
	}
	if err := d.Apply(ctx, ch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Delete(context.Background(), rf); err != nil {
			t.Error(err)
		}
	})
}

// chroot runs a command (after chroot's own --options) chrooted into root, in new mount and pid
// namespaces with a proc mounted at root/proc (ps reads it), which go with
// the command.
func chroot(t *testing.T, root string, args ...string) string {
	t.Helper()
	var opts []string
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		opts, args = append(opts, args[0]), args[1:]
	}
	cmd := exec.Command("unshare", append(append([]string{"--mount", "--pid", "--fork", "--mount-proc=" + filepath.Join(root, "proc"), "chroot"}, opts...), append([]string{root}, args...)...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot %s %v: %v\n%s", root, args, err, out)
	}
	return string(out)
}

func TestWebserverRootfs(t *testing.T) {
	testutil.RequireRoot(t)
	sr := stateRoot(t)
	d := New(sr)
	rf := webserver(sr, testutil.Name("fsweb"))
	apply(t, d, rf)
	root := filepath.Join(rf.Bundle, "rootfs")

	m, err := mountAt(root)
	if err != nil || m == nil || m.FSType != "overlay" {
		t.Fatalf("no overlay at %s: %v %+v", root, err, m)
	}
	out := chroot(t, root, "/bin/bash", "-c", "ls / && ps --version")
	for _, want := range []string{"server.py", "proc", "usr", "procps"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls / && ps --version: no %q in\n%s", want, out)
		}
	}
	chroot(t, root, "python3", "-c", "import http.server, socketserver, json, ssl, hashlib")
	// The layer's bytecode was valid (the copies kept the sources' mtimes):
	// python compiled nothing, so it wrote nothing into the upper folder.
	if written, _ := filepath.Glob(filepath.Join(rf.Bundle, "overlay", "upper", "usr", "lib", "python3*")); len(written) > 0 {
		t.Errorf("python wrote bytecode into the container's upper folder: %v", written)
	}
	// An unprivileged user inside reads the layer through the overlay,
	// though the cache folder is 0700.
	chroot(t, root, "--userspec=65534:65534", "/bin/bash", "-c", "ls /usr/bin >/tmp/ls && python3 -c 'import json'")
	for _, p := range []string{"/proc", "/sys", "/dev", "/tmp"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || !fi.IsDir() {
			t.Errorf("%s: want a plain folder: %v %v", p, fi, err)
		}
	}
	if fi, _ := os.Lstat(filepath.Join(root, "tmp")); fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp mode %v: want sticky", fi.Mode())
	}
	for _, p := range []string{"/bin", "/lib64"} {
		if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: want the host's symlink kept: %v %v", p, fi, err)
		}
	}

	// A second Observe finds it mounted over the wanted layer.
	got, err := d.Observe(context.Background(), rf)
	if err != nil || got == nil {
		t.Fatalf("observe after apply: %v %v", got, err)
	}
	if f, _ := d.Diff(got, rf); len(f) != 0 {
		t.Fatalf("diff after apply: %v (got %s want %s)", f, got.(*plan.Rootfs).Layer, rf.Layer)
	}
}
