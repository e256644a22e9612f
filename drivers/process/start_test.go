//go:build linux

package process

import (
	"os"
	"strings"
	"testing"
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
		host, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
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
