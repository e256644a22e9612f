// Package explain says, for each change of a plan, which kernel operation
// hutch performs and the shell command a person could type to do the same,
// and where the seed tutorial's own command for that step is wrong. It also
// writes all of them as one runnable bash script with an up and a down part
// (Script). It is pure: the facts of the host it needs (cgroup folders, the
// rootfs's resolved file list) are given to it in Host; it reads nothing.
package explain

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/plan"
)

// Host holds what only the host can answer and the drivers report.
type Host struct {
	// CgroupV2 is set when the controllers hutch uses are on a cgroup2
	// mount (v2 files: memory.max, cpu.max); false on v1 and hybrid.
	CgroupV2 bool
	// CgroupDirs maps a cgroup path ("hutch/web") to the folder of each
	// controller (cgroupdrv.Driver.Dirs).
	CgroupDirs map[string]map[string]string
	// Files maps a container to its resolved rootfs (fsdrv.Driver.Files);
	// a container missing here is explained without its file list.
	Files map[string][]File
	// NetnsDir is where named network namespaces are mounted.
	NetnsDir string
}

// File is one object of a resolved rootfs (see fsdrv.RootfsFile).
type File struct {
	Path   string
	Kind   string // dir, file, symlink, hardlink, inline
	Src    string
	Mode   uint32
	Target string
}

// Step is the explanation of one change.
type Step struct {
	ID string `json:"id"`
	// Kernel names the kernel interfaces the driver uses.
	Kernel string `json:"kernel"`
	// Shell are commands that do the same by hand, as a person would type
	// them (long lists shortened: see Script for every line).
	Shell []string `json:"shell"`
	// Seed says, one line each, where the seed tutorial's command for this
	// step is wrong.
	Seed []string `json:"seed,omitempty"`
}

// Seed's mistakes, each said once at the step it concerns.
const (
	seedLdd      = "seed: `ldd /bin/bash | grep -o '/lib.\\.[0-9]'` matches almost nothing (it wants /lib + one char + '.' + digit); hutch reads each ELF's DT_NEEDED and copies every library ld.so loads"
	seedPython   = "seed: `cp -r /usr/lib/python3` misses the versioned standard library (/usr/lib/python3.X, where os.py lives); hutch asks the interpreter for sys.executable and its stdlib folders"
	seedCgroup   = "seed: makes these cgroups but never writes a pid into their cgroup.procs, so its container runs without limits; the process step below joins them first"
	seedOOMTest  = "seed: its memory test `x.append(\" \"  1000000)` is a syntax error; `x.append(\" \" * 1000000)` is meant, and the limit above makes the OOM killer end it"
	seedUnshare  = "seed: `unshare --pid` without --fork runs its command in the old pid namespace; only that command's children enter the new one (and the first one to exit takes pid 1 with it)"
	seedNet      = "seed: `unshare --net=/var/run/netns/container_ns` makes a NEW network namespace and bind-mounts it over that path instead of joining it; `nsenter --net=PATH` joins"
	seedProc     = "seed: mounts proc before the pid namespace exists (and outside the new mount namespace), so /proc shows the host's processes; mount it after unshare --pid --fork, inside"
	seedChroot   = "seed: chroot leaves the host's root reachable (a chroot can be escaped); pivot_root moves the old root away and it is unmounted"
	seedCapsNote = "seed: keeps every capability; hutch keeps Docker's default set, bounding set included, and sets no_new_privs"
)

