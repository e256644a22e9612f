//go:build linux

package process

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Kernel is a process as the kernel shows it in /proc, read by Inspect for
// `hutch inspect`: nothing in it comes from hutch's own records.
type Kernel struct {
	PID int `json:"pid"`
	// Namespaces maps each namespace type (the names in /proc/PID/ns: net,
	// pid, mnt, uts, ipc, cgroup, user, time) to its inode number, the
	// number in "net:[4026532305]". Two processes share a namespace when
	// the numbers are equal.
	Namespaces map[string]uint64 `json:"namespaces"`
	// Capabilities are the Cap* lines of /proc/PID/status, as names.
	Capabilities Capabilities `json:"capabilities"`
	NoNewPrivs   bool         `json:"noNewPrivs"` // NoNewPrivs: in /proc/PID/status
	// Seccomp is the Seccomp: line of /proc/PID/status: 0 disabled,
	// 1 strict, 2 filter; SeccompFilters counts the filters attached.
	Seccomp        int `json:"seccomp"`
	SeccompFilters int `json:"seccompFilters"`
	// Cgroups are the lines of /proc/PID/cgroup: hierarchy -> path.
	Cgroups map[string]string `json:"cgroups"`
	// Mounts are /proc/PID/mountinfo: the mount table of the process's
	// mount namespace, paths as seen from its root.
	Mounts []Mount `json:"mounts"`
	// Processes are every process in the same pid namespace (same
	// /proc/N/ns/pid inode), the process itself first, ordered by pid.
	Processes []Proc `json:"processes"`
}

// Capabilities are the five capability sets of a thread.
type Capabilities struct {
	Effective   []string `json:"effective"`
	Permitted   []string `json:"permitted"`
	Inheritable []string `json:"inheritable"`
	Bounding    []string `json:"bounding"`
	Ambient     []string `json:"ambient"`
}

// Mount is one line of /proc/PID/mountinfo.
type Mount struct {
	ID         int    `json:"id"`
	Parent     int    `json:"parent"`
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype"`
	Source     string `json:"source"`
	Options    string `json:"options"`
	Root       string `json:"root"` // the folder of the file system mounted there
}

// Proc is one process of the container.
type Proc struct {
	PID   int    `json:"pid"`   // on the host
	NSPID int    `json:"nspid"` // inside the container's pid namespace (NSpid: of /proc/PID/status)
	PPID  int    `json:"ppid"`  // on the host
	State string `json:"state"` // R, S, D, Z...
	Args  string `json:"args"`  // /proc/PID/cmdline, or [comm] when empty
}

// Inspect reads a running process from /proc: its namespaces, capabilities,
// no_new_privs and seccomp mode, cgroups, mount table and the processes of
// its pid namespace.
func (d *Driver) Inspect(pid int) (*Kernel, error) {
	k := &Kernel{PID: pid, Namespaces: map[string]uint64{}, Cgroups: map[string]string{}}
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/ns")
	if err != nil {
		return nil, fmt.Errorf("inspect %d: %w", pid, err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), "_for_children") {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(dir+"/ns/"+e.Name(), &st); err != nil {
			return nil, fmt.Errorf("inspect %d: ns %s: %w", pid, e.Name(), err)
		}
		k.Namespaces[e.Name()] = st.Ino
	}
	status, err := readStatus(pid)
	if err != nil {
		return nil, fmt.Errorf("inspect %d: %w", pid, err)
	}
	k.Capabilities = Capabilities{
		Effective: maskNames(status["CapEff"]), Permitted: maskNames(status["CapPrm"]),
		Inheritable: maskNames(status["CapInh"]), Bounding: maskNames(status["CapBnd"]),
		Ambient: maskNames(status["CapAmb"]),
	}
	k.NoNewPrivs = status["NoNewPrivs"] == "1"
	k.Seccomp, _ = strconv.Atoi(status["Seccomp"])
	k.SeccompFilters, _ = strconv.Atoi(status["Seccomp_filters"])
	cg, err := os.ReadFile(dir + "/cgroup")
	if err != nil {
		return nil, fmt.Errorf("inspect %d: %w", pid, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 {
			name := f[1]
			if name == "" {
				name = "unified"
			}
			k.Cgroups[name] = f[2]
		}
	}
	mf, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("inspect %d: %w", pid, err)
	}
	mi, err := mountinfo.GetMountsFromReader(mf, nil)
	mf.Close()
	if err != nil {
		return nil, fmt.Errorf("inspect %d: %w", pid, err)
	}
	for _, m := range mi {
		k.Mounts = append(k.Mounts, Mount{ID: m.ID, Parent: m.Parent, Mountpoint: m.Mountpoint,
			FSType: m.FSType, Source: m.Source, Options: m.Options, Root: m.Root})
	}
	k.Processes, err = pidnsProcs(pid, k.Namespaces["pid"])
	if err != nil {
		return nil, fmt.Errorf("inspect %d: %w", pid, err)
	}
	return k, nil
}

// readStatus reads /proc/PID/status as key -> value.
func readStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// maskNames turns a capability mask as /proc/PID/status prints it (hex) into
// capability names ("chown", "net_bind_service").
func maskNames(hex string) []string {
	mask, err := strconv.ParseUint(hex, 16, 64)
	names := []string{}
	if err != nil {
		return names
	}
	for _, c := range capability.ListKnown() {
		if c < 64 && mask&(1<<uint(c)) != 0 {
			names = append(names, c.String())
		}
	}
	return names
}

// pidnsProcs lists the processes whose pid namespace has inode ns, first
// the process pid, then by pid.
func pidnsProcs(pid int, ns uint64) ([]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/pid", &st) != nil || st.Ino != ns {
			continue
		}
		s, err := readStatus(n)
		if err != nil {
			continue // ended meanwhile
		}
		p := Proc{PID: n, State: strings.Fields(s["State"] + " ?")[0]}
		p.PPID, _ = strconv.Atoi(s["PPid"])
		if f := strings.Fields(s["NSpid"]); len(f) > 0 {
			p.NSPID, _ = strconv.Atoi(f[len(f)-1])
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		p.Args = strings.TrimSpace(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		if p.Args == "" {
			p.Args = "[" + s["Name"] + "]"
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].PID == pid) != (out[j].PID == pid) {
			return out[i].PID == pid
		}
		return out[i].PID < out[j].PID
	})
	return out, nil
}
