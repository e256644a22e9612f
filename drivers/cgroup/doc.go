//go:build linux

// Package cgroup (imported as cgroupdrv) manages a container's control group
// on cgroup v1, v2 and hybrid hosts: create, set limits, read them back,
// stats, OOM events, kill every process, remove. It touches the host.
package cgroup
