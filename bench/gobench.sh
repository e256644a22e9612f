#!/usr/bin/env bash
# bench/gobench.sh: hutch's own Go benchmarks (pure code: plan, diff, render,
# no-op apply; per driver: network, cgroup, rootfs, process), BENCH_COUNT
# times each (default 6), summarised by benchstat (median and confidence
# interval). Root runs the drivers' benchmarks for real; they touch only
# objects named by internal/testutil and remove them. Writes the raw output
# to $BENCH_GO_OUT if set (feed two of them to benchstat to compare commits).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin
COUNT=${BENCH_COUNT:-6}
BENCHSTAT_VERSION=v0.0.0-20260908200009-22c9c6c9d4da
if ! command -v benchstat >/dev/null; then
	echo "gobench: installing benchstat (golang.org/x/perf $BENCHSTAT_VERSION)" >&2
	(cd /tmp && go install "golang.org/x/perf/cmd/benchstat@$BENCHSTAT_VERSION")
fi
pkgs=$(grep -l '^func Benchmark' $(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go') |
	xargs -n1 dirname | sort -u | sed 's|^|./|; s|^\./\./|./|')
out=${BENCH_GO_OUT:-$(mktemp)}
# -p 1: the drivers' benchmarks share the host's network and cgroup trees
go test -p 1 -run '^$' -bench . -benchmem -count "$COUNT" $pkgs | tee "$out" | grep -E '^(ok|FAIL|---)' >&2 || true
benchstat "$out"
[ -n "${BENCH_GO_OUT:-}" ] || rm -f "$out"
