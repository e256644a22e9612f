#!/usr/bin/env bash
# Builds hutch on a fresh Debian machine, as root, and brings the seed
# tutorial's web server up from manifests/webserver.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
./scripts/deps.sh
go build -o bin/hutch ./cmd/apply
install -m 0755 bin/hutch /usr/local/bin/hutch
hutch validate -f manifests/webserver.yaml
