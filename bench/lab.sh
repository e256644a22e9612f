#!/usr/bin/env bash
# bench/lab.sh: a lab of N web servers on one network, made by hutch (one
# kind: Network and N containers) and by the equivalent ip/nft shell
# commands, side by side (issue 15). Run as root on Debian:
#   make bench-lab                  (or ./bench/lab.sh; make bench runs it too)
# Environment: BENCH_LAB_NS (default "20 200"), BENCH_LAB_RUNS (runs per
# runner and N; default 3 for N < 100, 2 from 100), BENCH_LAB_WARM (the
# unrecorded warm-up pair's N, default 20; 0 for none), BENCH_HUTCH (a hutch
# binary instead of building one), BENCH_OUT (the RESULTS.md whose "Labs"
# section is replaced, default bench/RESULTS.md; "-" for none),
# BENCH_LAB_TRACE (default 1: hutch runs with HUTCH_TRACE=1, whose lines give
# the table of where hutch's time goes; 0 for none), BENCH_KEEPLOG (a folder
# to copy the logs, samples and manifests to).
#
# For each N, runs alternate hutch, shell / shell, hutch, ... and each run
# times three phases:
#   apply        the command(s) that make the lab, until they return
#   first answer from then until every server has answered one HTTP GET
#   delete       the command(s) that remove the lab, until nothing is left
# and the table shows the medians, the cost per container (time / N) and its
# growth from the smallest N to the largest (goal: at most 1.2x).
#
# What it makes on the host, every name carrying this run's random id RID
# (4 hex digits), all removed on exit (also on Ctrl-C or an error):
#   hutch: network hl<RID> (bridge hutch-hl<RID>, a rule in nftables' table
#     inet hutch), containers hl<RID>-<K> (netns, cgroups hutch/hl<RID>-<K>,
#     veths hutch<hash>), all under a temporary --root;
#   shell: bridge hlsb<RID>, netns and host veths hls<RID>-<K>, nftables table
#     inet hls<RID>, cgroups hutchbench<RID>/<K> (memory), busybox httpd
#     processes; one temporary folder /var/tmp/hlab.*.
# Each lab has a 10.X.0.0/16 that no host route or address overlaps. The only
# traffic is curl to the lab's own addresses, bound to the lab's bridge
# (curl --interface if!BRIDGE), so nothing leaves the namespaces made here.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
NS_LIST=${BENCH_LAB_NS:-20 200}
OUT=${BENCH_OUT:-$HERE/RESULTS.md}
WARM_N=${BENCH_LAB_WARM:-20}
PY=/usr/bin/python3
CG=/sys/fs/cgroup
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

