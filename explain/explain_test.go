package explain

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"hutch/plan"
	"hutch/spec"
)

// seed builds the desired state of manifests/webserver.yaml.
func seed(t *testing.T) *plan.Desired {
	t.Helper()
	m, err := spec.LoadAndValidate([]string{"../manifests/webserver.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := plan.Build(m, plan.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var v1 = Host{CgroupDirs: map[string]map[string]string{"hutch/webserver": {
	"memory": "/sys/fs/cgroup/memory/hutch/webserver", "cpu": "/sys/fs/cgroup/cpu/hutch/webserver",
	"pids": "/sys/fs/cgroup/pids/hutch/webserver",
}}}

var v2 = Host{CgroupV2: true, CgroupDirs: map[string]map[string]string{"hutch/webserver": {
	"unified": "/sys/fs/cgroup/hutch/webserver",
}}}

func TestEachStepSaysWhatTheSeedGotWrongThere(t *testing.T) {
	d := seed(t)
	p, err := plan.NewPlan(plan.Creates(d.Resources()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[plan.Kind]struct {
		shell []string
		seed  []string
	}{
		plan.KindNetns:  {shell: []string{"ip netns add container_ns", "ip -n container_ns link set lo up"}},
		plan.KindVeth:   {shell: []string{"ip link add veth0 type veth peer name veth1 netns container_ns"}},
		plan.KindCgroup: {shell: []string{"echo 52428800 > /sys/fs/cgroup/memory/hutch/webserver/memory.limit_in_bytes", "echo 100000 > /sys/fs/cgroup/cpu/hutch/webserver/cpu.cfs_quota_us"}, seed: []string{seedCgroup, seedOOMTest}},
		plan.KindRootfs: {seed: []string{seedLdd, seedPython}},
		plan.KindProcess: {
			shell: []string{"exec nsenter --net=/var/run/netns/container_ns unshare --fork", "pivot_root . .oldroot", "mount -t proc"},
			seed:  []string{seedUnshare, seedNet, seedProc},
		},
	}
	for _, c := range p.Changes {
		s := Explain(c, d.Container(c.Resource().Owner()), v1)
		if s.Kernel == "" {
			t.Errorf("%s: no kernel operation", c.ID)
		}
		w, ok := want[c.Kind]
		if !ok {
			continue
		}
		all := strings.Join(s.Shell, "\n")
		for _, line := range w.shell {
			if !strings.Contains(all, line) {
				t.Errorf("%s: shell lacks %q:\n%s", c.ID, line, all)
			}
		}
		seeds := strings.Join(s.Seed, "\n")
		for _, line := range w.seed {
			if !strings.Contains(seeds, line) {
				t.Errorf("%s: seed notes lack %q:\n%s", c.ID, line, seeds)
			}
		}
		for _, line := range s.Seed {
			if strings.Contains(line, "\n") {
				t.Errorf("%s: a seed note of more than one line: %q", c.ID, line)
			}
		}
	}
}

func TestCgroupV2Writes(t *testing.T) {
	d := seed(t)
	var cg *plan.Cgroup
	for _, r := range d.Resources() {
		if c, ok := r.(*plan.Cgroup); ok {
			cg = c
		}
	}
	got := strings.Join(cgroupUp(cg, v2), "\n")
	for _, want := range []string{
		"echo '+memory +cpu +pids' > /sys/fs/cgroup/cgroup.subtree_control",
		"echo '+memory +cpu +pids' > /sys/fs/cgroup/hutch/cgroup.subtree_control",
		"mkdir -p /sys/fs/cgroup/hutch/webserver",
		"echo 52428800 > /sys/fs/cgroup/hutch/webserver/memory.max",
		"echo '100000 100000' > /sys/fs/cgroup/hutch/webserver/cpu.max",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("v2 cgroup lacks %q:\n%s", want, got)
		}
	}
}

func TestScriptIsValidBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	d := seed(t)
	h := v1
	h.Files = map[string][]File{"webserver": {
		{Path: "/", Kind: "dir", Mode: 0o755},
		{Path: "/usr/bin", Kind: "dir", Mode: 0o755},
		{Path: "/usr/bin/bash", Kind: "file", Src: "/usr/bin/bash", Mode: 0o755},
		{Path: "/bin", Kind: "symlink", Target: "usr/bin"},
		{Path: "/server.py", Kind: "inline", Mode: 0o644},
	}}
	var b bytes.Buffer
	if err := Script(&b, d, h); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = strings.NewReader(s)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s\n%s", err, out, s)
	}
	for _, want := range []string{"up_webserver() {", "down_webserver() {", "ip netns delete container_ns", "ip link delete veth0",
		"cat > /var/lib/hutch/containers/webserver/rootfs/server.py <<'HUTCH_EOF'\nimport http.server", "cp -a /usr/bin/bash /var/lib/hutch/containers/webserver/rootfs/usr/bin/bash"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
}

func TestUpdateShowsOnlyTheChangedLimit(t *testing.T) {
	cg := &plan.Cgroup{Container: "webserver", Path: "hutch/webserver",
		Memory: plan.CgroupMemory{Limit: 62914560}, CPU: plan.CgroupCPU{Quota: 100000, Period: 100000}}
	s := Explain(&plan.Change{ID: cg.ID(), Kind: plan.KindCgroup, Action: plan.Update, After: cg, Fields: []string{"memory.limit"}}, nil, v1)
	want := []string{"echo 62914560 > /sys/fs/cgroup/memory/hutch/webserver/memory.limit_in_bytes"}
	if strings.Join(s.Shell, "\n") != strings.Join(want, "\n") {
		t.Errorf("update of memory.limit: %q, want %q", s.Shell, want)
	}
}