// Explain returns the step of one change. ctr is the desired container the
// change belongs to (its OCI config drives the process step); it may be nil
// for a delete.
func Explain(c *plan.Change, ctr *plan.Container, h Host) Step {
	s := Step{ID: c.ID}
	if c.Action == plan.NoOp {
		s.Kernel = "nothing: the kernel already has it"
		return s
	}
	if c.Action == plan.Delete || c.Half == plan.HalfDelete {
		s.Kernel, s.Shell = teardown(c.Resource(), h)
		return s
	}
	if c.Action == plan.Update {
		return update(c, h)
	}
	if k, sh, ok := labUp(c.After, h); ok {
		s.Kernel, s.Shell = k, sh
		return s
	}
	switch r := c.After.(type) {
	case *plan.Rootfs:
		s.Kernel = "files copied into a content-addressed layer, then mount(2) of an overlay (lowerdir=layer, upperdir, workdir) at " + path.Join(r.Bundle, "rootfs")
		s.Shell = shorten(rootfsUp(r, h.Files[r.Container], path.Join(r.Bundle, "rootfs")), 12)
		if r.Python != "" {
			s.Seed = append(s.Seed, seedLdd, seedPython)
		} else if len(r.Binaries) > 0 {
			s.Seed = append(s.Seed, seedLdd)
		}
	case *plan.Netns:
		s.Kernel = "unshare(CLONE_NEWNET) on one thread, bind mount of /proc/thread-self/ns/net on " + netnsPath(h, r.Name) + ", RTM_NEWLINK lo up"
		s.Shell = netnsUp(r)
	case *plan.Veth:
		s.Kernel = "RTM_NEWLINK type veth with the peer made inside the namespace (IFLA_NET_NS_FD), alias " + "hutch:" + r.Container + " (IFLA_IFALIAS), both ends IFF_UP"
		s.Shell = vethUp(r)
	case *plan.Address:
		s.Kernel = "RTM_NEWADDR " + r.CIDR + " on " + r.Link + where(r.Netns)
		s.Shell = addressUp(r)
	case *plan.Route:
		s.Kernel = "RTM_NEWROUTE " + r.Dst + " in the main table" + where(r.Netns)
		s.Shell = routeUp(r)
	case *plan.Cgroup:
		s.Kernel = "mkdir(2) of the cgroup in each hierarchy, then write(2) of each limit into its file"
		s.Shell = cgroupUp(r, h)
		s.Seed = append(s.Seed, seedCgroup)
		if r.Memory.Limit > 0 {
			s.Seed = append(s.Seed, seedOOMTest)
		}
	case *plan.Process:
		s.Kernel = "a supervisor, then clone(2) with CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWCGROUP after setns(2) into the netns; the child writes its pid to cgroup.procs, mounts proc, sysfs and /dev, pivot_root(2), umount2(old root, MNT_DETACH), sethostname(2), capset(2) and PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, seccomp(SECCOMP_SET_MODE_FILTER), closes every fd above 2, execve(2)"
		if ctr != nil && ctr.Spec != nil {
			s.Shell = processUp(ctr, r, h)
		}
		s.Seed = append(s.Seed, seedUnshare, seedNet, seedProc, seedChroot, seedCapsNote)
	}
	return s
}

// update explains an in-place change: only the fields that differ.
func update(c *plan.Change, h Host) Step {
	s := Step{ID: c.ID}
	switch r := c.After.(type) {
	case *plan.Cgroup:
		s.Kernel = "write(2) of the changed limits into the cgroup's files"
		s.Shell = changedLimits(cgroupLimits(r, h), c.Fields)
	case *plan.Address:
		s.Kernel = "RTM_NEWADDR / RTM_DELADDR"
		s.Shell = addressUp(r)
	default:
		s.Kernel = "netlink or file writes of the changed fields: " + strings.Join(c.Fields, ", ")
	}
	return s
}

// limitFiles are the files each cgroup field of a plan is written to.
var limitFiles = map[string][]string{
	"memory.limit": {"/memory.limit_in_bytes", "/memory.max"},
	"cpu.quota":    {"/cpu.cfs_quota_us", "/cpu.max"},
	"cpu.period":   {"/cpu.cfs_period_us", "/cpu.max"},
	"pids":         {"/pids.max"},
}

// changedLimits keeps the writes of the fields that changed (all of them
// when the change names none, or names one this table does not know).
func changedLimits(lines, fields []string) []string {
	var out []string
	for _, l := range lines {
		for _, f := range fields {
			files, ok := limitFiles[f]
			if !ok {
				return lines
			}
			for _, file := range files {
				if strings.HasSuffix(l, file) && !slices.Contains(out, l) {
					out = append(out, l)
				}
			}
		}
	}
	if len(out) == 0 {
		return lines
	}
	return out
}

