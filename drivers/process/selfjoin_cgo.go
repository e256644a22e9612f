//go:build linux && cgo

package process

// selfJoinBuilt: selfjoin.c is in the binary, so an init started from Go
// joins its v1 cgroups itself.
const selfJoinBuilt = true
