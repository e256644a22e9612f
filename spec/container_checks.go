package spec

// The checks of one container's resources, mounts, rlimits, capabilities
// and user namespace: nothing of them spans documents.

import (
	"fmt"
	"strconv"
	"strings"
)

// defaultCPUPeriod is the CFS period the kernel starts a cgroup with, and
// the one plan uses when only cpu is given; minCPUQuota is the smallest
// quota the kernel takes (1 ms).
const (
	defaultCPUPeriod = 100000
	minCPUQuota      = 1000
)

// checkResources: cpu and cpuQuota both set the CFS quota, so only one may
// be given, and cpu must give a quota the kernel takes; memorySwap (memory plus swap, as docker's --memory-swap) is at
// least memory, and needs it.
func checkResources(c *Container) Errors {
	var errs Errors
	r := c.Spec.Resources
	if r.CPU != "" && r.CPUQuota != 0 {
		errs = append(errs, c.errorAt("spec.resources.cpuQuota", "cpu and cpuQuota both set the CPU quota (expected one of them)"))
	} else if milli, err := ParseCPU(r.CPU); err == nil {
		// cpu becomes quota = cores x period; the kernel refuses a quota
		// below 1 ms (EINVAL from cpu.cfs_quota_us and cpu.max).
		period := int64(defaultCPUPeriod)
		if r.CPUPeriod >= 1000 && r.CPUPeriod <= 1000000 {
			period = int64(r.CPUPeriod)
		}
		if quota := milli * period / 1000; quota < minCPUQuota {
			need := (minCPUQuota*1000 + period - 1) / period
			errs = append(errs, c.errorAt("spec.resources.cpu", fmt.Sprintf("%s gives a quota of %d us per %d us period (expected at least %dm at this period, the kernel's smallest quota being 1000 us)", r.CPU, quota, period, need)))
		}
	}
	if r.MemorySwap == "" || r.MemorySwap == "-1" {
		return errs
	}
	swap, err := ParseMemory(r.MemorySwap)
	if err != nil {
		return errs
	}
	if r.Memory == "" {
		return append(errs, c.errorAt("spec.resources.memorySwap", "memorySwap without memory (expected memory as well)"))
	}
	mem, err := ParseMemory(r.Memory)
	if err != nil || mem == 0 {
		return errs
	}
	if swap < mem {
		errs = append(errs, c.errorAt("spec.resources.memorySwap", fmt.Sprintf("%s (%d bytes) is below memory %s (%d bytes) (expected memory plus swap, at least memory, or -1)", r.MemorySwap, swap, r.Memory, mem)))
	}
	return errs
}

// checkMounts: a bind mount has a source on the host, a tmpfs has none and
// is the only kind with a size and mode; a destination is mounted once.
func checkMounts(c *Container) Errors {
	var errs Errors
	seen := map[string]string{}
	for i, mt := range c.Spec.Mounts {
		base := fmt.Sprintf("spec.mounts[%d]", i)
		switch mt.Type {
		case "bind":
			if mt.Source == "" {
				errs = append(errs, c.errorAt(base+".source", "missing (expected the absolute path of the host file or folder to bind)"))
			}
			if mt.Size != "" {
				errs = append(errs, c.errorAt(base+".size", "a bind mount has no size (expected size only with type tmpfs)"))
			}
			if mt.Mode != "" {
				errs = append(errs, c.errorAt(base+".mode", "a bind mount has no mode (expected mode only with type tmpfs)"))
			}
		case "tmpfs":
			if mt.Source != "" {
				errs = append(errs, c.errorAt(base+".source", "a tmpfs has no source (expected no source with type tmpfs)"))
			}
		}
		if what, _ := checkAbsPath(mt.Destination); what != "" {
			continue
		}
		if mt.Destination == "/" {
			errs = append(errs, c.errorAt(base+".destination", `"/" is the container's root (expected a path below it)`))
			continue
		}
		if first, dup := seen[mt.Destination]; dup {
			errs = append(errs, c.errorAt(base+".destination", fmt.Sprintf("%s is also mounted by %s (expected each destination once)", mt.Destination, first)))
			continue
		}
		seen[mt.Destination] = base
	}
	return errs
}

// checkRlimits: the soft limit is at most the hard one (setrlimit(2) fails
// with EINVAL otherwise), and each resource is set once.
func checkRlimits(c *Container) Errors {
	var errs Errors
	seen := map[string]string{}
	for i, rl := range c.Spec.Process.Rlimits {
		base := fmt.Sprintf("spec.process.rlimits[%d]", i)
		if rl.Soft > rl.Hard {
			errs = append(errs, c.errorAt(base+".soft", fmt.Sprintf("soft limit %d is above the hard limit %d (expected soft <= hard)", rl.Soft, rl.Hard)))
		}
		n := RlimitName(rl.Type)
		if n == "" {
			continue
		}
		if first, dup := seen[n]; dup {
			errs = append(errs, c.errorAt(base+".type", fmt.Sprintf("%s is also set by %s (expected each resource once)", n, first)))
			continue
		}
		seen[n] = base
	}
	return errs
}

// checkCapabilities: a capability both added and dropped is a contradiction
// (dropping ALL and adding some back is not).
func checkCapabilities(c *Container) Errors {
	var errs Errors
	caps := c.Spec.Security.Capabilities
	dropped := map[string]bool{}
	for _, d := range caps.Drop {
		dropped[CapabilityName(d)] = true
	}
	for i, a := range caps.Add {
		n := CapabilityName(a)
		if n != "" && dropped[n] {
			errs = append(errs, c.errorAt(fmt.Sprintf("spec.security.capabilities.add[%d]", i), fmt.Sprintf("%s is both added and dropped (expected it in one list)", n)))
		}
	}
	return errs
}

