//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"hutch/internal/testutil"
	"hutch/plan"
	"hutch/reconcile"
)

func TestSeedWebServerUpAndGone(t *testing.T) {
	l := newLab(t)
	out := l.Apply()
	t.Logf("apply:\n%s", out)
	for _, want := range []string{"+ veth " + l.HostIf + " (created, ", "+ process " + l.Name + " (created, ", "Apply complete in "} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	l.Serving()
	if !slices.Contains(testutil.NetnsList(), l.Netns) {
		t.Errorf("ip netns list lacks %s: %v", l.Netns, testutil.NetnsList())
	}
	info := l.get()
	if info.State != "running" || info.PID == 0 || !slices.Contains(info.Addresses, l.Addr+"/24") {
		t.Errorf("get: %+v", info)
	}
	if table := l.Must("get"); !strings.Contains(table, l.Name) || !strings.Contains(table, "running") {
		t.Errorf("get table:\n%s", table)
	}
	// Delete by name, the manifest gone: the state store knows what to remove.
	saved, _ := os.ReadFile(l.Manifest)
	os.Remove(l.Manifest)
	out = l.Must("delete", l.Name)
	if !strings.Contains(out, "Delete complete") {
		t.Errorf("delete output:\n%s", out)
	}
	l.Gone()
	os.WriteFile(l.Manifest, saved, 0o644)
	// Deleting again is not an error with -f, and is one by name.
	l.Must("delete", "-f", l.Manifest)
	if code, out := l.Hutch("delete", l.Name); code != 1 || !strings.Contains(out, "not found") {
		t.Errorf("delete of an unknown name: exit %d\n%s", code, out)
	}
	l.Must("delete", "--ignore-not-found", l.Name)
}

// snapshot is what the kernel and the state store show of the lab.
func (l *lab) snapshot() map[string]string {
	l.T.Helper()
	s := map[string]string{}
	s["ip -d -j addr show "+l.HostIf], _ = run(l.T, "ip", "-d", "-j", "addr", "show", l.HostIf)
	s["ip -n NS -d -j addr"], _ = run(l.T, "ip", "-n", l.Netns, "-d", "-j", "addr")
	s["ip -n NS -j route"], _ = run(l.T, "ip", "-n", l.Netns, "-j", "route")
	// IPv6 duplicate address detection ends on its own a second after a
	// link comes up: the flag is the kernel's doing, not hutch's.
	for k, v := range s {
		s[k] = strings.ReplaceAll(v, `,"tentative":true`, "")
	}
	s["ip netns list has NS"] = fmt.Sprint(slices.Contains(testutil.NetnsList(), l.Netns))
	for _, d := range l.CgroupDirs() {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), "limit") || strings.Contains(e.Name(), "cfs_") || e.Name() == "cgroup.procs" || e.Name() == "pids.max" {
				b, _ := os.ReadFile(filepath.Join(d, e.Name()))
				s[filepath.Join(d, e.Name())] = string(b)
			}
		}
	}
	s["mountinfo"] = strings.Join(l.Mounts(), "\n")
	filepath.Walk(l.Root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || strings.Contains(p, "/rootfs/") || strings.HasSuffix(p, "/rootfs") {
			return filepath.SkipDir
		}
		if !fi.IsDir() && !strings.Contains(p, "/log") && !strings.HasSuffix(p, ".log") {
			// The files of hutch and of the process driver (whose
			// supervisor rewrites its own as the process lives).
			s["mtime "+p] = fi.ModTime().String()
		}
		return nil
	})
	return s
}

func TestSecondApplyChangesNothing(t *testing.T) {
	l := newLab(t)
	first := l.Apply()
	l.Serving()
	before := l.snapshot()
	time.Sleep(20 * time.Millisecond) // a rewritten file would show another mtime
	out := l.Apply()
	defer func() {
		if t.Failed() {
			t.Logf("first apply:\n%s\nsecond apply:\n%s", first, out)
		}
	}()
	if !strings.Contains(out, "No changes") {
		t.Errorf("second apply:\n%s", out)
	}
	if diff := cmp.Diff(before, l.snapshot()); diff != "" {
		t.Errorf("second apply changed the host or the store (-before +after):\n%s", diff)
	}
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 0 {
		t.Errorf("plan of an applied manifest: exit %d, want 0\n%s", code, out)
	}
}

