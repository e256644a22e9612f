//go:build linux && cgo

package process

// The C of this package runs in constructors, before the Go runtime
// starts, while the process has one thread (README.md has the stages):
// supervisor.c and its units are the spawn stage and the supervisor,
// nsenter.c joins a container's namespaces for `hutch exec` and an exec
// health check, selfjoin.c lets an init started from Go (`hutch run`) join
// its v1 cgroups itself. Importing "C" links them into every binary that
// imports this package.

// #cgo CFLAGS: -Wall -Werror -std=gnu11
import "C"

// withC says that the C of this package is in the binary (it needs cgo).
const withC = true
