//go:build linux

// Package cgroup (imported as cgroupdrv) manages a container's control group
// on cgroup v1, v2 and hybrid hosts: create, set limits, read them back,
// stats, OOM events, kill every process, remove. It touches the host.
//
// # Hierarchies
//
// New detects the layout under the cgroup root (/sys/fs/cgroup), from
// /proc/self/mountinfo for the real root:
//
//   - v1: one cgroup mount per controller (or group of controllers, such as
//     cpu,cpuacct) in a folder under the root.
//   - v2: a cgroup2 mount at the root. A controller's files appear in a child
//     only once its parent lists it in cgroup.subtree_control, so hutch writes
//     "+memory +cpu +cpuset +pids" (those missing) there, from the root down.
//   - hybrid: v1 mounts plus a cgroup2 mount (root/unified) that holds only
//     the controllers v1 did not take. hutch uses v1 for every controller v1
//     has, and also makes the cgroup in the cgroup2 mount for cgroup.kill.
//
// A container's cgroup is the same relative path in every hierarchy
// (plan.Cgroup.Path, "hutch/web"), always under the driver's parent.
//
// # Files written
//
// v1:
//   - memory/…/memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory plus
//     swap, when the kernel accounts swap; -1 = no limit)
//   - cpu/…/cpu.cfs_period_us, cpu.cfs_quota_us (-1 = no quota), cpu.shares
//     (converted from the weight, see WeightToShares)
//   - cpuset/…/cpuset.cpus, cpuset.mems (copied from the parent at creation)
//   - pids/…/pids.max
//   - freezer/…/freezer.state (FROZEN, then THAWED, while killing)
//   - cgroup.procs of each hierarchy (AddProcess)
//
// v2:
//   - cgroup.subtree_control of each ancestor, memory.max, memory.swap.max
//     (swap alone: memory plus swap minus the memory limit), cpu.max
//     ("QUOTA PERIOD"), cpu.weight, cpuset.cpus, cpuset.mems, pids.max,
//     cgroup.procs, cgroup.kill
//
// # Files read
//
// Observe reads the files it writes. Stats reads memory.usage_in_bytes,
// memory.max_usage_in_bytes, memory.oom_control, cpuacct.usage, cpu.stat and
// pids.current (v1), or memory.current, memory.peak, memory.events, cpu.stat
// and pids.current (v2).
package cgroup
