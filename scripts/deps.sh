#!/usr/bin/env bash
# Installs what building and testing hutch needs on a fresh Debian machine, as root:
# Debian packages through apt-get and Go modules through the module proxy.
set -euo pipefail
PKGS="ca-certificates git make gcc iproute2 curl python3 procps psmisc busybox-static"
# libc6-dev: the C headers cgo compiles drivers/process's C code with, and
# glibc's libc.a that scripts/build.sh links hutch statically against (gcc
# only recommends it); binutils' readelf checks the result.
PKGS+=" libc6-dev binutils"
PKGS+=" runc crun nftables"
# podman kube play of what hutch export --format kube writes
# (cmd/apply/export_podman_test.go): podman with runc and conmon, catatonit
# for the pause image podman builds locally (nothing is pulled), netavark
# and iptables for the pod's network and its published port.
PKGS+=" podman conmon catatonit netavark iptables"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=" $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi
if ! command -v go >/dev/null 2>&1; then
  export PATH=$PATH:/usr/local/go/bin
fi
cd "$(dirname "$0")/.."
go mod download