die() { echo "lab: $*" >&2; exit 1; }
say() { echo "lab: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run me as root (bridges, namespaces, veths and cgroups need it)"
MAXN=0
for n in $NS_LIST; do
	[[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 4000)) || die "BENCH_LAB_NS: $n is not a count 1..4000"
	((n > MAXN)) && MAXN=$n
done
[[ $WARM_N =~ ^[0-9]+$ ]] || die "BENCH_LAB_WARM: want a count"

# --- tools: Debian packages, installed only when missing -----------------
install_missing busybox:busybox-static curl:curl ip:iproute2 nft:nftables python3:python3
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=$(command -v busybox)
# hutch copies the binary into the rootfs with the libraries ldd names: a
# static busybox (busybox-static's) needs none.
[[ $(ldd "$BUSYBOX" 2>&1) == *"not a dynamic"* ]] || say "note: $BUSYBOX is not static (busybox-static's is)"

# --- names ------------------------------------------------------------------
RID=$(printf '%04x' $((RANDOM % 65536)))
NET=hl$RID                 # hutch's network (at most 9 bytes: bridge hutch-NAME <= 15)
HBR=hutch-$NET             # its bridge
SBR=hlsb$RID               # the shell's bridge
SPFX=hls$RID               # the shell's netns and host veths: hls<RID>-<K>
STAB=hls$RID               # the shell's nftables table (inet)
SCG=hutchbench$RID         # the shell's cgroup parent
W_DIGITS=${#MAXN}
# KN[K]: K zero-padded, so that name order is number order (IPAM gives
# addresses in name order). Made once, so the timed paths never fork for it.
KN=()
for ((k = 1; k <= MAXN || k <= WARM_N; k++)); do printf -v 'KN[k]' '%0*d' "$W_DIGITS" "$k"; done

# --- two free /16s: no host route (any table) or address may overlap them --
pick_subnets() {
	$PY - "$RID" <<'EOF'
import ipaddress, random, subprocess, sys
used = []
for cmd in (["ip", "-4", "-o", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr", "show"]):
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    for line in out.splitlines():
        words = line.split()
        cands = words[:1] + [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("inet", "local", "broadcast")]
        for c in cands:
            if c == "default":
                continue
            try:
                n = ipaddress.ip_network(c, strict=False)
            except ValueError:
                continue
            if n.prefixlen > 0:
                used.append(n)
rng = random.Random(int(sys.argv[1], 16))
free = []
for x in rng.sample(range(100, 255), 155):
    n = ipaddress.ip_network(f"10.{x}.0.0/16")
    if not any(n.overlaps(u) for u in used):
        free.append(x)
    if len(free) == 2:
        break
if len(free) < 2:
    sys.exit("no two free 10.X.0.0/16 (X in 100..254) on this host")
print(*free)
EOF
}
read -r HX SX < <(pick_subnets) || die "no free subnet"
[ -n "${SX:-}" ] || die "no two free 10.X.0.0/16 on this host"
# HADDR[K], SADDR[K]: the address of the K-th container (in name order) of
# each lab's 10.X.0.0/16: what IPAM gives, the lowest free after the
# gateway .1, so 10.X.0.(K+1).
HADDR=() SADDR=()
for ((k = 1; k <= MAXN || k <= WARM_N; k++)); do
	HADDR[k]=10.$HX.$(((k + 1) / 256)).$(((k + 1) % 256))
	SADDR[k]=10.$SX.$(((k + 1) / 256)).$(((k + 1) % 256))
done

# --- the temporary folder and the trap that removes everything -----------
W=$(mktemp -d /var/tmp/hlab.XXXXXX) || die "mktemp failed"
mkdir -p "$W/log" "$W/m" "$W/www"
echo "hutch lab bench" >"$W/www/index.html"
HROOT=$W/hroot
SAMPLES=$W/samples.tsv
NOTES=$W/notes.txt
: >"$SAMPLES"
: >"$NOTES"
: >"$W/hveths"
mkfifo "$W/sleep.fifo"
exec {SLEEPFD}<>"$W/sleep.fifo"
# msleep MS: sleeps without forking (read with a timeout on a fifo nobody writes).
msleep() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u "$SLEEPFD" _ || :; }
now() { T=${EPOCHREALTIME/./}; }                  # microseconds, no fork
# since T0: E = microseconds since T0 (a variable, not $(...): no fork in
# the timed path)
since() { E=$((${EPOCHREALTIME/./} - $1)); }

CG_HIER=()
for h in "$CG"/*/; do
	h=${h%/}
	[ -e "$h/cgroup.procs" ] && CG_HIER+=("$h")
done
# The shell lab's memory cgroup: v1's memory hierarchy, or the unified root
# on a cgroup v2 host (with +memory in the parent's subtree_control).
if [ -e "$CG/cgroup.controllers" ]; then
	CGV=2 SCGROOT=$CG MEMFILE=memory.max
elif [ -e "$CG/memory/cgroup.procs" ]; then
	CGV=1 SCGROOT=$CG/memory MEMFILE=memory.limit_in_bytes
else
	die "no memory cgroup: neither $CG/cgroup.controllers (v2) nor $CG/memory (v1)"
fi
[ ${#CG_HIER[@]} -gt 0 ] || CG_HIER=("$CG")
NETNS_DIR_EXISTED=0
NETNS_MNT_EXISTED=0
[ -d /run/netns ] && NETNS_DIR_EXISTED=1
awk '$5 == "/run/netns" {f=1} END {exit !f}' /proc/self/mountinfo && NETNS_MNT_EXISTED=1
note_cg_parents

HUTCH=""
SHELL_PIDS=()

# ours_links: every link on the host that this run named (bridges, the
# shell's veths, and hutch's veths seen on its bridge).
ours_links() {
	local l
	for l in /sys/class/net/*; do
		l=${l##*/}
		case $l in "$HBR" | "$SBR" | "$SPFX"-*) echo "$l" ;; esac
	done
	while read -r l; do [ -n "$l" ] && [ -e "/sys/class/net/$l" ] && echo "$l"; done <"$W/hveths"
}
# ours_netns, ours_cgroups: the same for namespaces and cgroup folders.
ours_netns() {
	local d
	for d in /run/netns/"$NET"-* /run/netns/"$SPFX"-*; do [ -e "$d" ] && echo "${d##*/}"; done
}
ours_cgroups() {
	local h d
	for h in "${CG_HIER[@]}"; do
		for d in "$h/hutch/$NET"-* "$h/$SCG"; do [ -d "$d" ] && echo "$d"; done
	done
}
# hutch_rule_handles: handles of hutch's rule for our network in its table.
hutch_rule_handles() {
	nft -a list chain inet hutch forward 2>/dev/null |
		awk -v c="\"hutch:nftrule/$NET/" 'index($0, c) {print $NF}'
}
# ours_procs: processes of ours: in our cgroups, the shell's servers, and
# anything running this run's hutch binary or naming its state folder.
ours_procs() {
	local d p c
	for d in $(ours_cgroups); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done
	for p in "${SHELL_PIDS[@]}"; do [ -e "/proc/$p" ] && echo "$p"; done
	for p in /proc/[0-9]*; do
		mapfile -d '' -t c 2>/dev/null <"$p/cmdline" || continue
		[[ "${c[*]}" == *"$W/"* || "${c[*]}" == *"hutch-supervisor $NET-"* ]] && echo "${p##*/}"
	done
}

