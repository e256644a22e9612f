//go:build linux

// Package process (imported as processdrv) is hutch's own container runtime:
// it starts the OCI configuration of plan.Build in new namespaces with
// pivot_root and the default security settings, under a per-container
// supervisor that keeps logs and exit status and applies the restart policy,
// and it execs into running containers. It touches the host.
package process