func where(netns string) string {
	if netns == plan.HostNetns {
		return " (host)"
	}
	return " in netns " + netns
}

func netnsPath(h Host, name string) string {
	dir := h.NetnsDir
	if dir == "" {
		dir = plan.DefaultOptions().NetnsDir
	}
	return path.Join(dir, name)
}

// ipIn prefixes an ip command for a namespace: `ip -n NS`.
func ipIn(netns string) string {
	if netns == plan.HostNetns {
		return "ip"
	}
	return "ip -n " + netns
}

func netnsUp(r *plan.Netns) []string {
	return []string{"ip netns add " + r.Name, "ip -n " + r.Name + " link set lo up"}
}

func vethUp(r *plan.Veth) []string {
	add := "ip link add " + r.Host.Name
	if r.Host.MTU > 0 {
		add += " mtu " + strconv.Itoa(r.Host.MTU)
	}
	add += " type veth peer name " + r.Peer.Name + " netns " + r.Netns
	out := []string{add, "ip link set " + r.Host.Name + " alias hutch:" + r.Container + " up"}
	if r.Bridge != "" {
		out = append(out, "ip link set "+r.Host.Name+" master "+r.Bridge)
	}
	if r.Host.MAC != "" {
		out = append(out, "ip link set "+r.Host.Name+" address "+r.Host.MAC)
	}
	if r.Peer.MAC != "" {
		out = append(out, "ip -n "+r.Netns+" link set "+r.Peer.Name+" address "+r.Peer.MAC)
	}
	return append(out, "ip -n "+r.Netns+" link set "+r.Peer.Name+" alias hutch:"+r.Container+" up")
}

func addressUp(r *plan.Address) []string {
	return []string{ipIn(r.Netns) + " addr add " + r.CIDR + " dev " + r.Link}
}

func routeUp(r *plan.Route) []string {
	line := ipIn(r.Netns) + " route add " + r.Dst
	if r.Dst == "0.0.0.0/0" || r.Dst == "::/0" {
		line = ipIn(r.Netns) + " route add default"
		if strings.Contains(r.Dst, ":") {
			line = ipIn(r.Netns) + " -6 route add default"
		}
	}
	if r.Via != "" {
		line += " via " + r.Via
	}
	line += " dev " + r.Dev
	if r.Metric > 0 {
		line += " metric " + strconv.Itoa(r.Metric)
	}
	return []string{line}
}

// cgroupCtrls are the controllers whose folders hutch's cgroup uses, in the
// order the script makes them.
var cgroupCtrls = []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"}

// cgroupFolders lists the cgroup's folders: controller -> folder, falling
// back to the usual v1 layout when the host did not say.
func cgroupFolders(r *plan.Cgroup, h Host) (ctrls []string, dirs map[string]string) {
	dirs = h.CgroupDirs[r.Path]
	if dirs == nil {
		dirs = map[string]string{}
		if h.CgroupV2 {
			dirs["unified"] = path.Join("/sys/fs/cgroup", r.Path)
		} else {
			for _, c := range []string{"memory", "cpu", "cpuacct", "pids"} {
				dirs[c] = path.Join("/sys/fs/cgroup", c, r.Path)
			}
		}
	}
	seen := map[string]bool{}
	for _, c := range append(append([]string{}, cgroupCtrls...), "unified") {
		if d, ok := dirs[c]; ok && !seen[d] {
			seen[d] = true
			ctrls = append(ctrls, c)
		}
	}
	return ctrls, dirs
}

