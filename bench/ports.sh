#!/usr/bin/env bash
# bench/ports.sh: the first answer through a published port against the
# first answer through the container's own address, and the steady-state
# cost of one request through each (issue 16). Run as root on Debian:
#   make bench-ports                (or ./bench/ports.sh; make bench runs it too)
# Environment: BENCH_N (rounds, default 20), BENCH_REQUESTS (sequential
# requests through each path per round, default 200), BENCH_HUTCH (a hutch
# binary instead of building one), BENCH_OUT (the RESULTS.md whose
# "Published ports" section is replaced, default bench/RESULTS.md; "-" for
# none), BENCH_KEEPLOG (a folder to copy the logs and samples to).
#
# Each round: `hutch apply` of one busybox httpd container on a veth whose
# port 8000 is published on 127.0.0.1:P; from apply's start, the container's
# own address and 127.0.0.1:P are polled side by side until each answers
# (bench/portstats.py round); then the requests; then `hutch delete`. One
# unrecorded warm-up round comes first.
#
# What it makes on the host, every name carrying this run's random id RID
# (4 hex digits), all removed on exit (also on Ctrl-C or an error):
#   container bp<RID> (netns bp<RID>, cgroups hutch/bp<RID>, host veth
#   bpv<RID> with 10.X.Y.1/24, the container 10.X.Y.2/24, a /24 that no host
#   route or address overlaps), its rules in nftables' table inet hutch and
#   the host parameters it holds (net.ipv4.ip_forward, route_localnet of its
#   veth), under a temporary --root; one temporary folder /var/tmp/hports.*.
# The only traffic is to 127.0.0.1:P and to the container's address, the
# latter from sockets bound to the benchmark's veth (SO_BINDTODEVICE), so
# nothing leaves the host or the namespace made here.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE") # lib.sh's hutch_binary builds it
export REPO
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ROUNDS=${BENCH_N:-20}
REQUESTS=${BENCH_REQUESTS:-200}
OUT=${BENCH_OUT:-$HERE/RESULTS.md}
PY=/usr/bin/python3
CG=/sys/fs/cgroup
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

die() { echo "ports: $*" >&2; exit 1; }
say() { echo "ports: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run me as root (namespaces, veths, cgroups and nftables need it)"
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 1000)); then die "BENCH_N: $ROUNDS is not a count 1..1000"; fi
if ! [[ $REQUESTS =~ ^[0-9]+$ ]] || ((REQUESTS < 1 || REQUESTS > 100000)); then die "BENCH_REQUESTS: $REQUESTS is not a count 1..100000"; fi

# --- tools: Debian packages, installed only when missing -----------------
install_missing busybox:busybox-static ip:iproute2 nft:nftables python3:python3
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=$(command -v busybox)
[[ $(ldd "$BUSYBOX" 2>&1) == *"not a dynamic"* ]] || say "note: $BUSYBOX is not static (busybox-static's is)"

# --- names ------------------------------------------------------------------
RID=$(printf '%04x' $((RANDOM % 65536)))
NAME=bp$RID   # container and netns
HOSTIF=bpv$RID
read -r NET PORT < <($PY "$HERE/portstats.py" pick) || die "no free subnet or port"
[ -n "${PORT:-}" ] || die "no free 10.X.Y.0/24 or port on 127.0.0.1"
ADDR=$NET.2

