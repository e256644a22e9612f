#!/usr/bin/env bash
# Builds hutch (./cmd/apply) into OUT (default the repository's bin/hutch),
# statically linked: the one way every build of it is made. make build,
# scripts/up.sh, scripts/test.sh, internal/testutil (the tests that run the
# binary) and bench/lib.sh call this script. Extra arguments go to go build.
#
#   scripts/build.sh [OUT] [GO BUILD FLAGS...]
#
# Why static: hutch is a cgo binary (drivers/process's C constructors run
# before the Go runtime starts), and a dynamically linked one first waits for
# ld.so to map and relocate libc: 0.13-0.19 ms of every command's start here
# (bench/startup.sh measures it; issue 18 asks each verb to start within 2 ms
# of a bare Go program). It needs glibc's libc.a (libc6-dev, scripts/deps.sh
# installs it). netgo and osusergo keep Go's DNS and user lookups in Go:
# glibc's NSS (getaddrinfo, getpwnam) cannot work in a static binary, and the
# build fails below if anything still links one of them.
set -euo pipefail
out=bin/hutch # in the repository
if [ $# -gt 0 ]; then
	out=$(realpath -m -- "$1") # from where the caller is
	shift
fi
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! go build -tags netgo,osusergo -ldflags '-extldflags=-static' -o "$out" "$@" ./cmd/apply >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
cat "$log" >&2
# glibc's linker warning for NSS and dlopen in a static binary: such a call
# would need the shared libraries of this exact glibc at run time.
if grep -q "statically linked applications requires at runtime" "$log"; then
	echo "build: $out calls a glibc function that needs shared libraries at run time (see above)" >&2
	rm -f "$out"
	exit 1
fi
# A static binary has no program interpreter (PT_INTERP) to load.
if LC_ALL=C readelf -lW "$out" | grep -q "Requesting program interpreter"; then
	echo "build: $out is dynamically linked" >&2
	rm -f "$out"
	exit 1
fi