func cgroupUp(r *plan.Cgroup, h Host) []string {
	ctrls, dirs := cgroupFolders(r, h)
	var out []string
	if h.CgroupV2 {
		d := dirs["unified"]
		root := strings.TrimSuffix(d, "/"+r.Path)
		// A child has a controller's files only once every ancestor lists it.
		p := root
		for _, part := range strings.Split(path.Dir(r.Path), "/") {
			out = append(out, "echo '+memory +cpu +pids' > "+p+"/cgroup.subtree_control")
			p = path.Join(p, part)
		}
		out = append(out, "echo '+memory +cpu +pids' > "+p+"/cgroup.subtree_control")
		out = append(out, "mkdir -p "+d)
		return append(out, cgroupLimits(r, h)...)
	}
	for _, c := range ctrls {
		out = append(out, "mkdir -p "+dirs[c])
		if c == "cpuset" {
			// v1 cpuset: a new cgroup has no CPUs and takes no task until
			// it is given its parent's.
			parent := path.Dir(dirs[c])
			top := strings.TrimSuffix(dirs[c], "/"+r.Path)
			out = append(out,
				"[ -n \"$(cat "+parent+"/cpuset.cpus)\" ] || cat "+top+"/cpuset.cpus > "+parent+"/cpuset.cpus",
				"[ -n \"$(cat "+parent+"/cpuset.mems)\" ] || cat "+top+"/cpuset.mems > "+parent+"/cpuset.mems",
				"cat "+parent+"/cpuset.cpus > "+dirs[c]+"/cpuset.cpus",
				"cat "+parent+"/cpuset.mems > "+dirs[c]+"/cpuset.mems")
		}
	}
	return append(out, cgroupLimits(r, h)...)
}

// cgroupLimits are the writes of the cgroup's limits, as the driver makes
// them (bytes, microseconds).
func cgroupLimits(r *plan.Cgroup, h Host) []string {
	_, dirs := cgroupFolders(r, h)
	var out []string
	if h.CgroupV2 {
		d := dirs["unified"]
		if r.Memory.Limit > 0 {
			out = append(out, fmt.Sprintf("echo %d > %s/memory.max", r.Memory.Limit, d))
		}
		if r.CPU.Quota > 0 {
			period := r.CPU.Period
			if period == 0 {
				period = 100000
			}
			out = append(out, fmt.Sprintf("echo '%d %d' > %s/cpu.max", r.CPU.Quota, period, d))
		}
		if r.Pids > 0 {
			out = append(out, fmt.Sprintf("echo %d > %s/pids.max", r.Pids, d))
		}
		return out
	}
	if d, ok := dirs["memory"]; ok && r.Memory.Limit > 0 {
		out = append(out, fmt.Sprintf("echo %d > %s/memory.limit_in_bytes", r.Memory.Limit, d))
	}
	if d, ok := dirs["cpu"]; ok {
		if r.CPU.Period > 0 {
			out = append(out, fmt.Sprintf("echo %d > %s/cpu.cfs_period_us", r.CPU.Period, d))
		}
		if r.CPU.Quota > 0 {
			out = append(out, fmt.Sprintf("echo %d > %s/cpu.cfs_quota_us", r.CPU.Quota, d))
		}
	}
	if d, ok := dirs["pids"]; ok && r.Pids > 0 {
		out = append(out, fmt.Sprintf("echo %d > %s/pids.max", r.Pids, d))
	}
	return out
}

// teardown explains the delete of r.
func teardown(r plan.Resource, h Host) (string, []string) {
	if k, sh, ok := labTeardown(r); ok {
		return k, sh
	}
	switch r := r.(type) {
	case *plan.Rootfs:
		return "umount2(2) of the overlay, then the container's folder removed", []string{"umount " + path.Join(r.Bundle, "rootfs"), "rm -rf " + r.Bundle}
	case *plan.Netns:
		return "umount2(2) of the namespace's bind mount, unlink(2)", []string{"ip netns delete " + r.Name}
	case *plan.Veth:
		return "RTM_DELLINK of the host end (the kernel removes its peer)", []string{"ip link delete " + r.Host.Name}
	case *plan.Address:
		return "RTM_DELADDR", []string{ipIn(r.Netns) + " addr del " + r.CIDR + " dev " + r.Link}
	case *plan.Route:
		return "RTM_DELROUTE", []string{ipIn(r.Netns) + " route del " + r.Dst}
	case *plan.Cgroup:
		return "SIGKILL to every pid in cgroup.procs (frozen first), then rmdir(2) in each hierarchy", cgroupDown(r, h)
	case *plan.Process:
		return "the stop signal, then SIGKILL to the cgroup after the stop timeout; the supervisor records the exit", []string{"kill -" + orDefault(r.StopSignal, "TERM") + " <pid>"}
	}
	return "", nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return strings.TrimPrefix(s, "SIG")
}