# --- the temporary folder and the trap that removes everything -----------
W=$(mktemp -d /var/tmp/hports.XXXXXX) || die "mktemp failed"
mkdir -p "$W/log"
HROOT=$W/hroot
M=$W/port.yaml
SAMPLES=$W/samples.tsv
NOTES=$W/notes.txt
: >"$SAMPLES"
: >"$NOTES"
note() { echo "$*" >>"$NOTES"; say "$*"; }
HUTCH=""
TABLE_EXISTED=0
nft list table inet hutch >/dev/null 2>&1 && TABLE_EXISTED=1
NETNS_DIR_EXISTED=0
[ -d /run/netns ] && NETNS_DIR_EXISTED=1
CG_HIER=()
for h in "$CG"/*/; do
	h=${h%/}
	[ -e "$h/cgroup.procs" ] && CG_HIER+=("$h")
done
[ ${#CG_HIER[@]} -gt 0 ] || CG_HIER=("$CG")
note_cg_parents

# our_rules: "CHAIN HANDLE" of every rule of ours in hutch's table.
our_rules() {
	local c
	for c in prerouting output postrouting forward; do
		nft -a list chain inet hutch "$c" 2>/dev/null |
			awk -v c="$c" -v m="\"hutch:nftrule/$NAME/" 'index($0, m) {print c, $NF}'
	done
}
# our_procs: processes in our cgroups, and any running this run's binary or
# naming its folder.
our_procs() {
	local h p c
	for h in "${CG_HIER[@]}"; do find "$h/hutch/$NAME" -name cgroup.procs -exec cat {} + 2>/dev/null; done
	for p in /proc/[0-9]*; do
		mapfile -d '' -t c 2>/dev/null <"$p/cmdline" || continue
		[[ "${c[*]}" == *"$W/"* || "${c[*]}" == "hutch-supervisor $NAME" ]] && echo "${p##*/}"
	done
}
# sweep: removes by hand whatever of this run hutch delete left. Safe at any
# time: every name is ours.
sweep() {
	local pids c h d k v
	mapfile -t pids < <(our_procs | sort -u | grep -vx "$$")
	((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
	[ -e "/run/netns/$NAME" ] && ip netns del "$NAME" 2>/dev/null
	[ -e "/sys/class/net/$HOSTIF" ] && ip link del "$HOSTIF" 2>/dev/null
	while read -r c h; do
		[ -n "$h" ] && nft delete rule inet hutch "$c" handle "$h" 2>/dev/null
	done < <(our_rules)
	# hutch's table goes with its last rule; it was not there before us
	if ((!TABLE_EXISTED)) && nft list table inet hutch >/dev/null 2>&1 &&
		! nft list table inet hutch | grep -qE 'comment|counter|accept|drop|dnat|masquerade'; then
		nft delete table inet hutch 2>/dev/null
	fi
	# the host parameters we hold: drop our holder; the last holder puts the
	# first value back (what hutch's delete does)
	for d in /run/hutch/sysctl/host/*/; do
		d=${d%/}
		compgen -G "$d/holders/$NAME@*" >/dev/null || continue
		rm -f "$d/holders/$NAME"@*
		if [ -z "$(ls -A "$d/holders" 2>/dev/null)" ]; then
			k=${d##*/}
			if [ -f "$d/original" ] && v=$(cat "$d/original"); then
				echo "$v" >"/proc/sys/${k//.//}" 2>/dev/null
			fi
			rm -rf "$d"
		fi
	done
	rmdir /run/hutch/sysctl/host /run/hutch/sysctl /run/hutch 2>/dev/null
	awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r d; do umount -l "$d" 2>/dev/null; done
	for _ in $(seq 50); do
		local left=0
		for h in "${CG_HIER[@]}"; do
			[ -d "$h/hutch/$NAME" ] || continue
			find "$h/hutch/$NAME" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$h/hutch/$NAME" ] && left=1
		done
		((left)) || break
		sleep 0.1
	done
	remove_cg_parents
}

cleanup() {
	local rc=$? left
	trap - EXIT INT TERM HUP
	set +e
	say "cleaning up"
	if [ -n "$HUTCH" ] && [ -e "$M" ]; then
		timeout 60 "$HUTCH" --root "$HROOT" delete -f "$M" >>"$W/log/cleanup.log" 2>&1
	fi
	sweep
	((NETNS_DIR_EXISTED)) || rmdir /run/netns 2>/dev/null
	if [ -n "${BENCH_KEEPLOG:-}" ]; then
		mkdir -p "$BENCH_KEEPLOG" && cp -r "$W/log" "$SAMPLES" "$NOTES" "$M" "$BENCH_KEEPLOG/" 2>/dev/null
	fi
	left=$(
		[ -e "/run/netns/$NAME" ] && echo "netns $NAME"
		[ -e "/sys/class/net/$HOSTIF" ] && echo "link $HOSTIF"
		ls -d "$CG"/*/hutch/"$NAME" "$CG/hutch/$NAME" 2>/dev/null
		grep -F "$W/" /proc/self/mountinfo
		our_rules | sed 's/^/nft rule /'
		ls -d /run/hutch/sysctl/host/*/holders/"$NAME"@* 2>/dev/null
		our_procs | sort -u | grep -vx "$$" | sed 's/^/pid /'
	)
	rm -rf "$W"
	[ -e "$W" ] && left+=$'\n'"folder $W"
	if [ -n "$left" ]; then
		echo "ports: ====================== LEFT BEHIND ======================" >&2
		echo "$left" >&2
		echo "ports: =============================================================" >&2
		rc=1
	else
		say "nothing left: no netns, link, cgroup, mount, nftables rule, held parameter, process or folder of this run"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- hutch and the manifest ------------------------------------------------
hutch_binary
[ -n "$HUTCH" ] || die "no hutch binary (go build failed: $(tail -n 3 "$W/log/build.log" 2>/dev/null | tr '\n' ' '))"
cat >"$M" <<EOF
# bench/ports.sh: one web server, its port 8000 published on 127.0.0.1:$PORT
apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: $NAME
spec:
  rootfs:
    binaries: [$BUSYBOX]
    files:
      - path: /www/index.html
        content: "hutch ports bench\n"
  process:
    args: [busybox, httpd, -f, -p, "8000", -h, /www]
    stopTimeout: 300ms
    # apply returns once the process is started, as in run.sh and lab.sh:
    # the pollers measure the rest
    startWindow: 0s
  network:
    namespace: $NAME
    interfaces:
      - name: eth0
        addresses: [$ADDR/24]
        host:
          name: $HOSTIF
          addresses: [$NET.1/24]
    ports:
      - {hostPort: $PORT, containerPort: 8000, hostIP: 127.0.0.1}
  resources:
    memory: 16M
EOF
"$HUTCH" --root "$HROOT" validate -f "$M" >"$W/log/validate.log" 2>&1 ||
	die "the manifest does not validate: $(tr '\n' ' ' <"$W/log/validate.log" | cut -c1-300)"

[ -n "${BENCH_HUTCH:-}" ] && note "hutch: the binary BENCH_HUTCH names ($BENCH_HUTCH), not one built here"
note "container $NAME at $ADDR on $HOSTIF ($NET.0/24, no host route or address overlaps it), published on 127.0.0.1:$PORT; names carry the run id $RID"

# round I: one apply, the measures, one delete (timed: delete until it returns)
round() {
	local i=$1 t0 t1
	if ! $PY "$HERE/portstats.py" round --hutch "$HUTCH" --root "$HROOT" --manifest "$M" --ifname "$HOSTIF" \
		--addr "$ADDR" --port "$PORT" --requests "$REQUESTS" --round "$i" --samples "$W/round.tsv" --logs "$W/log"; then
		note "round $i failed: $(tail -n 3 "$W/log/apply.log" | tr '\n' ' ' | cut -c1-300)"
		return 1
	fi
	t0=${EPOCHREALTIME/./}
	if ! "$HUTCH" --root "$HROOT" delete -f "$M" </dev/null >"$W/log/delete.log" 2>&1; then
		note "round $i: delete failed: $(tail -n 3 "$W/log/delete.log" | tr '\n' ' ' | cut -c1-300)"
		return 1
	fi
	t1=${EPOCHREALTIME/./}
	printf '%s\tdelete\t%s\n' "$i" "$((t1 - t0))" >>"$W/round.tsv"
}

say "warm-up round (not recorded)"
: >"$W/round.tsv"
round 0 || die "the warm-up round failed"
read -r l1 l5 l15 _ </proc/loadavg
say "$ROUNDS rounds of $REQUESTS requests per path (load $l1 $l5 $l15)"
fails=0
for ((i = 1; i <= ROUNDS; i++)); do
	: >"$W/round.tsv"
	if round "$i"; then
		cat "$W/round.tsv" >>"$SAMPLES"
	else
		fails=$((fails + 1))
		timeout 60 "$HUTCH" --root "$HROOT" delete -f "$M" >>"$W/log/cleanup.log" 2>&1
		sweep
		((fails >= 3)) && die "three rounds failed"
	fi
done
((fails)) && note "failed rounds: $fails (see above)"

$PY "$HERE/portstats.py" report --samples "$SAMPLES" --notes "$NOTES" --out "$OUT" --hutch "$HUTCH" \
	--load "$l1 $l5 $l15" --requests "$REQUESTS"
