//go:build linux && !cgo

package process

// selfJoinBuilt: without cgo there is no selfjoin.c; the parent writes the
// init's pid to each cgroup.procs.
const selfJoinBuilt = false
