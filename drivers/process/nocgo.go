//go:build linux && !cgo

package process

// withC is false in a binary built without cgo: none of this package's C
// is in it. Start refuses (the supervisor is C), Exec refuses (nsenter.c
// joins a container's mount and user namespaces before the Go runtime
// starts its threads), and an init started from Go has its pid written to
// each cgroup.procs instead of joining its v1 cgroups itself (selfjoin.c).
// hutch is always built with cgo (scripts/build.sh); this keeps a build
// without it compiling.
const withC = false