# sweep: removes by hand whatever of this run is left (after a failed run,
# and at exit after hutch delete). Safe at any time: every name is ours.
sweep() {
	local p l d h pids
	mapfile -t pids < <(ours_procs | sort -u | grep -vx "$$")
	((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
	for p in "${SHELL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	SHELL_PIDS=()
	for d in $(ours_netns); do ip netns del "$d" 2>/dev/null; done
	for l in $(ours_links); do ip link del "$l" 2>/dev/null; done
	nft delete table inet "$STAB" 2>/dev/null
	for h in $(hutch_rule_handles); do nft delete rule inet hutch forward handle "$h" 2>/dev/null; done
	awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r d; do umount -l "$d" 2>/dev/null; done
	for _ in $(seq 50); do
		left=0
		for d in $(ours_cgroups); do
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$d" ] && left=1
		done
		((left)) || break
		sleep 0.1
	done
	remove_cg_parents
}

cleanup() {
	local rc=$? left m
	trap - EXIT INT TERM HUP
	set +e
	say "cleaning up"
	# the servers first (the shell's, and every process in our cgroups), so
	# that hutch's delete does not wait for a stop timeout
	((${#SHELL_PIDS[@]})) && kill -KILL "${SHELL_PIDS[@]}" 2>/dev/null
	# then hutch, the way a user would, then by hand whatever is left
	if [ -n "$HUTCH" ]; then
		for m in "$W"/m/*.yaml; do
			[ -e "$m" ] && timeout 120 "$HUTCH" --root "$HROOT" delete -f "$m" >>"$W/log/cleanup.log" 2>&1
		done
	fi
	sweep
	wait 2>/dev/null
	if ((!NETNS_MNT_EXISTED)) && [ -z "$(ls -A /run/netns 2>/dev/null)" ] &&
		awk '$5 == "/run/netns" {f=1} END {exit !f}' /proc/self/mountinfo; then
		umount /run/netns 2>/dev/null # not lazy: it fails if anyone mounted a netns meanwhile
	fi
	((NETNS_DIR_EXISTED)) || rmdir /run/netns 2>/dev/null
	if [ -n "${BENCH_KEEPLOG:-}" ]; then
		mkdir -p "$BENCH_KEEPLOG" && cp -r "$W/log" "$SAMPLES" "$NOTES" "$W/m" "$BENCH_KEEPLOG/"
	fi
	# what is left, if anything, is said out loud
	left=$(
		ip netns list 2>/dev/null | grep -E "^($NET|$SPFX)-"
		ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -xE "$HBR|$SBR|$SPFX-.*"
		while read -r l; do [ -n "$l" ] && ip link show "$l" >/dev/null 2>&1 && echo "link $l"; done <"$W/hveths"
		ls -d "$CG"/*/hutch/"$NET"-* "$CG"/*/"$SCG" "$CG/$SCG" 2>/dev/null
		grep -E "$W/| /run/netns/($NET|$SPFX)-" /proc/self/mountinfo
		nft list tables 2>/dev/null | grep -w "$STAB"
		hutch_rule_handles | sed 's/^/nft rule handle /'
		ours_procs | sort -u | grep -vx "$$" | sed 's/^/pid /'
	)
	rm -rf "$W"
	[ -e "$W" ] && left+=$'\n'"folder $W"
	if [ -n "$left" ]; then
		echo "lab: ====================== LEFT BEHIND ======================" >&2
		echo "$left" >&2
		echo "lab: ===========================================================" >&2
		rc=1
	else
		say "nothing left: no netns, link, cgroup, mount, nftables rule, process or folder of this run"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

note() { echo "$*" >>"$NOTES"; say "$*"; }
# rec N RUNNER PHASE RUN MICROSECONDS
WARMUP=0
rec() { ((WARMUP)) || printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$SAMPLES"; }

# --- hutch ----------------------------------------------------------------
hutch_binary
[ -n "$HUTCH" ] || die "no hutch binary (go build failed: $(tail -n 3 "$W/log/build.log" 2>/dev/null | tr '\n' ' '))"

# manifest N FILE: one network and N busybox web servers on it.
manifest() {
	local n=$1 k
	{
		cat <<EOF
# bench/lab.sh: a lab of $n web servers on network $NET
apiVersion: hutch/v1alpha1
kind: Network
metadata:
  name: $NET
spec:
  subnets:
    - cidr: 10.$HX.0.0/16
EOF
		for ((k = 1; k <= n; k++)); do
			cat <<EOF
---
apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: $NET-${KN[k]}
spec:
  rootfs:
    binaries: [$BUSYBOX]
    files:
      - path: /www/index.html
        content: "hutch lab bench\n"
  process:
    args: [busybox, httpd, -f, -p, "8000", -h, /www]
    stopTimeout: 300ms
    startWindow: 0s
  network:
    interfaces:
      - name: eth0
        network: $NET
        defaultRoute: true
  resources:
    memory: 16M
EOF
		done
	} >"$2"
}

# HUTCH_TRACE set to the empty string is off (no env(1) in the timed path).
# On, hutch writes a line to stderr (a file here) per step and phase: a few
# ms at N=200.
TRACE=1
[ "${BENCH_LAB_TRACE:-1}" = 0 ] && TRACE=""
# rec_phases N RUN apply|delete START_US TOTAL_US TRACEFILE: hutch's phases
# of that command, from its trace lines (untimed).
rec_phases() {
	local n=$1 i=$2 k v
	[ -n "$TRACE" ] || return 0
	while read -r k v; do rec "$n" hutch "$k" "$i" "$v"; done < <($PY "$HERE/labstats.py" --phases "$3" "$4" "$5" "$6")
}

# --- waiting ------------------------------------------------------------------
# wait_serve BRIDGE ADDR...: until every ADDR:8000 answered one GET with 200.
# One curl per sweep over the servers still silent (up to 32 connections at
# once), bound to the lab's bridge; 2 ms between sweeps; 120 s at most.
wait_serve() {
	local br=$1 a code url deadline=$((${EPOCHREALTIME/./} + 120000000))
	shift
	local -A pending=()
	for a in "$@"; do pending[$a]=1; done
	local args
	while ((${#pending[@]})); do
		args=()
		for a in "${!pending[@]}"; do args+=(-o /dev/null "http://$a:8000/"); done
		while read -r code url; do
			[ "$code" = 200 ] || continue
			url=${url#http://}
			unset "pending[${url%%:*}]"
		done < <(curl -s --parallel --parallel-max 32 --interface "if!$br" --connect-timeout 2 --max-time 5 \
			-w '%{http_code} %{url_effective}\n' "${args[@]}" 2>/dev/null)
		((${#pending[@]})) || return 0
		if ((${EPOCHREALTIME/./} > deadline)); then
			note "not serving after 120 s: ${#pending[@]} of $# ($(echo "${!pending[@]}" | cut -c1-200))"
			return 1
		fi
		msleep 2
	done
}

# GONE_PATHS and GONE_PIDS: what must disappear for a lab to be gone, filled
# after up (untimed). wait_gone polls them in order (2 ms), never forking: a
# thing seen gone stays gone, so one pass with a cursor is exact.
GONE_PATHS=()
GONE_PIDS=()
wait_gone() {
	local i=0 j=0 line deadline=$((${EPOCHREALTIME/./} + 120000000)) mi
	while ((i < ${#GONE_PATHS[@]})); do
		if [ -e "${GONE_PATHS[i]}" ]; then
			((${EPOCHREALTIME/./} > deadline)) && { note "not gone after 120 s: ${GONE_PATHS[i]}"; return 1; }
			msleep 2
		else
			((i++))
		fi
	done
	# a zombie has released everything but its pid: it counts as gone
	while ((j < ${#GONE_PIDS[@]})); do
		if read -r line 2>/dev/null <"/proc/${GONE_PIDS[j]}/stat" && line=${line##*) } && [ "${line%% *}" != Z ]; then
			((${EPOCHREALTIME/./} > deadline)) && { note "not gone after 120 s: pid ${GONE_PIDS[j]}"; return 1; }
			msleep 2
		else
			((j++))
		fi
	done
	while :; do
		mapfile -t mi </proc/self/mountinfo
		[[ "${mi[*]}" == *"$W/"* || "${mi[*]}" == *" /run/netns/$NET-"* || "${mi[*]}" == *" /run/netns/$SPFX-"* ]] || return 0
		((${EPOCHREALTIME/./} > deadline)) && { note "not gone after 120 s: a mount"; return 1; }
		msleep 2
	done
}

# --- runner: hutch ------------------------------------------------------------
# hutch_gone_list N: what hutch made for a lab of N, read after up.
hutch_gone_list() {
	local n=$1 k name h v p
	GONE_PATHS=() GONE_PIDS=()
	for v in /sys/class/net/"$HBR"/brif/*; do
		[ -e "$v" ] && { GONE_PATHS+=("/sys/class/net/${v##*/}"); echo "${v##*/}" >>"$W/hveths"; }
	done
	for ((k = 1; k <= n; k++)); do
		name=$NET-${KN[k]}
		GONE_PATHS+=("/run/netns/$name" "$HROOT/containers/$name")
		for h in "${CG_HIER[@]}"; do GONE_PATHS+=("$h/hutch/$name"); done
	done
	GONE_PATHS+=("/sys/class/net/$HBR")
	mapfile -t GONE_PIDS < <(ours_procs | sort -un | grep -vx "$$")
}

hutch_run() { # N RUN
	local n=$1 i=$2 m=$W/m/lab$1.yaml t0 t k
	[ -e "$m" ] || manifest "$n" "$m"
	local addrs=("${HADDR[@]:1:n}")
	now
	t0=$T
	if ! HUTCH_TRACE=$TRACE "$HUTCH" --root "$HROOT" apply -f "$m" </dev/null >"$W/log/hutch-apply.log" 2>"$W/log/hutch-apply.err"; then
		note "hutch: N=$n run $i: apply failed: $(tail -q -n 3 "$W/log/hutch-apply.err" "$W/log/hutch-apply.log" | tr '\n' ' ' | cut -c1-400)"
		return 1
	fi
	since "$t0"
	t=$E
	rec "$n" hutch apply "$i" "$t"
	local t_apply=$t0 d_apply=$t
	now
	t0=$T
	if ! wait_serve "$HBR" "${addrs[@]}"; then
		note "hutch: N=$n run $i: not every server answered; hutch get: $("$HUTCH" --root "$HROOT" get | head -n 5 | tr '\n' ' ')"
		return 1
	fi
	since "$t0"
	rec "$n" hutch serve "$i" "$E"
	# untimed: IPAM gave the addresses computed above, and what to wait for
	"$HUTCH" --root "$HROOT" get -o json >"$W/get.json" 2>&1
	$PY - "$W/get.json" "$NET" "$HX" "$W_DIGITS" <<'EOF' || note "hutch: N=$n: addresses differ from the computed ones (the first answer wait used the computed ones)"
import json, sys
got = {c["name"]: c.get("addresses", []) for c in json.load(open(sys.argv[1]))}
net, x, w = sys.argv[2], sys.argv[3], int(sys.argv[4])
for name, a in got.items():
    if not name.startswith(net + "-"):
        continue
    v = int(name[len(net) + 1:]) + 1
    if a != [f"10.{x}.{v // 256}.{v % 256}/16"]:
        sys.exit(1)
EOF
	rec_phases "$n" "$i" apply "$t_apply" "$d_apply" "$W/log/hutch-apply.err"
	hutch_gone_list "$n"
	now
	t0=$T
	if ! HUTCH_TRACE=$TRACE "$HUTCH" --root "$HROOT" delete -f "$m" </dev/null >"$W/log/hutch-delete.log" 2>"$W/log/hutch-delete.err"; then
		note "hutch: N=$n run $i: delete failed: $(tail -q -n 3 "$W/log/hutch-delete.err" "$W/log/hutch-delete.log" | tr '\n' ' ' | cut -c1-400)"
		return 1
	fi
	since "$t0"
	t=$E
	local d_delete=$t
	wait_gone || return 1
	since "$t0"
	rec "$n" hutch delete "$i" "$E"
	rec_phases "$n" "$i" delete "$t0" "$d_delete" "$W/log/hutch-delete.err"
	if ((!WARMUP)); then
		cp "$W/log/hutch-apply.log" "$W/log/last-apply-$n.log"
		cp "$W/log/hutch-delete.log" "$W/log/last-delete-$n.log"
		cp "$W/log/hutch-apply.err" "$W/log/last-apply-$n.err"
		cp "$W/log/hutch-delete.err" "$W/log/last-delete-$n.err"
	fi
}

# --- runner: the shell's commands ---------------------------------------------
# The same lab by hand, one command per step, as a script would do it.
shell_up() { # N
	local n=$1 k ns v a cg gw=10.$SX.0.1
	ip link add "$SBR" type bridge || return 1
	ip addr add "$gw/16" dev "$SBR" || return 1
	ip link set "$SBR" up || return 1
	# hutch's isolation rule, in a table of the shell lab's own
	nft add table inet "$STAB" &&
		nft add chain inet "$STAB" forward '{ type filter hook forward priority filter; policy accept; }' &&
		nft add rule inet "$STAB" forward iifname '"hlsb*"' iifname != "$SBR" oifname "$SBR" drop || return 1
	mkdir "$SCGROOT/$SCG" || return 1
	if ((CGV == 2)); then echo +memory >"$SCGROOT/$SCG/cgroup.subtree_control" || return 1; fi
	for ((k = 1; k <= n; k++)); do
		ns=$SPFX-${KN[k]} v=$SPFX-${KN[k]} a=${SADDR[k]} cg=$SCGROOT/$SCG/${KN[k]}
		ip netns add "$ns" &&
			ip link add "$v" type veth peer name eth0 netns "$ns" &&
			ip link set "$v" master "$SBR" up &&
			ip -n "$ns" addr add "$a/16" dev eth0 &&
			ip -n "$ns" link set eth0 up &&
			ip -n "$ns" link set lo up &&
			ip -n "$ns" route add default via "$gw" &&
			mkdir "$cg" &&
			echo 16M >"$cg/$MEMFILE" || return 1
		# shellcheck disable=SC2016 # $$ is the wrapper's own pid
		sh -c 'echo $$ >"$0/cgroup.procs" && exec ip netns exec "$1" busybox httpd -f -p 8000 -h "$2"' \
			"$cg" "$ns" "$W/www" </dev/null >>"$W/log/shell-httpd.log" 2>&1 &
		SHELL_PIDS+=($!)
	done
}
shell_down() { # N
	local n=$1 k p
	((${#SHELL_PIDS[@]})) && kill -TERM "${SHELL_PIDS[@]}"
	for p in "${SHELL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	SHELL_PIDS=()
	for ((k = 1; k <= n; k++)); do ip netns del "$SPFX-${KN[k]}" || return 1; done
	ip link del "$SBR" || return 1
	nft delete table inet "$STAB" || return 1
	for ((k = 1; k <= n; k++)); do
		# the kernel may still be uncharging the killed server: retry a moment
		for ((p = 0; p < 1000; p++)); do rmdir "$SCGROOT/$SCG/${KN[k]}" 2>/dev/null && break; msleep 1; done
	done
	rmdir "$SCGROOT/$SCG"
}
shell_gone_list() {
	local n=$1 k
	GONE_PATHS=() GONE_PIDS=()
	for ((k = 1; k <= n; k++)); do
		GONE_PATHS+=("/run/netns/$SPFX-${KN[k]}" "/sys/class/net/$SPFX-${KN[k]}" "$SCGROOT/$SCG/${KN[k]}")
	done
	GONE_PATHS+=("/sys/class/net/$SBR" "$SCGROOT/$SCG")
	GONE_PIDS=("${SHELL_PIDS[@]}")
}
shell_run() { # N RUN
	local n=$1 i=$2 t0 k
	local addrs=("${SADDR[@]:1:n}")
	now
	t0=$T
	if ! shell_up "$n" 2>>"$W/log/shell.err"; then
		note "shell: N=$n run $i: up failed: $(tail -n 2 "$W/log/shell.err" | tr '\n' ' ')"
		return 1
	fi
	since "$t0"
	rec "$n" shell apply "$i" "$E"
	now
	t0=$T
	wait_serve "$SBR" "${addrs[@]}" || return 1
	since "$t0"
	rec "$n" shell serve "$i" "$E"
	shell_gone_list "$n"
	now
	t0=$T
	if ! shell_down "$n" 2>>"$W/log/shell.err"; then
		note "shell: N=$n run $i: teardown failed: $(tail -n 2 "$W/log/shell.err" | tr '\n' ' ')"
		return 1
	fi
	wait_gone || return 1
	since "$t0"
	rec "$n" shell delete "$i" "$E"
}

# one RUNNER N RUN: a run; after a failure, sweep by hand and go on.
declare -A FAILS=()
one() {
	local r=$1 n=$2 i=$3
	((${FAILS[$r]:-0} >= 3)) && return 0
	if ! "${r}_run" "$n" "$i"; then
		FAILS[$r]=$((${FAILS[$r]:-0} + 1))
		say "$r: N=$n run $i failed; removing what is left by hand"
		[ "$r" = hutch ] && timeout 120 "$HUTCH" --root "$HROOT" delete -f "$W/m/lab$n.yaml" >>"$W/log/cleanup.log" 2>&1
		sweep
	fi
	return 0
}

# --- main ---------------------------------------------------------------------
note "subnets: hutch 10.$HX.0.0/16 on $HBR, shell 10.$SX.0.0/16 on $SBR (no host route or address overlaps either); names carry the run id $RID"
note "memory cgroup of the shell lab: cgroup v$CGV ($SCGROOT/$SCG/K/$MEMFILE = 16M)"
if ((WARM_N > 0)); then
	# one unrecorded pair: page cache, hutch's rootfs layer cache (the same
	# --root serves every run), first execs
	say "warm-up pair, N=$WARM_N (not recorded)"
	WARMUP=1
	one hutch "$WARM_N" 0
	one shell "$WARM_N" 0
	WARMUP=0
fi
LOADS=()
for n in $NS_LIST; do
	runs=${BENCH_LAB_RUNS:-}
	[ -n "$runs" ] || { ((n < 100)) && runs=3 || runs=2; }
	read -r l1 l5 l15 _ </proc/loadavg
	LOADS+=("$n:$l1 $l5 $l15")
	say "== N=$n: $runs runs per runner (load $l1 $l5 $l15)"
	for ((i = 1; i <= runs; i++)); do
		if ((i % 2)); then order=(hutch shell); else order=(shell hutch); fi
		for r in "${order[@]}"; do
			now
			t_run=$T
			one "$r" "$n" "$i"
			since "$t_run"
			say "  N=$n run $i $r: $((E / 1000)) ms"
		done
	done
done
((${FAILS[hutch]:-0} + ${FAILS[shell]:-0})) && note "failed runs: hutch ${FAILS[hutch]:-0}, shell ${FAILS[shell]:-0} (see above)"

$PY "$HERE/labstats.py" --samples "$SAMPLES" --notes "$NOTES" --logs "$W/log" --out "$OUT" \
	--hutch "$HUTCH" --loads "${LOADS[@]}" --shell-cgroup "v$CGV"