func cgroupDown(r *plan.Cgroup, h Host) []string {
	ctrls, dirs := cgroupFolders(r, h)
	var out []string
	for _, c := range ctrls {
		out = append(out, "xargs -r kill -9 < "+dirs[c]+"/cgroup.procs")
	}
	for _, c := range ctrls {
		out = append(out, "rmdir "+dirs[c])
	}
	return out
}

// shorten keeps the first n lines and says how many it left out.
func shorten(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	out := append([]string{}, lines[:n]...)
	return append(out, fmt.Sprintf("# ... and %d more lines (hutch plan --explain -o script writes them all)", len(lines)-n))
}

// shellQuote quotes s for bash when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// rootfsUp are the commands that build the rootfs folder at dir: every
// folder, every file copied with cp -a (symlinks stay symlinks), inline
// files written with a here-document.
func rootfsUp(r *plan.Rootfs, files []File, dir string) []string {
	out := []string{"mkdir -p " + dir}
	inline := map[string]plan.InlineFile{}
	for _, f := range r.Files {
		inline[path.Clean("/"+f.Path)] = f
	}
	if files == nil {
		// Not resolved on this host: the recipe itself.
		for _, b := range r.Binaries {
			out = append(out, "cp --parents -L "+b+" "+dir+"  # and every library `ldd "+b+"` names")
		}
		if r.Python != "" {
			out = append(out, "cp --parents -L "+r.Python+" "+dir+"  # and its stdlib: "+r.Python+" -c 'import sys; print(sys.path)'")
		}
		for _, f := range r.Files {
			files = append(files, File{Path: path.Clean("/" + f.Path), Kind: "inline", Mode: f.Mode})
		}
		for _, d := range r.Dirs {
			files = append(files, File{Path: d.Path, Kind: "dir", Mode: d.Mode})
		}
	}
	for _, f := range files {
		dst := dir + f.Path
		mode := fmt.Sprintf("%04o", f.Mode&0o7777)
		switch f.Kind {
		case "dir":
			if f.Path == "/" {
				out = append(out, "chmod "+mode+" "+dir)
				continue
			}
			out = append(out, "mkdir -p "+shellQuote(dst)+" && chmod "+mode+" "+shellQuote(dst))
		case "file":
			out = append(out, "cp -a "+shellQuote(f.Src)+" "+shellQuote(dst))
		case "symlink":
			out = append(out, "ln -sfn "+shellQuote(f.Target)+" "+shellQuote(dst))
		case "hardlink":
			out = append(out, "ln -f "+shellQuote(dir+f.Target)+" "+shellQuote(dst))
		case "inline":
			content := inline[f.Path].Content
			tag := "HUTCH_EOF"
			for strings.Contains(content, tag) {
				tag += "_"
			}
			if !strings.HasSuffix(content, "\n") && content != "" {
				// A here-document always ends with a newline; printf keeps the bytes.
				out = append(out, "printf '%s' "+shellQuote(content)+" > "+shellQuote(dst))
			} else {
				out = append(out, "cat > "+shellQuote(dst)+" <<'"+tag+"'\n"+content+tag)
			}
			out = append(out, "chmod "+mode+" "+shellQuote(dst))
		}
	}
	return out
}

// capName turns an OCI capability name (CAP_NET_RAW) into setpriv's (net_raw).
func capName(c string) string { return strings.ToLower(strings.TrimPrefix(c, "CAP_")) }

