//go:build linux

package cgroup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// fakeKernel stands in for cgroupfs on a plain folder tree: mkdir fills a
// new cgroup2 folder with the interface files the kernel would show, given
// what its parent enables in cgroup.subtree_control (the raw "+memory +cpu"
// a write leaves in a plain file reads the same once the '+' is dropped);
// rmdir refuses a cgroup with children or processes, as the kernel does.
type fakeKernel struct{}

func put(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (k fakeKernel) mkdir(dir string) error {
	if err := unix.Mkdir(dir, 0o755); err != nil {
		return err
	}
	sub, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	on := map[string]bool{}
	var names []string
	for _, c := range strings.Fields(string(sub)) {
		c = strings.TrimPrefix(c, "+")
		on[c] = true
		names = append(names, c)
	}
	files := map[string]string{
		"cgroup.controllers":     strings.Join(names, " ") + "\n",
		"cgroup.subtree_control": "\n",
		"cgroup.procs":           "",
		"cgroup.kill":            "",
		"cgroup.freeze":          "0\n",
		"cgroup.events":          "populated 0\nfrozen 0\n",
		"cpu.stat":               "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
	}
	if on["memory"] {
		files["memory.max"] = "max\n"
		files["memory.swap.max"] = "max\n"
		files["memory.current"] = "0\n"
		files["memory.peak"] = "0\n"
		files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
	}
	if on["cpu"] {
		files["cpu.max"] = "max 100000\n"
		files["cpu.weight"] = "100\n"
		files["cpu.stat"] += "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
	}
	if on["cpuset"] {
		files["cpuset.cpus"] = "\n"
		files["cpuset.mems"] = "\n"
	}
	if on["pids"] {
		files["pids.max"] = "max\n"
		files["pids.current"] = "0\n"
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (k fakeKernel) rmdir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return unix.EBUSY
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
		return unix.EBUSY
	}
	return os.RemoveAll(dir)
}

// fakeV2 makes a tree shaped like a pure cgroup2 host and a driver on it.
func fakeV2(t *testing.T, controllers string) (*Driver, string) {
	t.Helper()
	root := t.TempDir()
	put(t, root, "cgroup.controllers", controllers+"\n")
	put(t, root, "cgroup.subtree_control", "\n")
	put(t, root, "cgroup.procs", "1\n")
	d, err := New(root, "")
	if err != nil {
		t.Fatal(err)
	}
	k := fakeKernel{}
	d.mkdir, d.rmdir = k.mkdir, k.rmdir
	return d, root
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestV2Lifecycle(t *testing.T) {
	d, root := fakeV2(t, "cpuset cpu io memory hugetlb pids rdma misc")
	if d.Version() != V2 {
		t.Fatalf("Version() = %s, want v2", d.Version())
	}
	ctx := context.Background()
	want := &plan.Cgroup{
		Container: "web", Path: "hutch/web",
		Memory: plan.CgroupMemory{Limit: 50 << 20, Swap: 80 << 20},
		CPU:    plan.CgroupCPU{Quota: 50000, Period: 100000, Weight: 200, Cpus: "0-1", Mems: "0"},
		Pids:   10,
	}
	if got, err := d.Observe(ctx, want); err != nil || got != nil {
		t.Fatalf("Observe before create = %v, %v", got, err)
	}
	if err := d.Apply(ctx, &plan.Change{Action: plan.Create, After: want}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "hutch/web")
	for file, v := range map[string]string{
		"../../cgroup.subtree_control": "+cpu +cpuset +memory +pids",
		"../cgroup.subtree_control":    "+cpu +cpuset +memory +pids",
		"memory.max":                   "52428800",
		"memory.swap.max":              "31457280", // swap alone: 80M - 50M
		"cpu.max":                      "50000 100000",
		"cpu.weight":                   "200",
		"cpuset.cpus":                  "0-1",
		"cpuset.mems":                  "0",
		"pids.max":                     "10",
	} {
		if got := read(t, filepath.Join(dir, file)); got != v {
			t.Errorf("%s = %q, want %q", file, got, v)
		}
	}
	observeEqual(t, d, want)

	// Lift every limit.
	free := &plan.Cgroup{Container: "web", Path: "hutch/web"}
	if err := d.Apply(ctx, &plan.Change{Action: plan.Update, After: free}); err != nil {
		t.Fatal(err)
	}
	for file, v := range map[string]string{
		"memory.max": "max", "memory.swap.max": "max", "cpu.max": "max 100000",
		"cpu.weight": "100", "cpuset.cpus": "", "pids.max": "max",
	} {
		if got := read(t, filepath.Join(dir, file)); got != v {
			t.Errorf("after lifting: %s = %q, want %q", file, got, v)
		}
	}
	observeEqual(t, d, free)

	// Drift: a limit written by hand.
	put(t, dir, "memory.max", "1048576\n")
	got, err := d.Observe(ctx, free)
	if err != nil {
		t.Fatal(err)
	}
	if fields, force := d.Diff(got, free); len(fields) != 1 || fields[0] != "memory.limit" || force != nil {
		t.Fatalf("Diff = %v, %v; want [memory.limit]", fields, force)
	}

	if err := d.Delete(ctx, free); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "hutch")) {
		t.Fatal("hutch parent still there after deleting its only cgroup")
	}
	if err := d.Delete(ctx, free); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestV2ParentKeptWhileUsed(t *testing.T) {
	d, root := fakeV2(t, "cpu memory pids")
	ctx := context.Background()
	a := &plan.Cgroup{Container: "a", Path: "hutch/a", Pids: 5}
	b := &plan.Cgroup{Container: "b", Path: "hutch/b", Pids: 5}
	for _, cg := range []*plan.Cgroup{a, b} {
		if err := d.Apply(ctx, &plan.Change{Action: plan.Create, After: cg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(root, "hutch/b/pids.max")) {
		t.Fatal("deleting a removed b")
	}
	if err := d.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "hutch")) {
		t.Fatal("parent left after the last cgroup went")
	}
}

func TestV2KillWritesCgroupKill(t *testing.T) {
	d, root := fakeV2(t, "memory")
	cg := &plan.Cgroup{Container: "k", Path: "hutch/k"}
	if err := d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: cg}); err != nil {
		t.Fatal(err)
	}
	if err := d.KillAll("hutch/k"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(root, "hutch/k/cgroup.kill")); got != "1" {
		t.Fatalf("cgroup.kill = %q, want 1", got)
	}
}

