//go:build linux

package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/plan"
)

// mountinfoText renders lines like /proc/self/mountinfo's for cgroup mounts:
// "point fstype options" per entry, placed under root.
func mountinfoText(root string, entries ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "22 1 0:21 / %s rw,nosuid - tmpfs tmpfs rw,mode=755\n", root)
	for i, e := range entries {
		f := strings.Fields(e)
		point := filepath.Join(root, f[0])
		fmt.Fprintf(&b, "%d 22 0:%d / %s rw,nosuid,nodev,noexec,relatime shared:%d - %s %s %s\n",
			30+i, 30+i, point, i+5, f[1], f[1], f[2])
	}
	// A cgroup mount elsewhere (a container's rootfs) is not the host's.
	fmt.Fprintf(&b, "99 22 0:77 / /var/lib/x/rootfs/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
	return b.String()
}

func TestDetectFromMountinfo(t *testing.T) {
	type ctl struct {
		Mount string
		V2    bool
	}
	tests := []struct {
		name    string
		entries []string
		unified string // cgroup.controllers of the cgroup2 mount
		version string
		ctls    map[string]ctl // expected for memory, cpu, cpuacct, pids, hugetlb
		enabled []string       // v2Enabled
	}{{
		name:    "pure v2",
		entries: []string{". cgroup2 rw,nsdelegate,memory_recursiveprot"},
		unified: "cpuset cpu io memory hugetlb pids rdma misc",
		version: V2,
		ctls: map[string]ctl{"memory": {".", true}, "cpu": {".", true}, "cpuacct": {".", true},
			"pids": {".", true}, "hugetlb": {".", true}},
		enabled: []string{"cpu", "cpuset", "memory", "pids"},
	}, {
		name: "hybrid, as this machine",
		entries: []string{"cpu cgroup rw,cpu", "cpuacct cgroup rw,cpuacct", "cpuset cgroup rw,cpuset",
			"memory cgroup rw,memory", "devices cgroup rw,devices", "freezer cgroup rw,freezer",
			"blkio cgroup rw,blkio", "pids cgroup rw,pids", "systemd cgroup rw,name=systemd",
			"unified cgroup2 rw"},
		unified: "hugetlb",
		version: Hybrid,
		ctls: map[string]ctl{"memory": {"memory", false}, "cpu": {"cpu", false}, "cpuacct": {"cpuacct", false},
			"pids": {"pids", false}, "hugetlb": {"unified", true}},
	}, {
		name: "hybrid with memory only in cgroup2",
		entries: []string{"cpu,cpuacct cgroup rw,cpu,cpuacct", "pids cgroup rw,pids",
			"unified cgroup2 rw"},
		unified: "memory hugetlb",
		version: Hybrid,
		ctls: map[string]ctl{"memory": {"unified", true}, "cpu": {"cpu,cpuacct", false},
			"cpuacct": {"cpu,cpuacct", false}, "pids": {"pids", false}},
		enabled: []string{"memory"},
	}, {
		name:    "v1 with cpu and cpuacct mounted together",
		entries: []string{"cpu,cpuacct cgroup rw,cpu,cpuacct", "memory cgroup rw,memory", "pids cgroup rw,pids"},
		version: V1,
		ctls: map[string]ctl{"memory": {"memory", false}, "cpu": {"cpu,cpuacct", false},
			"cpuacct": {"cpu,cpuacct", false}, "pids": {"pids", false}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, e := range tt.entries {
				f := strings.Fields(e)
				dir := filepath.Join(root, f[0])
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if f[1] == "cgroup2" {
					put(t, dir, "cgroup.controllers", tt.unified+"\n")
				}
			}
			mounts, err := ParseMountinfo(strings.NewReader(mountinfoText(root, tt.entries...)))
			if err != nil {
				t.Fatal(err)
			}
			d, err := NewFromMounts(root, "", mounts)
			if err != nil {
				t.Fatal(err)
			}
			if d.Version() != tt.version {
				t.Fatalf("Version() = %s, want %s", d.Version(), tt.version)
			}
			got := map[string]ctl{}
			for c := range tt.ctls {
				if m, v2, ok := d.ctl(c); ok {
					rel, _ := filepath.Rel(root, m)
					got[c] = ctl{rel, v2}
				}
			}
			if diff := cmp.Diff(tt.ctls, got); diff != "" {
				t.Errorf("controllers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.enabled, d.v2Enabled()); diff != "" {
				t.Errorf("v2Enabled (-want +got):\n%s", diff)
			}
			for _, m := range d.mounts() {
				if !strings.HasPrefix(m, root) {
					t.Errorf("mount %s is outside the root %s", m, root)
				}
			}
		})
	}
}

func TestDetectNothing(t *testing.T) {
	root := t.TempDir()
	_, err := NewFromMounts(root, "", nil)
	if err == nil || !strings.Contains(err.Error(), root) {
		t.Fatalf("NewFromMounts on an empty root = %v, want an error naming the root", err)
	}
}

func TestDetectFromShape(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"memory", "cpu,cpuacct", "pids", "cpuset", "freezer"} {
		if err := os.Mkdir(filepath.Join(root, c), 0o755); err != nil {
			t.Fatal(err)
		}
		put(t, filepath.Join(root, c), "tasks", "")
	}
	if err := os.Symlink("cpu,cpuacct", filepath.Join(root, "cpu")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "unified"), 0o755); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(root, "unified"), "cgroup.controllers", "hugetlb\n")
	d, err := New(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Version() != Hybrid {
		t.Fatalf("Version() = %s, want hybrid", d.Version())
	}
	want := []string{"memory", "cpu,cpuacct", "cpuset", "pids", "freezer", "unified"}
	var got []string
	for _, m := range d.mounts() {
		got = append(got, filepath.Base(m))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("mounts = %v, want %v", got, want)
	}
}