// processUp are the commands that start the container's process as hutch
// does: in its cgroups, joined to its network namespace, in new pid, mount,
// uts, ipc and cgroup namespaces, with the OCI config's mounts, pivot_root,
// Docker's capabilities and no_new_privs. Seccomp has no shell command.
func processUp(ctr *plan.Container, r *plan.Process, h Host) []string {
	sp := ctr.Spec
	rootfs := path.Join(r.Bundle, "rootfs")
	if sp.Root != nil && sp.Root.Path != "" && path.IsAbs(sp.Root.Path) {
		rootfs = sp.Root.Path
	}
	var out []string
	out = append(out, "# 1. join the cgroups: this shell writes its own pid; its children inherit them")
	out = append(out, joinCgroups(ctr, h)...)
	init := path.Join(r.Bundle, "init.sh")
	out = append(out, "# 2. what the container's pid 1 does first, in its new namespaces (bash, from the host, until pivot_root)",
		"cat > "+init+" <<'HUTCH_INIT'\nset -eu\n"+strings.Join(initScript(sp, rootfs), "\n")+"\nHUTCH_INIT")
	unshare, netns := unshareArgs(sp)
	cmd := "exec "
	if netns != "" {
		cmd += "nsenter --net=" + netns + " "
	}
	cmd += strings.Join(unshare, " ") +
		" setpriv --inh-caps=+sys_admin setpriv --bounding-set=" + strings.Join(boundingSet(sp.Process), ",") +
		" /bin/bash " + init
	out = append(out, "# 3. join the netns, then new pid, mount, uts, ipc and cgroup namespaces (--fork: the child is pid 1);",
		"#    the bounding set is Docker's from here on; CAP_SYS_ADMIN stays (inheritable) until the last execve, which sets no_new_privs",
		"#    seccomp(SECCOMP_SET_MODE_FILTER) with Docker's default profile has no shell command: this script does not load it",
		cmd)
	return out
}

// joinCgroups has this shell write its pid to cgroup.procs of each of the
// container's cgroup folders, so that what it starts is born inside.
func joinCgroups(ctr *plan.Container, h Host) []string {
	var cg *plan.Cgroup
	for _, res := range ctr.Resources {
		if x, ok := res.(*plan.Cgroup); ok {
			cg = x
		}
	}
	if cg == nil {
		return nil
	}
	var out []string
	ctrls, dirs := cgroupFolders(cg, h)
	for _, c := range ctrls {
		out = append(out, "echo $BASHPID > "+dirs[c]+"/cgroup.procs")
	}
	return out
}

// unshareArgs is the unshare command for the config's new namespaces, and
// the path of the network namespace to join first when the config names one.
func unshareArgs(sp *specs.Spec) (unshare []string, netns string) {
	unshare = []string{"unshare", "--fork", "--kill-child", "--propagation", "private"}
	if sp.Linux == nil {
		return unshare, ""
	}
	for _, ns := range sp.Linux.Namespaces {
		switch ns.Type {
		case specs.PIDNamespace:
			unshare = append(unshare, "--pid")
		case specs.MountNamespace:
			unshare = append(unshare, "--mount")
		case specs.UTSNamespace:
			unshare = append(unshare, "--uts")
		case specs.IPCNamespace:
			unshare = append(unshare, "--ipc")
		case specs.CgroupNamespace:
			unshare = append(unshare, "--cgroup")
		case specs.NetworkNamespace:
			if ns.Path != "" {
				netns = ns.Path
			} else {
				unshare = append(unshare, "--net")
			}
		}
	}
	return unshare, netns
}

