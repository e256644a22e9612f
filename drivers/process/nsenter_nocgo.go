//go:build linux && !cgo

package process

// haveNsenter is false in a binary built without cgo: nsenter.c, which
// joins a container's mount and user namespaces before the Go runtime
// starts its threads, is not linked in, and Exec refuses.
const haveNsenter = false
