//go:build linux

package tutorial

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The script `hutch plan --explain -o script` writes brings the seed's web
// server up without hutch, and its down part leaves nothing behind: the
// explanation is what the kernel does, not decoration.
func TestExplainScriptRunsTheServerWithoutHutch(t *testing.T) {
	l := newLab(t)
	code, script := l.Hutch("plan", "--explain", "-o", "script", "-f", l.Manifest)
	if code != 2 { // changes pending: everything is to create
		t.Fatalf("plan --explain -o script: exit %d\n%s", code, script)
	}
	path := filepath.Join(t.TempDir(), "web.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(l.Root, "containers", l.Name)
	down := func() (string, error) {
		out, err := exec.Command("bash", path, "down").CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		// A second down finds nothing and says nothing.
		if out, err := down(); err != nil || out != "" {
			t.Errorf("script down, again: %v\n%s", err, out)
		}
	})

	for _, want := range []string{
		"ip netns add " + l.Netns,
		"ip link add " + l.HostIf + " type veth peer name " + l.PeerIf + " netns " + l.Netns,
		"echo 52428800 > /sys/fs/cgroup/memory/hutch/" + l.Name + "/memory.limit_in_bytes",
		"nsenter --net=/var/run/netns/" + l.Netns + " unshare --fork",
		"pivot_root . .oldroot",
		"# ! seed: `unshare --net=",
		"# ! seed: `unshare --pid` without --fork",
		"# ! seed: mounts proc before the pid namespace exists",
		"# ! seed: `cp -r /usr/lib/python3` misses",
		"# ! seed: `ldd /bin/bash | grep -o",
		"# ! seed: makes these cgroups but never writes a pid",
		"`x.append(\" \" * 1000000)` is meant",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q", want)
		}
	}

	t0 := time.Now()
	out, err := exec.Command("bash", path, "up").CombinedOutput()
	t.Logf("script up: %v", time.Since(t0))
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(bundle, "script.log"))
		t.Fatalf("script up: %v\n%s\nlog:\n%s", err, out, log)
	}
	l.Serving()
	t.Logf("serving: %v", time.Since(t0))

	// The server runs as the kernel should have it: in the cgroup, pid 1
	// of its own pid namespace, in the named netns, with Docker's bounding
	// set and no_new_privs.
	procs := strings.Fields(l.cgroupFile("memory", "cgroup.procs"))
	if len(procs) == 0 {
		t.Fatal("no process in the container's memory cgroup: the script did not join it")
	}
	var server string
	for _, p := range procs {
		cmd, _ := os.ReadFile("/proc/" + p + "/cmdline")
		if strings.Contains(string(cmd), "server.py") {
			server = p
		}
	}
	if server == "" {
		t.Fatalf("python3 /server.py is not in the cgroup (%v)", procs)
	}
	status, _ := os.ReadFile("/proc/" + server + "/status")
	for _, want := range []string{"NoNewPrivs:\t1", "CapBnd:\t00000000a80425fb", "CapInh:\t0000000000000000"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("/proc/%s/status lacks %q:\n%s", server, want, status)
		}
	}
	if f := strings.Fields(statusField(string(status), "NSpid")); len(f) != 2 || f[1] != "1" {
		t.Errorf("NSpid %v: want the server as pid 1 of a new pid namespace", f)
	}
	netIno, _ := os.Readlink("/proc/" + server + "/ns/net")
	st := must(os.Stat("/var/run/netns/" + l.Netns))
	if want := fmt.Sprintf("net:[%d]", inode(st)); netIno != want {
		t.Errorf("the server's netns is %s, /var/run/netns/%s is %s", netIno, l.Netns, want)
	}
	if root, _ := os.Readlink("/proc/" + server + "/root"); root == "/" {
		// After pivot_root the kernel shows the root as / from inside; from
		// the host it must not be the host's root.
		if a, b := must(os.Stat("/proc/"+server+"/root/server.py")), must(os.Stat(filepath.Join(bundle, "rootfs", "server.py"))); inode(a) != inode(b) {
			t.Errorf("the server's root is not the script's rootfs")
		}
	}

	start := time.Now()
	if out, err := down(); err != nil {
		t.Fatalf("script down: %v\n%s", err, out)
	}
	t.Logf("script down: %v", time.Since(start))
	if left := l.Leftovers(); len(left) > 0 {
		t.Errorf("script down left:\n%s", strings.Join(left, "\n"))
	}
	if _, err := os.Stat(bundle); err == nil {
		t.Errorf("script down left %s", bundle)
	}
}

func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func must(fi os.FileInfo, err error) os.FileInfo {
	if err != nil {
		panic(err)
	}
	return fi
}
