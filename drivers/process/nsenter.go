//go:build linux && cgo

package process

// nsenter.c holds the constructor that joins a container's namespaces for
// `hutch exec` before the Go runtime starts (see there for why). Importing
// "C" links it into every binary that imports this package.

// #cgo CFLAGS: -Wall -Werror -std=gnu11
import "C"

// haveNsenter says whether nsenter.c is linked in (it needs cgo).
const haveNsenter = true
