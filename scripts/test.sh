#!/usr/bin/env bash
# Runs every hutch test on a fresh Debian machine, as root: installs what the
# tests need (Debian packages, Go modules), then vet, then the whole suite.
# Root tests run for real; under CI=true a root test that would skip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
./scripts/deps.sh
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
./scripts/build.sh bin/hutch
# Packages run one after another (-p 1): root tests share the host's network
# and cgroup trees, and two cores are better spent inside each package.
go test -p 1 -count=1 -timeout 60m "$@" ./...