func TestLimitAndAddressChangeInPlace(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	pid := l.get().PID
	l.Write(l.Manifest, func(s string) string {
		s = strings.Replace(s, "memory: 50M", "memory: 60M", 1)
		return strings.Replace(s, fmt.Sprintf("addresses: [172.16.%d.2/24]", l.Subnet), fmt.Sprintf("addresses: [172.16.%d.3/24]", l.Subnet), 1)
	})
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 2 || !strings.Contains(out, "~ cgroup/"+l.Name) {
		t.Errorf("plan: exit %d\n%s", code, out)
	}
	out := l.Apply()
	if strings.Contains(out, "process "+l.Name) {
		t.Errorf("the process was touched:\n%s", out)
	}
	if got := l.get().PID; got != pid {
		t.Errorf("pid %d -> %d: restarted", pid, got)
	}
	for _, d := range l.CgroupDirs() {
		if b, err := os.ReadFile(filepath.Join(d, "memory.limit_in_bytes")); err == nil && strings.TrimSpace(string(b)) != "62914560" {
			t.Errorf("memory.limit_in_bytes = %s", b)
		}
	}
	addrs, _ := run(t, "ip", "-n", l.Netns, "-o", "addr", "show", l.PeerIf)
	if !strings.Contains(addrs, fmt.Sprintf("172.16.%d.3/24", l.Subnet)) || strings.Contains(addrs, fmt.Sprintf("172.16.%d.2/24", l.Subnet)) {
		t.Errorf("addresses in the netns:\n%s", addrs)
	}
	l.Addr = fmt.Sprintf("172.16.%d.3", l.Subnet)
	l.Serving()
}

