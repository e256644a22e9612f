//go:build linux

package process

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fsdrv "hutch/drivers/fs"
	"hutch/plan"
)

// TestRootfsFromDriversFS runs the seed's web server in a rootfs that
// drivers/fs built (python's ELF closure and standard library, busybox, an
// overlay mount at bundle/rootfs), as `hutch apply` does.
func TestRootfsFromDriversFS(t *testing.T) {
	var rf *plan.Rootfs
	c := newContainer(t, []string{"python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/www"}, containerOpts{
		rootfs: func(rootfs string) {
			// newContainer made a busybox folder there; drivers/fs mounts
			// its overlay at the same place instead.
			if err := os.RemoveAll(rootfs); err != nil {
				t.Fatal(err)
			}
			bundle := filepath.Dir(rootfs)
			rf = &plan.Rootfs{
				Container: filepath.Base(bundle), Bundle: bundle,
				Binaries: []string{"/bin/busybox"},
				Python:   "/usr/bin/python3",
				Files:    []plan.InlineFile{{Path: "/www/index.html", Mode: 0o644, Content: "hello from hutch\n"}},
				Dirs: []plan.Dir{
					{Path: "/dev", Mode: 0o755}, {Path: "/proc", Mode: 0o555},
					{Path: "/sys", Mode: 0o555}, {Path: "/tmp", Mode: 0o1777},
				},
			}
			fs := fsdrv.New(filepath.Dir(filepath.Dir(bundle)))
			if err := fs.Apply(context.Background(), &plan.Change{Action: plan.Create, After: rf}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := fs.Delete(context.Background(), rf); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			})
		},
	})
	c.start()
	var out string
	waitFor(t, "python's http.server", func() bool {
		o, _, code := c.exec("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8000/index.html")
		out = o
		return code == 0
	})
	if out != "hello from hutch\n" {
		t.Errorf("http.server answered %q", out)
	}
	if mi := c.mustExec("busybox", "cat", "/proc/1/mountinfo"); !strings.Contains(strings.SplitN(mi, "\n", 2)[0], " / / ") || !strings.Contains(strings.SplitN(mi, "\n", 2)[0], " - overlay ") {
		t.Errorf("the root is not drivers/fs's overlay:\n%s", mi)
	}
}
