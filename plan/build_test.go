package plan

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/spec"
)

// parse reads manifest documents from a string.
func parse(t *testing.T, docs ...string) *spec.Manifest {
	t.Helper()
	cs, errs := spec.Parse("test.yaml", []byte(strings.Join(docs, "\n---\n")))
	if len(errs) > 0 {
		t.Fatalf("parse: %v", errs)
	}
	return &spec.Manifest{Containers: cs}
}

// doc is a container document with the given spec lines (indented by two).
func doc(name string, specLines ...string) string {
	return "apiVersion: hutch/v1alpha1\nkind: Container\nmetadata:\n  name: " + name +
		"\nspec:\n  rootfs:\n    binaries: [/bin/busybox]\n  process:\n    args: [/bin/busybox, sh]\n" +
		strings.Join(specLines, "\n") + "\n"
}

const network = `  network:
    namespace: ns1
    interfaces:
      - name: eth0
        addresses: [10.0.0.2/24]
        host:
          name: h0
          addresses: [10.0.0.1/24]`

func find[T Resource](c *Container) []T {
	var out []T
	for _, r := range c.Resources {
		if v, ok := r.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		docs []string
		want string
	}{
		{"unreachable gateway", []string{doc("a", network, "    routes:\n      - to: default\n        via: 192.168.1.1")},
			"container a: test.yaml:20:14: spec.network.routes[0].via: 192.168.1.1 is in the subnet of no address of any interface"},
		{"route without via or dev", []string{doc("a", network, "    routes:\n      - to: 10.9.0.0/16")},
			"container a: test.yaml:19:9: spec.network.routes[0]: neither via nor dev given"},
		{"default route twice", []string{doc("a", strings.Replace(network, "        host:", "        defaultRoute: true\n        host:", 1),
			"    routes:\n      - to: default\n        via: 10.0.0.1")},
			"container a: route/ns1/0.0.0.0/0 is declared twice"},
		{"default route without host address", []string{doc("a", "  network:\n    interfaces:\n      - name: eth0\n        defaultRoute: true\n        host:\n          name: h0")},
			"container a: test.yaml:13:23: spec.network.interfaces[0].defaultRoute: the host end has no address to route through"},
		{"same name twice", []string{doc("a"), doc("a")},
			"container a: defined twice (test.yaml doc 0 and test.yaml doc 1)"},
		{"host interface shared", []string{doc("a", network), doc("b", strings.Replace(network, "ns1", "ns2", 1))},
			"container b: veth/h0 already belongs to container a"},
		{"seccomp file not read", []string{doc("a", "  security:\n    seccomp: /etc/p.json")},
			"container a: test.yaml:11:14: spec.security.seccomp: profile /etc/p.json was not read (the caller passes it in Options.SeccompProfiles)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(parse(t, tc.docs...), DefaultOptions())
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant  %s", err, tc.want)
			}
		})
	}
}

func TestBuildValues(t *testing.T) {
	m := parse(t, doc("a", network,
		"  resources:\n    memory: 50M\n    cpu: \"0.5\"\n    cpuWeight: 100\n    pids: 10",
		"  security:\n    capabilities:\n      drop: [ALL]\n      add: [net_bind_service, CAP_KILL]"))
	d, err := Build(m, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	c := d.Containers[0]
	cg := find[*Cgroup](c)[0]
	want := Cgroup{Container: "a", Path: "hutch/a", Memory: CgroupMemory{Limit: 52428800},
		CPU: CgroupCPU{Quota: 50000, Period: 100000, Weight: 100}, Pids: 10}
	if d := cmp.Diff(want, *cg); d != "" {
		t.Errorf("cgroup (-want +got):\n%s", d)
	}
	if got := c.Spec.Process.Capabilities.Bounding; !cmp.Equal(got, []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}) {
		t.Errorf("bounding set = %v", got)
	}
	if got := *c.Spec.Linux.Resources.CPU.Quota; got != 50000 {
		t.Errorf("OCI cpu quota = %d, want 50000", got)
	}
	if got := c.Spec.Linux.Namespaces[5]; got.Type != "network" || got.Path != "/var/run/netns/ns1" {
		t.Errorf("network namespace = %+v", got)
	}
	// Build works on a copy: the caller's manifest keeps its blanks.
	if m.Containers[0].Spec.Hostname != "" || m.Containers[0].Spec.Network.Namespace != "ns1" || m.Containers[0].Spec.Logs != nil {
		t.Errorf("Build changed the manifest: %+v", m.Containers[0].Spec)
	}
	proc := find[*Process](c)[0]
	var others []string
	for _, r := range c.Resources {
		if r != Resource(proc) {
			others = append(others, r.ID())
		}
	}
	sortPaths(others)
	if d := cmp.Diff(others, proc.Needs); d != "" {
		t.Errorf("process needs (-every other resource +got):\n%s", d)
	}
}

// TestWeightShares checks that every cpu weight survives runc's conversion
// of the cpu.shares plan writes (weight = 1 + (shares-2)*9999/262142).
func TestWeightShares(t *testing.T) {
	for w := uint64(1); w <= 10000; w++ {
		r := linuxResources(&Cgroup{CPU: CgroupCPU{Weight: w}})
		s := *r.CPU.Shares
		if back := 1 + ((s-2)*9999)/262142; back != w || s < 2 || s > 262144 {
			t.Fatalf("weight %d -> shares %d -> weight %d", w, s, back)
		}
	}
}

// TestDigest: the process digest moves with what needs a restart (args)
// and stays with what the cgroup driver changes in place (memory).
func TestDigest(t *testing.T) {
	digest := func(docs ...string) string {
		d, err := Build(parse(t, docs...), DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		return find[*Process](d.Containers[0])[0].Digest
	}
	mem := "  resources:\n    memory: 50M"
	base := digest(doc("a", mem))
	if base != digest(doc("a", mem)) {
		t.Error("the digest of one manifest changes between builds")
	}
	if base != digest(doc("a", "  resources:\n    memory: 100M")) {
		t.Error("a memory change changes the process digest")
	}
	if base == digest(doc("a", mem, "  hostname: other")) {
		t.Error("a hostname change leaves the process digest")
	}
	if base == digest(strings.Replace(doc("a", mem), "[/bin/busybox]", "[/bin/busybox, /bin/ls]", 1)) {
		t.Error("a rootfs change leaves the process digest")
	}
}

func TestSignalName(t *testing.T) {
	for in, want := range map[string]string{"SIGTERM": "SIGTERM", "term": "SIGTERM", "15": "SIGTERM",
		"9": "SIGKILL", "INT": "SIGINT", "31": "SIGSYS", "40": "40"} {
		if got := signalName(in); got != want {
			t.Errorf("signalName(%q) = %q, want %q", in, got, want)
		}
	}
}
