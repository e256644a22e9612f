package plan

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/spec"
)

// buildOCI is the container's OCI runtime-spec configuration (config.json of
// its bundle), complete: a runtime such as runc or crun runs it as it is.
func buildOCI(sc *spec.Container, o Options, cg *Cgroup) (*specs.Spec, error) {
	proc, err := ociProcess(sc)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version:     specs.Version,
		Root:        &specs.Root{Path: "rootfs", Readonly: sc.Spec.Rootfs.ReadOnly},
		Process:     proc,
		Hostname:    sc.Spec.Hostname,
		Annotations: labelAnnotations(sc.Metadata.Labels),
	}
	if s.Mounts, err = mounts(sc, sc.Spec.Security.UserNamespace); err != nil {
		return nil, err
	}
	s.Linux = ociLinux(sc, o, cg)
	// The seccomp profile comes last: Docker's profile allows some system
	// calls only when the bounding set holds a capability (CAP_SYS_ADMIN
	// for mount, CAP_SYS_PTRACE for process_vm_*), so it reads the
	// capabilities set above.
	if s.Linux.Seccomp, err = seccompProfile(sc.Spec.Security.Seccomp, o, s); err != nil {
		return nil, err
	}
	return s, nil
}

// ociProcess is the process block: the user as numbers, arguments,
// environment, capabilities and rlimits.
func ociProcess(sc *spec.Container) (*specs.Process, error) {
	p := sc.Spec.Process
	uid, gid, err := parseUser(p.User)
	if err != nil {
		return nil, atField("spec.process.user", err)
	}
	caps := capabilitySet(sc.Spec.Security.Capabilities)
	proc := &specs.Process{
		Terminal: false,
		User:     specs.User{UID: uid, GID: gid, AdditionalGids: append([]uint32(nil), p.AdditionalGids...)},
		Args:     append([]string(nil), p.Args...),
		Env:      append([]string(nil), p.Env...),
		Cwd:      p.Cwd,
		// Docker's default set in the bounding, permitted and effective
		// sets; nothing inheritable or ambient, so an exec'd program
		// without file capabilities keeps none when it is not root.
		Capabilities: &specs.LinuxCapabilities{
			Bounding:    caps,
			Effective:   caps,
			Permitted:   caps,
			Inheritable: []string{},
			Ambient:     []string{},
		},
		NoNewPrivileges: *sc.Spec.Security.NoNewPrivileges,
	}
	for i, rl := range p.Rlimits {
		t := spec.RlimitName(rl.Type)
		if t == "" {
			return nil, fieldErrorf(fmt.Sprintf("spec.process.rlimits[%d].type", i), "unknown rlimit %q", rl.Type)
		}
		if rl.Hard < rl.Soft {
			return nil, fieldErrorf(fmt.Sprintf("spec.process.rlimits[%d]", i), "soft %d above hard %d", rl.Soft, rl.Hard)
		}
		proc.Rlimits = append(proc.Rlimits, specs.POSIXRlimit{Type: t, Soft: rl.Soft, Hard: rl.Hard})
	}
	return proc, nil
}

