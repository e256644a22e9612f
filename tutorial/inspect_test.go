//go:build linux

package tutorial

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestInspectNamespaceInodesAreTheKernels(t *testing.T) {
	l := newLab(t)
	l.Must("apply", "-f", l.Manifest)
	l.Serving()
	var in struct {
		Process *struct {
			PID        int               `json:"pid"`
			Namespaces map[string]uint64 `json:"namespaces"`
			Seccomp    int               `json:"seccomp"`
			NoNewPrivs bool              `json:"noNewPrivs"`
			Mounts     []struct {
				Mountpoint string `json:"mountpoint"`
			} `json:"mounts"`
			Processes []struct {
				NSPID int    `json:"nspid"`
				Args  string `json:"args"`
			} `json:"processes"`
		} `json:"process"`
		Netns []struct {
			Name       string `json:"name"`
			Inode      uint64 `json:"inode"`
			Interfaces []struct {
				Name      string   `json:"name"`
				Addresses []string `json:"addresses"`
			} `json:"interfaces"`
		} `json:"netns"`
	}
	out := l.Must("inspect", "-o", "json", l.Name)
	if err := json.Unmarshal([]byte(out), &in); err != nil || in.Process == nil {
		t.Fatalf("inspect -o json: %v\n%s", err, out)
	}
	p := in.Process
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/ns", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), "_for_children") {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.PID, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s:[%d]", e.Name(), p.Namespaces[e.Name()]); link != want {
			t.Errorf("ns %s: inspect %s, /proc says %s", e.Name(), want, link)
		}
		n++
	}
	if n < 6 || len(p.Namespaces) != n {
		t.Errorf("inspect lists %d namespaces, /proc/%d/ns %d", len(p.Namespaces), p.PID, n)
	}
	for _, ns := range []string{"pid", "mnt", "uts", "net"} {
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		if self == fmt.Sprintf("%s:[%d]", ns, p.Namespaces[ns]) {
			t.Errorf("the container shares the host's %s namespace", ns)
		}
	}
	if len(in.Netns) != 1 || in.Netns[0].Inode != p.Namespaces["net"] {
		t.Errorf("netns %+v: want %s with the process's net inode %d", in.Netns, l.Netns, p.Namespaces["net"])
	}
	found := false
	for _, i := range in.Netns[0].Interfaces {
		if i.Name == l.PeerIf && strings.Join(i.Addresses, " ") != "" && strings.HasPrefix(i.Addresses[0], l.Addr+"/24") {
			found = true
		}
	}
	if !found {
		t.Errorf("interfaces %+v: no %s with %s/24", in.Netns[0].Interfaces, l.PeerIf, l.Addr)
	}
	if len(p.Processes) != 1 || p.Processes[0].NSPID != 1 || !strings.Contains(p.Processes[0].Args, "server.py") {
		t.Errorf("processes %+v: want python3 /server.py as pid 1", p.Processes)
	}
	if p.Seccomp != 2 || !p.NoNewPrivs {
		t.Errorf("seccomp %d, no_new_privs %v: want 2 and true", p.Seccomp, p.NoNewPrivs)
	}
	if len(p.Mounts) == 0 || p.Mounts[0].Mountpoint != "/" {
		t.Errorf("mounts: %+v", p.Mounts)
	}
}
