//go:build linux

package fs_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fsdrv "hutch/drivers/fs"
	"hutch/internal/testutil"
	"hutch/plan"
	"hutch/spec"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestRuncRunsExportedWebserver exports the bundle of manifests/webserver.yaml
// (config.json from plan.Build, rootfs from Export) and runs it with Debian's
// runc as it is: the server answers inside the named network namespace.
// The container, namespace and cgroup parent get unique names.
func TestRuncRunsExportedWebserver(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed (scripts/deps.sh installs it)")
	}
	name, netns, parent := testutil.Name("fsrunc"), testutil.Name("fsns"), testutil.Name("hutchfs")
	b, err := os.ReadFile("../../manifests/webserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(string(b), "name: webserver", "name: "+name, 1)
	m = strings.Replace(m, "namespace: container_ns", "namespace: "+netns, 1)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "webserver.yaml")
	os.WriteFile(file, []byte(m), 0o644)
	man, err := spec.LoadAndValidate([]string{file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := plan.DefaultOptions()
	o.StateRoot, o.CgroupParent = filepath.Join(tmp, "state"), parent
	d, err := plan.Build(man, o)
	if err != nil {
		t.Fatal(err)
	}
	c := d.Containers[0]
	bundle := filepath.Join(tmp, "bundle")
	os.MkdirAll(bundle, 0o755)
	cfg, _ := json.MarshalIndent(c.Spec, "", "  ")
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Resources {
		if rf, ok := r.(*plan.Rootfs); ok {
			if err := fsdrv.New(o.StateRoot).Export(context.Background(), rf, filepath.Join(bundle, c.Spec.Root.Path)); err != nil {
				t.Fatal(err)
			}
		}
	}

	run(t, "ip", "netns", "add", netns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", netns).Run() })
	run(t, "ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
	runcRoot := filepath.Join(tmp, "runc")
	t.Cleanup(func() {
		exec.Command("runc", "--root", runcRoot, "kill", name, "KILL").Run()
		exec.Command("runc", "--root", runcRoot, "delete", "-f", name).Run()
		// runc made the cgroup parent on each v1 hierarchy; remove it.
		ps, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		for _, p := range ps {
			os.Remove(p)
		}
	})
	log, _ := os.Create(filepath.Join(tmp, "runc.log"))
	defer log.Close()
	cmd := exec.Command("runc", "--root", runcRoot, "run", "--detach", "--bundle", bundle, name)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(log.Name())
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	// Ask the server, from inside the namespace, until it listens (bounded).
	for i := 0; ; i++ {
		out, err := exec.Command("ip", "netns", "exec", netns, "curl", "-s", "--max-time", "2", "http://127.0.0.1:8000/").CombinedOutput()
		if err == nil && strings.Contains(string(out), "server.py") {
			break
		}
		if i == 200 {
			logs, _ := os.ReadFile(log.Name())
			t.Fatalf("the server in %s never answered: %v %s\nrunc and container output:\n%s", netns, err, out, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	state := run(t, "runc", "--root", runcRoot, "state", name)
	if !strings.Contains(state, `"status": "running"`) {
		t.Fatalf("runc state: %s", state)
	}
}