// ociLinux is the linux block without its seccomp profile: the cgroup and
// its limits, the namespaces (the network one at the netns hutch made, when
// the container has a network block) and the user namespace's mappings.
func ociLinux(sc *spec.Container, o Options, cg *Cgroup) *specs.Linux {
	l := &specs.Linux{
		CgroupsPath:       "/" + cg.Path,
		Resources:         linuxResources(cg),
		RootfsPropagation: "private",
		MaskedPaths:       append([]string{}, sc.Spec.Security.MaskedPaths...),
		ReadonlyPaths:     append([]string{}, sc.Spec.Security.ReadonlyPaths...),
		// linux.devices stays empty: null, zero, full, random, urandom and
		// tty are the default devices every runtime MUST supply
		// (runtime-spec config-linux.md, "Default Devices"; hutch's own
		// runtime makes DefaultDevices), and the device cgroup's allow-list
		// in linux.resources.devices names them.
	}
	netns := specs.LinuxNamespace{Type: specs.NetworkNamespace}
	if sc.Spec.Network != nil {
		netns.Path = o.NetnsPath(sc.Spec.Network.Namespace)
	}
	l.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.CgroupNamespace},
		netns,
	}
	if userns := sc.Spec.Security.UserNamespace; userns != nil {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		for _, m := range userns.UIDMappings {
			l.UIDMappings = append(l.UIDMappings, specs.LinuxIDMapping{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
		}
		for _, m := range userns.GIDMappings {
			l.GIDMappings = append(l.GIDMappings, specs.LinuxIDMapping{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
		}
	}
	return l
}

// seccompProfile is the seccomp block for the manifest's seccomp: nothing
// for unconfined, Docker's default profile, or a profile file the caller
// read into Options.SeccompProfiles. s must hold the capabilities already.
func seccompProfile(prof string, o Options, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	switch prof {
	case "unconfined":
		return nil, nil
	case "default":
		l, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fieldErrorf("spec.security.seccomp", "default profile: %w", err)
		}
		return l, nil
	}
	body, ok := o.SeccompProfiles[prof]
	if !ok {
		return nil, fieldErrorf("spec.security.seccomp", "profile %s was not read (the caller passes it in Options.SeccompProfiles)", prof)
	}
	l, err := seccomp.LoadProfile(string(body), s)
	if err != nil {
		return nil, fieldErrorf("spec.security.seccomp", "profile %s: %w", prof, err)
	}
	return l, nil
}

// LabelPrefix starts the annotation of each label of a container in its
// config.json: metadata.labels app: web is "hutch.label.app": "web".
// hutch's own prefix keeps labels from being read as the annotations OCI
// runtimes act on (runc's org.systemd.property.*, crun's run.oci.*), and
// lets `hutch get` tell labels from any other annotation.
const LabelPrefix = "hutch.label."

// labelAnnotations are a container's labels as config.json annotations,
// nil for none.
func labelAnnotations(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		out[LabelPrefix+k] = v
	}
	return out
}

// Labels reads a container's labels back from its config.json
// annotations, the record `hutch get` uses (it needs no manifest).
func Labels(annotations map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range annotations {
		if name, ok := strings.CutPrefix(k, LabelPrefix); ok {
			out[name] = v
		}
	}
	return out
}

// capabilitySet is Docker's default set minus drop plus add, in that order,
// with every name as the kernel's CAP_ form. Dropping ALL starts from nothing.
func capabilitySet(c spec.Capabilities) []string {
	drop := map[string]bool{}
	all := false
	for _, d := range c.Drop {
		if strings.EqualFold(d, "ALL") {
			all = true
		}
		drop[capName(d)] = true
	}
	out := []string{}
	seen := map[string]bool{}
	if !all {
		for _, d := range spec.DefaultCapabilities {
			if !drop[d] {
				out = append(out, d)
				seen[d] = true
			}
		}
	}
	for _, a := range c.Add {
		n := capName(a)
		if !seen[n] {
			out = append(out, n)
			seen[n] = true
		}
	}
	return out
}

// capName is a capability's name as the kernel headers spell it:
// CAP_NET_ADMIN. Validation has refused unknown names.
func capName(s string) string {
	if n := spec.CapabilityName(s); n != "" {
		return n
	}
	return strings.ToUpper(s)
}

// mounts are the runtime's standard file systems (what runc's spec
// template and Docker mount), then the manifest's bind mounts and tmpfs.
func mounts(sc *spec.Container, userns *spec.UserNamespace) ([]specs.Mount, error) {
	devpts := []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}
	// gid=5 (tty) only when the container has a gid 5: in a user namespace
	// that does not map it, devpts refuses the mount.
	if userns == nil || mapsID(userns.GIDMappings, 5) {
		devpts = append(devpts, "gid=5")
	}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: devpts},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=64m"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	for i, m := range sc.Spec.Mounts {
		path := fmt.Sprintf("spec.mounts[%d]", i)
		switch m.Type {
		case "bind":
			opts := []string{"rbind"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			ms = append(ms, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		case "tmpfs":
			opts := []string{"nosuid", "nodev"}
			if m.Size != "" {
				n, err := spec.ParseMemory(m.Size)
				if err != nil {
					return nil, atField(path+".size", err)
				}
				opts = append(opts, fmt.Sprintf("size=%d", n))
			}
			if m.Mode != "" {
				mode, err := spec.ParseMode(m.Mode)
				if err != nil {
					return nil, atField(path+".mode", err)
				}
				opts = append(opts, fmt.Sprintf("mode=%04o", mode))
			}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			ms = append(ms, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		default:
			return nil, fieldErrorf(path+".type", "%q is not bind or tmpfs", m.Type)
		}
	}
	return ms, nil
}

func mapsID(ms []spec.IDMapping, id uint32) bool {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

// linuxResources is the cgroup as OCI writes it. A weight becomes cpu.shares
// by the inverse of runc's shares-to-weight conversion
// (weight = 1 + (shares-2)*9999/262142), so that runc on cgroup v2 writes
// the weight asked for back to cpu.weight.
func linuxResources(cg *Cgroup) *specs.LinuxResources {
	r := &specs.LinuxResources{Devices: deviceRules()}
	if cg.Memory.Limit != 0 || cg.Memory.Swap != 0 {
		r.Memory = &specs.LinuxMemory{}
		if cg.Memory.Limit != 0 {
			r.Memory.Limit = ptr(cg.Memory.Limit)
		}
		if cg.Memory.Swap != 0 {
			r.Memory.Swap = ptr(cg.Memory.Swap)
		}
	}
	c := cg.CPU
	if c.Quota != 0 || c.Period != 0 || c.Weight != 0 || c.Cpus != "" || c.Mems != "" {
		r.CPU = &specs.LinuxCPU{Cpus: c.Cpus, Mems: c.Mems}
		if c.Quota != 0 {
			r.CPU.Quota = ptr(c.Quota)
		}
		if c.Period != 0 {
			r.CPU.Period = ptr(c.Period)
		}
		if c.Weight != 0 {
			r.CPU.Shares = ptr(2 + ((c.Weight-1)*262142+9998)/9999)
		}
	}
	if cg.Pids != 0 {
		r.Pids = &specs.LinuxPids{Limit: ptr(cg.Pids)}
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// device is one of the character devices every container gets.
type device struct {
	path         string
	major, minor int64
}

// stdDevices are the nodes a container's /dev holds, as runc makes them:
// /dev/null, zero, full, random, urandom and tty (the mem and tty drivers'
// numbers in the kernel's Documentation/admin-guide/devices.txt).
var stdDevices = []device{
	{"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
	{"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
}

// DefaultDevices are the device nodes a container's /dev holds, mode 0666 and
// owned by root, as every OCI runtime makes them.
func DefaultDevices() []specs.LinuxDevice {
	out := make([]specs.LinuxDevice, len(stdDevices))
	for i, d := range stdDevices {
		out[i] = specs.LinuxDevice{Path: d.path, Type: "c", Major: d.major, Minor: d.minor,
			FileMode: ptr(os.FileMode(0o666)), UID: ptr(uint32(0)), GID: ptr(uint32(0))}
	}
	return out
}

// deviceRules is the device cgroup's allow-list: deny everything, then allow
// read, write and mknod of the standard devices, /dev/ptmx (5:2) and the
// devpts ptys (major 136).
func deviceRules() []specs.LinuxDeviceCgroup {
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	allow := func(major, minor int64) {
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(major), Minor: ptr(minor), Access: "rwm"})
	}
	for _, d := range stdDevices {
		allow(d.major, d.minor)
	}
	allow(5, 2)
	rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "rwm"})
	return rules
}
