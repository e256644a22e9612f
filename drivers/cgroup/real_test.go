//go:build linux

package cgroup

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// realDriver returns a driver on the host's /sys/fs/cgroup whose parent is a
// unique test cgroup, removed (with anything left in it) when the test ends.
func realDriver(t testing.TB) *Driver {
	t.Helper()
	testutil.RequireRoot(t)
	parent := testutil.Name("hutcht")
	d, err := New("", parent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupParent(t, d) })
	return d
}

// cleanupParent deletes every cgroup left under the test parent, then the
// parent itself.
func cleanupParent(t testing.TB, d *Driver) {
	seen := map[string]bool{}
	for _, m := range d.mounts() {
		ents, _ := os.ReadDir(filepath.Join(m, d.parent))
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				if err := d.remove(context.Background(), d.parent+"/"+e.Name()); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	}
	for _, m := range d.mounts() {
		if err := unix.Rmdir(filepath.Join(m, d.parent)); err != nil && err != unix.ENOENT {
			t.Errorf("cleanup: rmdir %s: %v", filepath.Join(m, d.parent), err)
		}
	}
}

// kfile reads a controller's file as the kernel shows it.
func kfile(t testing.TB, d *Driver, ctrl, path, name string) string {
	t.Helper()
	dir, ok := d.Dirs(path)[ctrl]
	if !ok {
		t.Fatalf("no %s controller", ctrl)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestDetectRealHost(t *testing.T) {
	d, err := New("", "")
	if err != nil {
		t.Fatal(err)
	}
	// Ask the kernel independently: the file system type of the root, and of
	// root/unified.
	want := V1
	var st unix.Statfs_t
	if err := unix.Statfs(DefaultRoot, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = V2
	} else if unix.Statfs(filepath.Join(DefaultRoot, "unified"), &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = Hybrid
	}
	if d.Version() != want {
		t.Fatalf("Version() = %s, the kernel's mounts say %s", d.Version(), want)
	}
	t.Logf("this host is %s; dirs of hutch/x: %v", d.Version(), d.Dirs("hutch/x"))
	if want == Hybrid {
		// Every limit controller this host has in v1 must be used from v1.
		for _, c := range []string{"memory", "cpu", "pids", "cpuset"} {
			if _, err := os.Stat(filepath.Join(DefaultRoot, c, "tasks")); err != nil {
				continue
			}
			if _, v2, ok := d.ctl(c); !ok || v2 {
				t.Errorf("%s: ok=%v v2=%v, want v1", c, ok, v2)
			}
		}
	}
}

func TestLifecycle(t *testing.T) {
	d := realDriver(t)
	ctx := context.Background()
	path := d.parent + "/" + testutil.Name("web")
	want := &plan.Cgroup{
		Container: "web", Path: path,
		Memory: plan.CgroupMemory{Limit: 50 << 20, Swap: 50 << 20},
		CPU:    plan.CgroupCPU{Quota: 50000, Period: 100000, Weight: 200, Cpus: "0", Mems: "0"},
		Pids:   10,
	}
	if !d.hasSwapAccounting(path) {
		want.Memory.Swap = 0
	}
	got, err := d.Observe(ctx, want)
	if err != nil || got != nil {
		t.Fatalf("Observe before create = %v, %v; want nil, nil", got, err)
	}
	if err := d.Apply(ctx, &plan.Change{Action: plan.Create, After: want}); err != nil {
		t.Fatal(err)
	}
	checkKernel(t, d, want)
	observeEqual(t, d, want)

	// Raise, lift limits, then lower again: v1's memsw ordering both ways.
	up := *want
	up.Memory = plan.CgroupMemory{Limit: 100 << 20, Swap: 200 << 20}
	if want.Memory.Swap == 0 {
		up.Memory.Swap = 0
	}
	up.CPU = plan.CgroupCPU{Period: 200000, Weight: 0}
	up.Pids = 0
	for _, step := range []*plan.Cgroup{&up, want} {
		if err := d.Apply(ctx, &plan.Change{Action: plan.Update, Before: got, After: step}); err != nil {
			t.Fatal(err)
		}
		checkKernel(t, d, step)
		observeEqual(t, d, step)
	}

	// A limit written by hand is drift.
	memFile, lim := "memory.limit_in_bytes", "31457280"
	if _, v2, _ := d.ctl("memory"); v2 {
		memFile = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(d.Dirs(path)["memory"], memFile), []byte(lim), 0); err != nil {
		t.Fatal(err)
	}
	got, err = d.Observe(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if fields, force := d.Diff(got, want); len(fields) != 1 || fields[0] != "memory.limit" || len(force) != 0 {
		t.Fatalf("Diff after a hand-written limit = %v, %v; want [memory.limit], []", fields, force)
	}

	// A cgroup removed by hand from one hierarchy is absent, and Apply
	// completes it.
	if err := unix.Rmdir(d.Dirs(path)["pids"]); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Observe(ctx, want); err != nil || got != nil {
		t.Fatalf("Observe of a half-made cgroup = %v, %v; want nil, nil", got, err)
	}
	if err := d.Apply(ctx, &plan.Change{Action: plan.Create, After: want}); err != nil {
		t.Fatal(err)
	}
	observeEqual(t, d, want)

	if err := d.Delete(ctx, want); err != nil {
		t.Fatal(err)
	}
	for c, dir := range d.Dirs(path) {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %s still there after Delete (%v)", c, dir, err)
		}
	}
	// The parent carries hutch's prefix and is empty: it went too.
	for _, m := range d.mounts() {
		if _, err := os.Stat(filepath.Join(m, d.parent)); !os.IsNotExist(err) {
			t.Errorf("parent %s still there after Delete (%v)", filepath.Join(m, d.parent), err)
		}
	}
	if err := d.Delete(ctx, want); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if got, err := d.Observe(ctx, want); err != nil || got != nil {
		t.Fatalf("Observe after delete = %v, %v; want nil, nil", got, err)
	}
}

func (d *Driver) hasSwapAccounting(path string) bool {
	m, v2, ok := d.ctl("memory")
	if !ok {
		return false
	}
	if v2 {
		return exists(filepath.Join(m, "memory.swap.max")) || d.version == V2
	}
	return exists(filepath.Join(m, "memory.memsw.limit_in_bytes"))
}

func observeEqual(t *testing.T, d *Driver, want *plan.Cgroup) {
	t.Helper()
	got, err := d.Observe(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("Observe = nil after Apply")
	}
	if fields, force := d.Diff(got, want); len(fields) != 0 || len(force) != 0 {
		t.Fatalf("Diff(observed, applied) = %v, %v; observed %+v, applied %+v", fields, force, got, want)
	}
}

// checkKernel compares the kernel's files with what cg asks for, without
// going through Observe.
func checkKernel(t *testing.T, d *Driver, cg *plan.Cgroup) {
	t.Helper()
	eq := func(ctrl, file, want string) {
		t.Helper()
		if got := kfile(t, d, ctrl, cg.Path, file); got != want {
			t.Errorf("%s/%s = %q, want %q", ctrl, file, got, want)
		}
	}
	i := strconv.FormatInt
	_, v2, _ := d.ctl("memory")
	if v2 {
		eq("memory", "memory.max", maxOr(cg.Memory.Limit))
	} else {
		lim := "9223372036854771712"
		if cg.Memory.Limit > 0 {
			lim = i(cg.Memory.Limit, 10)
		}
		eq("memory", "memory.limit_in_bytes", lim)
		if cg.Memory.Swap > 0 {
			eq("memory", "memory.memsw.limit_in_bytes", i(cg.Memory.Swap, 10))
		}
	}
	period := cg.CPU.Period
	if period == 0 {
		period = 100000
	}
	if _, v2, _ := d.ctl("cpu"); v2 {
		eq("cpu", "cpu.max", maxOr(cg.CPU.Quota)+" "+strconv.FormatUint(period, 10))
	} else {
		q := "-1"
		if cg.CPU.Quota > 0 {
			q = i(cg.CPU.Quota, 10)
		}
		eq("cpu", "cpu.cfs_quota_us", q)
		eq("cpu", "cpu.cfs_period_us", strconv.FormatUint(period, 10))
		sh := uint64(1024)
		if cg.CPU.Weight != 0 {
			sh = WeightToShares(cg.CPU.Weight)
		}
		eq("cpu", "cpu.shares", strconv.FormatUint(sh, 10))
	}
	if cg.CPU.Cpus != "" {
		eq("cpuset", "cpuset.cpus", cg.CPU.Cpus)
	} else if _, v2, _ := d.ctl("cpuset"); !v2 {
		parent := kfile(t, d, "cpuset", filepath.Dir(cg.Path), "cpuset.cpus")
		eq("cpuset", "cpuset.cpus", parent)
	}
	eq("pids", "pids.max", maxOr(cg.Pids))
}