func TestDriftIsShownThenRepaired(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drift func(l *lab)
	}{
		{"veth deleted", func(l *lab) { mustRun(l.T, "ip", "link", "delete", l.HostIf) }},
		{"address changed", func(l *lab) {
			mustRun(l.T, "ip", "-n", l.Netns, "addr", "del", l.Addr+"/24", "dev", l.PeerIf)
			mustRun(l.T, "ip", "-n", l.Netns, "addr", "add", fmt.Sprintf("172.16.%d.9/24", l.Subnet), "dev", l.PeerIf)
		}},
		{"cgroup limit rewritten", func(l *lab) {
			for _, d := range l.CgroupDirs() {
				if strings.Contains(d, "/memory/") {
					if err := os.WriteFile(filepath.Join(d, "memory.limit_in_bytes"), []byte("104857600"), 0); err != nil {
						l.T.Fatal(err)
					}
				}
			}
		}},
		{"process killed", func(l *lab) {
			if err := syscall.Kill(l.get().PID, syscall.SIGKILL); err != nil {
				l.T.Fatal(err)
			}
			for i := 0; i < 500 && l.get().State == "running"; i++ {
				time.Sleep(10 * time.Millisecond) // the supervisor records the exit
			}
		}},
		{"netns removed", func(l *lab) { mustRun(l.T, "ip", "netns", "delete", l.Netns) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			l.Apply()
			l.Serving()
			tc.drift(l)
			code, out := l.Hutch("plan", "-f", l.Manifest)
			if code != 2 {
				t.Errorf("plan after the drift: exit %d, want 2\n%s", code, out)
			}
			out = l.Apply()
			l.Serving()
			if code, out2 := l.Hutch("plan", "-f", l.Manifest); code != 0 {
				t.Errorf("plan after the repair: exit %d, want 0\n%s\nrepair:\n%s", code, out2, out)
			}
			if tc.name == "cgroup limit rewritten" && strings.Contains(out, "process") {
				t.Errorf("a limit repair touched the process:\n%s", out)
			}
			l.Must("delete", "-f", l.Manifest)
			l.Gone()
		})
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func TestCrashAtEveryStep(t *testing.T) {
	kinds := []string{"rootfs", "netns", "veth", "address", "cgroup", "process"}
	type point struct{ verb, fault string }
	var points []point
	for _, when := range []string{"before", "after"} {
		for _, k := range kinds {
			points = append(points, point{"apply", when + ":" + k + ".create"}, point{"delete", when + ":" + k + ".delete"})
		}
		points = append(points, point{"update", when + ":cgroup.update"})
	}
	for _, p := range points {
		t.Run(p.verb+"/"+p.fault, func(t *testing.T) {
			l := newLab(t)
			args := []string{"apply", "-f", l.Manifest}
			switch p.verb {
			case "delete":
				l.Apply()
				args = []string{"delete", "-f", l.Manifest}
			case "update":
				l.Apply()
				l.Write(l.Manifest, func(s string) string { return strings.Replace(s, "memory: 50M", "memory: 70M", 1) })
			}
			code, out := l.HutchEnv([]string{"HUTCH_FAULT=" + p.fault}, args...)
			if code != 137 {
				t.Fatalf("%s with HUTCH_FAULT=%s: exit %d, want 137\n%s", p.verb, p.fault, code, out)
			}
			l.Apply()
			l.Serving()
			if code, out := l.Hutch("plan", "-f", l.Manifest); code != 0 {
				t.Errorf("not converged: plan exit %d\n%s", code, out)
			}
			l.Must("delete", "-f", l.Manifest)
			l.Gone()
		})
	}
}

func TestKill9AtRandomMoments(t *testing.T) {
	l := newLab(t)
	for i := range 20 {
		cmd := exec.Command(hutchBin, "--root", l.Root, "apply", "-f", l.Manifest)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Moments spread over a whole apply, a few ms apart.
		time.Sleep(time.Duration(i*7) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		l.Apply()
		l.Serving()
		l.Must("delete", "-f", l.Manifest)
		l.Gone()
		if t.Failed() {
			t.Fatalf("after a kill at %d ms", i*7)
		}
	}
}

func TestTwoAppliesAtOnce(t *testing.T) {
	l := newLab(t)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i := range 2 {
		wg.Go(func() { codes[i], outs[i] = l.Hutch("apply", "-f", l.Manifest) })
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("exits %v\n%s\n%s", codes, outs[0], outs[1])
	}
	l.Serving()
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 0 {
		t.Errorf("plan after two applies: exit %d\n%s", code, out)
	}
	if code, out := l.Hutch("apply", "--no-wait", "-f", l.Manifest); code != 0 {
		t.Errorf("apply --no-wait with nobody holding the lock: exit %d\n%s", code, out)
	}
}

func TestApplyAndDeleteAtOnce(t *testing.T) {
	for i := range 3 {
		l := newLab(t)
		if i > 0 {
			l.Apply() // then delete and apply race over an existing container
		}
		var wg sync.WaitGroup
		var ca, cd int
		var oa, od string
		wg.Go(func() { ca, oa = l.Hutch("apply", "-f", l.Manifest) })
		wg.Go(func() { cd, od = l.Hutch("delete", "-f", l.Manifest) })
		wg.Wait()
		if ca != 0 || cd != 0 {
			t.Fatalf("apply exit %d, delete exit %d\n%s\n%s", ca, cd, oa, od)
		}
		if left := l.Leftovers(); len(left) > 0 {
			// Applied: everything must be there and serving.
			l.Serving()
			if code, out := l.Hutch("plan", "-f", l.Manifest); code != 0 {
				t.Errorf("in between: plan exit %d\n%s\nleft: %v", code, out, left)
			}
		}
	}
}

func TestBadManifestsChangeNothing(t *testing.T) {
	bad, _ := filepath.Glob("../spec/testdata/bad/*.yaml")
	if len(bad) == 0 {
		t.Skip("spec/testdata/bad has no manifests yet")
	}
	l := newLab(t)
	links := func() string { out, _ := run(t, "ip", "-o", "link", "show"); return linkNames(out) }
	before := []string{links(), strings.Join(testutil.NetnsList(), " ")}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/*")
	for _, f := range bad {
		code, out := l.Hutch("apply", "-f", f)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s", f, code, out)
		}
	}
	after := []string{links(), strings.Join(testutil.NetnsList(), " ")}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("bad manifests changed the host (-before +after):\n%s", diff)
	}
	cg2, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/*")
	if diff := cmp.Diff(cg, cg2); diff != "" {
		t.Errorf("bad manifests changed the cgroups:\n%s", diff)
	}
	if ents, _ := os.ReadDir(filepath.Join(l.Root, "containers")); len(ents) > 0 {
		t.Errorf("bad manifests wrote state: %v", ents)
	}
}

func linkNames(ipOut string) string {
	var names []string
	for _, line := range strings.Split(ipOut, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return strings.Join(names, " ")
}

func TestPreflightConflictCreatesNothing(t *testing.T) {
	l := newLab(t)
	mustRun(t, "ip", "netns", "add", l.Netns) // not hutch's
	code, out := l.Hutch("apply", "-f", l.Manifest)
	if code != 1 || !strings.Contains(out, l.Netns) {
		t.Fatalf("apply over a foreign netns: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(l.HostIf) || len(l.CgroupDirs()) > 0 || len(l.Procs()) > 0 {
		t.Errorf("a conflict created something: %v", l.Leftovers())
	}
	if _, err := os.Stat(filepath.Join(l.Root, "containers", l.Name)); err == nil {
		t.Errorf("a conflict wrote state")
	}
	mustRun(t, "ip", "netns", "delete", l.Netns)
}

func TestPrune(t *testing.T) {
	a := newLab(t)
	b := newLab(t)
	b.Root = a.Root
	// One file with both containers; then the file without b.
	both := filepath.Join(t.TempDir(), "lab.yaml")
	one, _ := os.ReadFile(a.Manifest)
	two, _ := os.ReadFile(b.Manifest)
	os.WriteFile(both, append(append(one, []byte("\n---\n")...), two...), 0o644)
	a.Must("apply", "-f", both)
	a.Serving()
	b.Serving()
	os.WriteFile(both, one, 0o644)
	out := a.Must("apply", "--prune", "-f", both)
	if !strings.Contains(out, "- process "+b.Name) {
		t.Errorf("prune output:\n%s", out)
	}
	b.Gone()
	a.Serving()
}

func TestExecSeesOnlyTheContainerAndTheMemoryTestIsOOMKilled(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	code, out := l.Hutch("exec", l.Name, "--", "ps", "aux")
	if code != 0 {
		t.Fatalf("exec ps aux: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "python3 /server.py") || !strings.Contains(lines[2], "ps aux") {
		t.Errorf("ps aux in the container lists more than the server and ps:\n%s", out)
	}
	// The seed's memory test: 1 MB strings until the 50M limit.
	code, out = l.Hutch("exec", l.Name, "--", "python3", "-c",
		"a = []\nwhile True:\n    a.append(' ' * 1024 * 1024)")
	if code != 137 {
		t.Errorf("memory test: exit %d, want 137 (SIGKILL by the OOM killer)\n%s", code, out)
	}
	for _, d := range l.CgroupDirs() {
		if b, err := os.ReadFile(filepath.Join(d, "memory.oom_control")); err == nil && !strings.Contains(string(b), "oom_kill 1") {
			t.Errorf("%s/memory.oom_control:\n%s", d, b)
		}
	}
	t.Logf("memory test: %s", out)
	// hutch get reports the kill, though the server itself lives on.
	code, out = l.Hutch("get", "-o", "json", l.Name)
	var rows []struct {
		State    string `json:"state"`
		OOMKills uint64 `json:"oomKills"`
	}
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 1 {
		t.Fatalf("get -o json: exit %d, %v\n%s", code, err, out)
	}
	if rows[0].OOMKills != 1 || rows[0].State != "running" {
		t.Errorf("get after the memory test: %+v, want running with 1 OOM kill", rows[0])
	}
}

func TestLockedContainerWaitsOrFailsFast(t *testing.T) {
	l := newLab(t)
	opts := plan.DefaultOptions()
	opts.StateRoot = l.Root
	lock, err := reconcile.NewStore(opts).Lock(l.Name, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	code, out := l.Hutch("apply", "--no-wait", "-f", l.Manifest)
	if code != 1 || !strings.Contains(out, "locked by another hutch") {
		t.Fatalf("apply --no-wait on a locked container: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(l.HostIf) || len(l.CgroupDirs()) > 0 {
		t.Fatalf("apply --no-wait changed the host: %v", l.Leftovers())
	}
	cmd := exec.Command(hutchBin, "--root", l.Root, "apply", "-f", l.Manifest)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	waiting := false
	for !waiting && sc.Scan() {
		waiting = strings.Contains(sc.Text(), "waiting for it to finish")
	}
	if !waiting {
		cmd.Wait()
		t.Fatal("a blocked apply did not say that it waits")
	}
	if testutil.LinkExists(l.HostIf) {
		t.Error("a waiting apply made the veth before it had the lock")
	}
	lock.Unlock()
	for sc.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the waiting apply: %v", err)
	}
	l.Serving()
}

func TestPreflightAddressInUseCreatesNothing(t *testing.T) {
	l := newLab(t)
	// The host end's address, already on a link that is not hutch's.
	other := testutil.Name("hx")
	mustRun(t, "ip", "link", "add", other, "type", "veth", "peer", "name", testutil.Name("hx"))
	t.Cleanup(func() { exec.Command("ip", "link", "delete", other).Run() })
	mustRun(t, "ip", "addr", "add", l.HostAddr+"/24", "dev", other)
	code, out := l.Hutch("apply", "-f", l.Manifest)
	if code != 1 || !strings.Contains(out, l.HostAddr) {
		t.Errorf("apply with its address on a foreign link: exit %d\n%s", code, out)
	}
	if testutil.LinkExists(l.HostIf) || len(l.CgroupDirs()) > 0 || len(l.Procs()) > 0 {
		t.Errorf("a conflict created something: %v", l.Leftovers())
	}
}

func TestRootfsAndNamespaceChangesReplaceTheContainer(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	pid := l.get().PID
	// A changed file of the rootfs.
	l.Write(l.Manifest, func(s string) string {
		return strings.Replace(s, "PORT = 8000", "PORT = 8000  # changed", 1)
	})
	code, out := l.Hutch("plan", "-f", l.Manifest)
	if code != 2 || !strings.Contains(out, "-/+ rootfs/"+l.Name) || !strings.Contains(out, "-/+ process/"+l.Name) {
		t.Errorf("plan of a rootfs change: exit %d\n%s", code, out)
	}
	l.Apply()
	l.Serving()
	if now := l.get().PID; now == pid || now == 0 {
		t.Errorf("pid %d -> %d: the process was not replaced", pid, now)
	}
	// Another network namespace name.
	oldNetns := l.Netns
	t.Cleanup(func() {
		if slices.Contains(testutil.NetnsList(), oldNetns) {
			exec.Command("ip", "netns", "delete", oldNetns).Run()
		}
	})
	l.Netns = testutil.Name("hns")
	l.Write(l.Manifest, func(s string) string {
		return strings.Replace(s, "PORT = 8000", "PORT = 8000  # changed", 1)
	})
	code, out = l.Hutch("plan", "-f", l.Manifest)
	if code != 2 || !strings.Contains(out, "+ netns/"+l.Netns) || !strings.Contains(out, "- netns/"+oldNetns) ||
		!strings.Contains(out, "-/+ process/"+l.Name) {
		t.Errorf("plan of a netns change: exit %d\n%s", code, out)
	}
	l.Apply()
	l.Serving()
	if slices.Contains(testutil.NetnsList(), oldNetns) {
		t.Errorf("the old netns %s is left", oldNetns)
	}
	l.Must("delete", l.Name)
	l.Gone()
}
