//go:build linux

package process

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

func TestStartNamespaces(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	st := c.state()
	if st.Status != StatusRunning || !st.Alive() {
		t.Fatalf("state %+v", st)
	}
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "cgroup", "net"} {
		in, err := os.Readlink("/proc/" + itoa(st.PID) + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		host := hostNS(t, ns)
		if in == host {
			t.Errorf("%s namespace %s is the host's", ns, in)
		}
	}
	var want, got unixStat
	statIno(t, c.netns, &want)
	statIno(t, "/proc/"+itoa(st.PID)+"/ns/net", &got)
	if want != got {
		t.Errorf("net namespace %v, want the named netns %v", got, want)
	}
	ps := c.mustExec("ps", "-o", "pid,comm")
	lines := strings.Split(strings.TrimSpace(ps), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "1 sleep") || !strings.Contains(lines[2], "ps") {
		t.Errorf("ps inside shows:\n%s", ps)
	}
	if h := strings.TrimSpace(c.mustExec("hostname")); h != c.name {
		t.Errorf("hostname %q, want %q", h, c.name)
	}
	status := procStatus(c.mustExec("cat", "/proc/1/status"))
	for k, v := range map[string]string{
		"CapEff": "00000000a80425fb", "CapPrm": "00000000a80425fb", "CapBnd": "00000000a80425fb",
		"CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
	} {
		if status[k] != v {
			t.Errorf("/proc/1/status %s: %q, want %q", k, status[k], v)
		}
	}
}

// A user namespace maps the container's root to an unprivileged host uid.
func TestUserNamespace(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{
		spec: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		},
	})
	// The mapped root must be able to reach the rootfs: open the folders
	// on the way for search (as a state root for user namespaces must be).
	for p := filepath.Join(c.bundle, "rootfs"); p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(p, fi.Mode().Perm()|0o011)
		}
	}
	c.start()
	st := c.state()
	if m := readFile(t, "/proc/"+itoa(st.PID)+"/uid_map"); !strings.Contains(strings.Join(strings.Fields(m), " "), "0 200000 65536") {
		t.Errorf("uid_map %q", m)
	}
	in, _ := os.Readlink("/proc/" + itoa(st.PID) + "/ns/user")
	host := hostNS(t, "user")
	if in == host {
		t.Errorf("user namespace is the host's")
	}
	var hostSt unix.Stat_t
	if err := unix.Stat("/proc/"+itoa(st.PID), &hostSt); err != nil || hostSt.Uid != 200000 {
		t.Errorf("the container's init runs as host uid %d (%v), want 200000", hostSt.Uid, err)
	}
	if id := strings.TrimSpace(c.mustExec("id", "-u")); id != "0" {
		t.Errorf("id -u inside: %q", id)
	}
	status := procStatus(c.mustExec("cat", "/proc/1/status"))
	if status["CapEff"] != "00000000a80425fb" || status["Seccomp"] != "2" {
		t.Errorf("status inside: CapEff %s Seccomp %s", status["CapEff"], status["Seccomp"])
	}
}

func TestExecTerminal(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	c.start()
	var out bytes.Buffer
	code, err := c.d.Exec(t.Context(), c.bundle, []string{"sh", "-c", "test -t 0 && test -t 1 && echo a-terminal; exit 3"}, Stdio{Out: &out}, true, nil)
	if err != nil || code != 3 {
		t.Fatalf("exec -t: exit %d, %v", code, err)
	}
	if got := strings.TrimSpace(out.String()); got != "a-terminal" {
		t.Errorf("exec -t printed %q", out.String())
	}
	// Without a terminal, stdin and stdout are not terminals.
	if out, _, code := c.exec("sh", "-c", "test -t 1 || echo no-terminal"); code != 0 || out != "no-terminal\n" {
		t.Errorf("exec without -t: exit %d, %q", code, out)
	}
}

// The C supervisor starts the init itself (sup_clone): the init is its
// child, in the cgroup of every hierarchy supervisor.conf names, from the
// moment the workload runs.
func TestInitIsTheSupervisorsChild(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{memLimit: 64 << 20})
	c.start()
	st := c.state()
	if ppid := procStatus(readFile(t, "/proc/"+itoa(st.PID)+"/status"))["PPid"]; ppid != itoa(st.SupervisorPID) {
		t.Errorf("the init's parent is %s, want the supervisor %d", ppid, st.SupervisorPID)
	}
	files, err := c.cg.ProcsFiles(c.cgPath)
	if err != nil || len(files) == 0 {
		t.Fatalf("ProcsFiles = %v, %v", files, err)
	}
	conf := readFile(t, filepath.Join(c.bundle, confFile))
	for _, f := range files {
		if !strings.Contains(conf, "\ncgroup_procs "+f+"\n") {
			t.Errorf("supervisor.conf does not name %s:\n%s", f, conf)
		}
		if procs := strings.Fields(readFile(t, f)); !slices.Contains(procs, itoa(st.PID)) {
			t.Errorf("%s lists %v, not the init %d", f, procs, st.PID)
		}
	}
}

// A start that fails says why, through the supervisor's report: the
// supervisor's own step (the network namespace to join is gone) and the
// init's (the workload is not in the rootfs).
func TestStartFailureReported(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{})
	gone := filepath.Join(t.TempDir(), "gone")
	for i, ns := range c.spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			c.spec.Linux.Namespaces[i].Path = gone
		}
	}
	c.writeSpec()
	err := c.d.Apply(t.Context(), &plan.Change{Action: plan.Create, After: c.proc})
	if err == nil || !strings.Contains(err.Error(), "network namespace "+gone) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("start with a missing netns: %v", err)
	}
	if st := c.state(); st.Status != StatusFailed || st.Alive() {
		t.Errorf("state %+v, want failed", st)
	}

	c2 := newContainer(t, []string{"/no/such/program"}, containerOpts{})
	err = c2.d.Apply(t.Context(), &plan.Change{Action: plan.Create, After: c2.proc})
	if err == nil || !strings.Contains(err.Error(), "container init:") || !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("start of a missing program: %v", err)
	}
	if st := c2.state(); st.Status != StatusFailed || st.Alive() {
		t.Errorf("state %+v, want failed", st)
	}
}