// initScript is stage 2: it runs as pid 1 of the new pid namespace, in the
// new mount namespace, with CAP_SYS_ADMIN kept only until the final execve.
// It mounts what the config asks, masks and write-protects paths, moves
// into the rootfs with pivot_root and execs the process.
func initScript(sp *specs.Spec, rootfs string) []string {
	var st []string
	if sp.Hostname != "" {
		st = append(st, "hostname "+shellQuote(sp.Hostname))
	}
	st = append(st, "mount --bind "+rootfs+" "+rootfs+"  # pivot_root needs a mount point")
	st = append(st, mountCommands(sp.Mounts, rootfs)...)
	if sp.Linux != nil && len(sp.Linux.MaskedPaths) > 0 {
		// Masked: an empty read-only tmpfs over a folder, /dev/null over a file.
		st = append(st, "for p in "+strings.Join(sp.Linux.MaskedPaths, " ")+"; do",
			"  if [ -d "+rootfs+"$p ]; then mount -t tmpfs -o ro tmpfs "+rootfs+"$p",
			"  elif [ -e "+rootfs+"$p ]; then mount --bind /dev/null "+rootfs+"$p; fi",
			"done")
	}
	if sp.Linux != nil && len(sp.Linux.ReadonlyPaths) > 0 {
		st = append(st, "for p in "+strings.Join(sp.Linux.ReadonlyPaths, " ")+"; do",
			"  if [ -e "+rootfs+"$p ]; then mount --bind "+rootfs+"$p "+rootfs+"$p && mount -o remount,bind,ro "+rootfs+"$p; fi",
			"done")
	}
	st = append(st,
		"cd "+rootfs+" && mkdir -p .oldroot",
		"pivot_root . .oldroot  # the host's root moves to /.oldroot",
		"cd /")
	// After pivot_root the rootfs has no umount or setpriv; the host's
	// static busybox is run once through the old root, before it goes.
	st = append(st, "exec /.oldroot/bin/busybox sh -c "+shellQuote(strings.Join(finalExec(sp.Process), "; ")))
	return st
}

// mountCommands mount the config's mounts under rootfs, in order: binds
// with --rbind, the rest by type with their options; /dev gets the default
// devices every runtime makes (runtime-spec config-linux.md).
func mountCommands(ms []specs.Mount, rootfs string) []string {
	var st []string
	for _, m := range ms {
		dst := rootfs + m.Destination
		var opts []string
		bind := m.Type == "bind"
		for _, o := range m.Options {
			if o == "bind" || o == "rbind" {
				bind = true
				continue
			}
			opts = append(opts, o)
		}
		mk := "mkdir -p " + shellQuote(dst) + " && "
		if bind {
			st = append(st, mk+"mount --rbind "+shellQuote(m.Source)+" "+shellQuote(dst))
			continue
		}
		line := mk + "mount -t " + m.Type
		if len(opts) > 0 {
			line += " -o " + strings.Join(opts, ",")
		}
		line += " " + m.Source + " " + shellQuote(dst)
		if m.Destination == "/proc" {
			line += "  # now, inside the new pid namespace"
		}
		st = append(st, line)
		if m.Destination == "/dev" {
			for _, d := range []struct {
				name         string
				major, minor int
			}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
				st = append(st, fmt.Sprintf("mknod -m 666 %s/dev/%s c %d %d", rootfs, d.name, d.major, d.minor))
			}
			st = append(st, "ln -s /proc/self/fd "+rootfs+"/dev/fd", "ln -s pts/ptmx "+rootfs+"/dev/ptmx")
		}
	}
	return st
}

// finalExec is what busybox runs after pivot_root: drop the old root, go
// to the working folder and exec the process with its environment only,
// giving up CAP_SYS_ADMIN and, when asked, setting no_new_privs.
func finalExec(p *specs.Process) []string {
	final := []string{"umount -l /.oldroot", "rmdir /.oldroot 2>/dev/null"}
	cwd := "/"
	if p != nil && p.Cwd != "" {
		cwd = p.Cwd
	}
	final = append(final, "cd "+shellQuote(cwd))
	run := "exec setpriv --inh-caps -sys_admin"
	if p != nil && p.NoNewPrivileges {
		run = "exec setpriv --nnp --inh-caps -sys_admin"
	}
	run += " env -i"
	if p != nil {
		for _, e := range p.Env {
			run += " " + shellQuote(e)
		}
		for _, a := range p.Args {
			run += " " + shellQuote(a)
		}
	}
	return append(final, run)
}

// boundingSet is setpriv's --bounding-set for the process's bounding
// capabilities: all dropped, then each one added back, sorted.
func boundingSet(p *specs.Process) []string {
	bounding := []string{"-all"}
	if p != nil && p.Capabilities != nil {
		caps := append([]string{}, p.Capabilities.Bounding...)
		sort.Strings(caps)
		for _, c := range caps {
			bounding = append(bounding, "+"+capName(c))
		}
	}
	return bounding
}