func TestV2Stats(t *testing.T) {
	d, root := fakeV2(t, "cpu memory pids")
	cg := &plan.Cgroup{Container: "s", Path: "hutch/s", Memory: plan.CgroupMemory{Limit: 1 << 30}, Pids: 64}
	if err := d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: cg}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "hutch/s")
	put(t, dir, "memory.current", "1000\n")
	put(t, dir, "memory.peak", "5000\n")
	put(t, dir, "memory.events", "low 0\nhigh 0\nmax 9\noom 3\noom_kill 2\noom_group_kill 0\n")
	put(t, dir, "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 40\nnr_throttled 7\nthrottled_usec 250\n")
	put(t, dir, "pids.current", "4\n")
	st, err := d.Stats("hutch/s")
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{MemoryUsage: 1000, MemoryLimit: 1 << 30, MemoryPeak: 5000, CPUUsageNs: 1500000,
		NrPeriods: 40, NrThrottled: 7, ThrottledNs: 250000, PidsCurrent: 4, PidsLimit: 64, OOMKills: 2}
	if *st != want {
		t.Fatalf("Stats = %+v\nwant    %+v", *st, want)
	}
	if n, err := d.OOMKills("hutch/s"); err != nil || n != 2 {
		t.Fatalf("OOMKills = %d, %v; want 2", n, err)
	}
	if f, err := d.OOMFile("hutch/s"); err != nil || f != filepath.Join(dir, "memory.events") {
		t.Fatalf("OOMFile = %q, %v; want %s", f, err, filepath.Join(dir, "memory.events"))
	}
	if _, err := d.OOMFile("other/s"); err == nil {
		t.Fatalf("OOMFile of a cgroup outside the parent: no error")
	}
}

func TestV2MissingController(t *testing.T) {
	d, root := fakeV2(t, "cpu memory")
	cg := &plan.Cgroup{Container: "p", Path: "hutch/p", Pids: 10, CPU: plan.CgroupCPU{Cpus: "0"}}
	err := d.Apply(context.Background(), &plan.Change{Action: plan.Create, After: cg})
	if !errors.Is(err, ErrNoController) {
		t.Fatalf("Apply = %v, want ErrNoController", err)
	}
	for _, c := range []string{"controller pids is missing", "controller cpuset is missing", filepath.Join(root, "cgroup.controllers")} {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not say %q", err, c)
		}
	}
	if exists(filepath.Join(root, "hutch")) {
		t.Fatal("a refused Apply created folders")
	}
}

func TestV2SwapNeedsLimit(t *testing.T) {
	d, _ := fakeV2(t, "memory")
	for _, m := range []plan.CgroupMemory{{Swap: 1 << 20}, {Limit: 2 << 20, Swap: 1 << 20}} {
		cg := &plan.Cgroup{Container: "w", Path: "hutch/w", Memory: m}
		if err := d.Apply(context.Background(), &plan.Change{After: cg}); err == nil {
			t.Errorf("Apply(%+v) = nil, want an error", m)
		}
	}
}