// checkIDMappings: the ranges of a user namespace map are disjoint on both
// sides and stay within 32-bit ids; the kernel refuses a uid_map write with
// overlapping ranges (EINVAL, kernel/user_namespace.c mappings_overlap).
func checkIDMappings(c *Container) Errors {
	u := c.Spec.Security.UserNamespace
	if u == nil {
		return nil
	}
	var errs Errors
	for _, set := range []struct {
		name string
		maps []IDMapping
	}{{"uidMappings", u.UIDMappings}, {"gidMappings", u.GIDMappings}} {
		for i, a := range set.maps {
			base := fmt.Sprintf("spec.security.userNamespace.%s[%d]", set.name, i)
			if a.Size == 0 {
				continue
			}
			if uint64(a.ContainerID)+uint64(a.Size) > 1<<32 || uint64(a.HostID)+uint64(a.Size) > 1<<32 {
				errs = append(errs, c.errorAt(base+".size", fmt.Sprintf("size %d runs past the last id 4294967295 (expected a smaller size)", a.Size)))
				continue
			}
			for j, b := range set.maps[:i] {
				if b.Size == 0 {
					continue
				}
				other := fmt.Sprintf("%s[%d]", set.name, j)
				if overlaps(a.ContainerID, a.Size, b.ContainerID, b.Size) {
					errs = append(errs, c.errorAt(base+".containerID", fmt.Sprintf("container ids %s overlap %s of %s (expected disjoint ranges)", idRange(a.ContainerID, a.Size), idRange(b.ContainerID, b.Size), other)))
					break
				}
				if overlaps(a.HostID, a.Size, b.HostID, b.Size) {
					errs = append(errs, c.errorAt(base+".hostID", fmt.Sprintf("host ids %s overlap %s of %s (expected disjoint ranges)", idRange(a.HostID, a.Size), idRange(b.HostID, b.Size), other)))
					break
				}
			}
		}
	}
	return errs
}

// checkUserMapped: in a user namespace the process's uid, gid and
// supplementary groups exist only if a mapping covers them; setresuid(2)
// and setgroups(2) fail with EINVAL for an unmapped id.
func checkUserMapped(c *Container) Errors {
	u := c.Spec.Security.UserNamespace
	p := c.Spec.Process
	if u == nil || len(u.UIDMappings) == 0 || len(u.GIDMappings) == 0 {
		return nil
	}
	for _, m := range append(append([]IDMapping(nil), u.UIDMappings...), u.GIDMappings...) {
		if m.Size == 0 {
			return nil // the size rule reports the empty mapping
		}
	}
	var uid, gid uint64
	if p.User != "" {
		if what, _ := checkUIDGID(p.User); what != "" {
			return nil
		}
		us, gs, _ := strings.Cut(p.User, ":")
		uid, _ = strconv.ParseUint(us, 10, 32)
		if gs != "" {
			gid, _ = strconv.ParseUint(gs, 10, 32)
		}
	}
	var errs Errors
	userPath := "spec.process.user"
	if p.User == "" {
		userPath = "spec.security.userNamespace.uidMappings"
	}
	if !mapped(u.UIDMappings, uint32(uid)) {
		errs = append(errs, c.errorAt(userPath, fmt.Sprintf("uid %d of the process is not mapped in the user namespace (expected a uidMappings range that holds it)", uid)))
	}
	if !mapped(u.GIDMappings, uint32(gid)) {
		path := userPath
		if p.User == "" {
			path = "spec.security.userNamespace.gidMappings"
		}
		errs = append(errs, c.errorAt(path, fmt.Sprintf("gid %d of the process is not mapped in the user namespace (expected a gidMappings range that holds it)", gid)))
	}
	for i, g := range p.AdditionalGids {
		if !mapped(u.GIDMappings, g) {
			errs = append(errs, c.errorAt(fmt.Sprintf("spec.process.additionalGids[%d]", i), fmt.Sprintf("gid %d is not mapped in the user namespace (expected a gidMappings range that holds it)", g)))
		}
	}
	return errs
}

func mapped(ms []IDMapping, id uint32) bool {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

func idRange(start, size uint32) string {
	return fmt.Sprintf("%d-%d", start, uint64(start)+uint64(size)-1)
}

// checkRootfsPaths: each path of the rootfs is written by one entry of
// copy, files or dirs.
func checkRootfsPaths(c *Container) Errors {
	var errs Errors
	seen := map[string]string{}
	add := func(p, path string) {
		if what, _ := checkAbsPath(p); what != "" {
			return
		}
		if first, dup := seen[p]; dup {
			errs = append(errs, c.errorAt(path, fmt.Sprintf("%s is also written by %s (expected each rootfs path once)", p, first)))
			return
		}
		seen[p] = path
	}
	r := c.Spec.Rootfs
	for i, f := range r.Files {
		add(f.Path, fmt.Sprintf("spec.rootfs.files[%d].path", i))
	}
	for i, d := range r.Dirs {
		add(d.Path, fmt.Sprintf("spec.rootfs.dirs[%d].path", i))
	}
	for i, cp := range r.Copy {
		to, path := cp.To, fmt.Sprintf("spec.rootfs.copy[%d].to", i)
		if to == "" {
			to, path = cp.From, fmt.Sprintf("spec.rootfs.copy[%d].from", i)
		}
		add(to, path)
	}
	return errs
}