func TestNewRejectsParent(t *testing.T) {
	for _, p := range []string{"/hutch", "../hutch", "a/../../b"} {
		if _, err := NewFromMounts("/sys/fs/cgroup", p, []Mount{{Point: "/sys/fs/cgroup", FSType: "cgroup2"}}); err == nil {
			t.Errorf("parent %q accepted", p)
		}
	}
}

func TestWeightShares(t *testing.T) {
	for _, c := range []struct{ w, s uint64 }{{1, 2}, {100, 1024}, {10000, 262144}, {0, 0}} {
		if got := WeightToShares(c.w); got != c.s {
			t.Errorf("WeightToShares(%d) = %d, want %d", c.w, got, c.s)
		}
		if got := SharesToWeight(c.s); got != c.w {
			t.Errorf("SharesToWeight(%d) = %d, want %d", c.s, got, c.w)
		}
	}
	// Every weight survives the trip through cpu.shares, so Observe on v1
	// reads back the weight Apply wrote.
	for w := uint64(1); w <= 10000; w++ {
		if back := SharesToWeight(WeightToShares(w)); back != w {
			t.Fatalf("weight %d -> shares %d -> weight %d", w, WeightToShares(w), back)
		}
	}
}

func TestCPUList(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "0": "0", "0,1": "0-1", "1,0": "0-1", "0-3,5": "0-3,5", "0-2,1-4,7,9-10": "0-4,7,9-10", " 3 ": "3", "x": "x",
	} {
		if got := cpuList(in); got != want {
			t.Errorf("cpuList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiff(t *testing.T) {
	d := &Driver{}
	base := plan.Cgroup{Container: "c", Path: "hutch/c"}
	with := func(f func(*plan.Cgroup)) *plan.Cgroup {
		c := base
		f(&c)
		return &c
	}
	tests := []struct {
		name      string
		got, want *plan.Cgroup
		fields    []string
		force     []string
	}{
		{"equal", &base, &base, nil, nil},
		{"defaults as the kernel reads them", with(func(c *plan.Cgroup) {
			c.CPU.Period, c.CPU.Weight = 100000, 100
		}), &base, nil, nil},
		{"limit rounded to pages", with(func(c *plan.Cgroup) { c.Memory.Limit = 49999872 }),
			with(func(c *plan.Cgroup) { c.Memory.Limit = 50000000 }), nil, nil},
		{"swap -1 is no limit", &base, with(func(c *plan.Cgroup) { c.Memory.Swap = -1 }), nil, nil},
		{"cpu list syntax", with(func(c *plan.Cgroup) { c.CPU.Cpus = "0-1" }),
			with(func(c *plan.Cgroup) { c.CPU.Cpus = "1,0" }), nil, nil},
		{"memory limit changed", with(func(c *plan.Cgroup) { c.Memory.Limit = 100 << 20 }),
			with(func(c *plan.Cgroup) { c.Memory.Limit = 50 << 20 }), []string{"memory.limit"}, nil},
		{"everything changed", &base, with(func(c *plan.Cgroup) {
			c.Memory = plan.CgroupMemory{Limit: 1 << 20, Swap: 2 << 20}
			c.CPU = plan.CgroupCPU{Quota: 5000, Period: 10000, Weight: 5, Cpus: "1", Mems: "0"}
			c.Pids = 3
		}), []string{"memory.limit", "memory.swap", "cpu.quota", "cpu.period", "cpu.weight", "cpu.cpus", "cpu.mems", "pids"}, nil},
		{"another cgroup", &base, with(func(c *plan.Cgroup) { c.Path = "hutch/d" }), []string{"path"}, []string{"path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, force := d.Diff(tt.got, tt.want)
			if diff := cmp.Diff(tt.fields, fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.force, force); diff != "" {
				t.Errorf("force (-want +got):\n%s", diff)
			}
		})
	}
}
