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
check_counts BENCH_LAB_NS 4000
[[ $WARM_N =~ ^[0-9]+$ ]] || die "BENCH_LAB_WARM: want a count"

# --- tools: Debian packages, installed only when missing -----------------
install_missing busybox:busybox-static curl:curl ip:iproute2 nft:nftables shuf:coreutils python3:python3
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
read -r HX SX < <(free_subnets 2) || die "no two free 10.X.0.0/16 (X in 100..254) on this host"
[ -n "${SX:-}" ] || die "no two free 10.X.0.0/16 (X in 100..254) on this host"
# HADDR[K], SADDR[K]: the address of the K-th container (in name order) of
# each lab's 10.X.0.0/16: what IPAM gives, the lowest free after the
# gateway .1, so 10.X.0.(K+1).
HADDR=() SADDR=()
for ((k = 1; k <= MAXN || k <= WARM_N; k++)); do
	HADDR[k]=10.$HX.$(((k + 1) / 256)).$(((k + 1) % 256))
	SADDR[k]=10.$SX.$(((k + 1) / 256)).$(((k + 1) % 256))
done

# --- the temporary folder and the trap that removes everything -----------
work_folder hlab # W, W/log, W/m, SAMPLES, NOTES; msleep, now, since, note, rec
mkdir "$W/www"
echo "hutch lab bench" >"$W/www/index.html"
HROOT=$W/hroot
: >"$W/hveths"
cg_hierarchies
shell_memory_cgroup
note_netns_dir
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
	local d p
	for d in $(ours_cgroups); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done
	for p in "${SHELL_PIDS[@]}"; do [ -e "/proc/$p" ] && echo "$p"; done
	procs_naming "$W/" "hutch-supervisor $NET-"
}

# sweep: removes by hand whatever of this run is left (after a failed run,
# and at exit after hutch delete). Safe at any time: every name is ours.
sweep() {
	local l d h
	kill_listed ours_procs
	for d in $(ours_netns); do ip netns del "$d" 2>/dev/null; done
	for l in $(ours_links); do ip link del "$l" 2>/dev/null; done
	nft delete table inet "$STAB" 2>/dev/null
	for h in $(hutch_rule_handles); do nft delete rule inet hutch forward handle "$h" 2>/dev/null; done
	awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r d; do umount -l "$d" 2>/dev/null; done
	remove_cgroup_trees ours_cgroups
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	# after a closed pipe (make bench-lab | head), the writes below fail
	# quietly instead of killing the cleanup
	trap '' PIPE
	set +e
	# a Ctrl-C inside shell_up (stderr to shell.err) would say the rest into W
	restore_stdio
	say "cleaning up"
	# the shell's servers first; then hutch, the way a user would, then by
	# hand whatever is left
	((${#SHELL_PIDS[@]})) && kill -KILL "${SHELL_PIDS[@]}" 2>/dev/null
	delete_manifests 120
	sweep
	wait 2>/dev/null
	restore_netns_dir
	# what is left, if anything, is said out loud (W/hveths is read before
	# finish removes W)
	finish lab "$rc" "$(
		ip netns list 2>/dev/null | grep -E "^($NET|$SPFX)-"
		ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -xE "$HBR|$SBR|$SPFX-.*"
		while read -r l; do [ -n "$l" ] && ip link show "$l" >/dev/null 2>&1 && echo "link $l"; done <"$W/hveths"
		ours_cgroups
		grep -E "$W/| /run/netns/($NET|$SPFX)-" /proc/self/mountinfo
		nft list tables 2>/dev/null | grep -w "$STAB"
		hutch_rule_handles | sed 's/^/nft rule handle /'
		ours_procs | sort -u | grep -vx "$$" | sed 's/^/pid /'
	)" "netns, link, cgroup, mount, nftables rule, process or folder"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
trap 'exit 141' PIPE

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

# What must disappear for a lab to be gone (lib.sh's poll_gone), filled after
# up (untimed): GONE_PATHS and GONE_PIDS by each runner's gone list; no mount
# of the run's folder or of either lab's netns may be left.
GONE_PATHS=() GONE_PIDS=()
GONE_MOUNTS=("$W/" " /run/netns/$NET-" " /run/netns/$SPFX-")

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
	local n=$1 i=$2 m=$W/m/lab$1.yaml t0 t k lim
	lim=$(phase_limit "$n")
	[ -e "$m" ] || manifest "$n" "$m"
	local targets=()
	for ((k = 1; k <= n; k++)); do targets+=("$HBR,${HADDR[k]}:8000"); done
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
	if ! poll_serve "$lim" "${targets[@]}"; then
		note "hutch: N=$n run $i: not every server answered: $POLL_LEFT; hutch get: $("$HUTCH" --root "$HROOT" get | head -n 5 | tr '\n' ' ')"
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
	rec_phases labstats.py "$n" "$i" apply "$t_apply" "$d_apply" "$W/log/hutch-apply.err"
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
	if ! poll_gone "$lim"; then
		note "hutch: N=$n run $i: not gone $lim s after delete started: $POLL_LEFT"
		return 1
	fi
	since "$t0"
	rec "$n" hutch delete "$i" "$E"
	rec_phases labstats.py "$n" "$i" delete "$t0" "$d_delete" "$W/log/hutch-delete.err"
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
		# the server keeps none of the script's descriptors (stdio, the fifo)
		# shellcheck disable=SC2016 # $$ is the wrapper's own pid
		sh -c 'echo $$ >"$0/cgroup.procs" && exec ip netns exec "$1" busybox httpd -f -p 8000 -h "$2"' \
			"$cg" "$ns" "$W/www" </dev/null >>"$W/log/shell-httpd.log" 2>&1 {STDOUT_FD}>&- {STDERR_FD}>&- {SLEEPFD}>&- &
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
# shell_targets N: TARGETS, what answers when the shell's lab of N is up
# (lib.sh's shell_run polls them).
shell_targets() {
	local k
	TARGETS=()
	for ((k = 1; k <= $1; k++)); do TARGETS+=("$SBR,${SADDR[k]}:8000"); done
}

# hutch_recover N: after a failed run (lib.sh's one), hutch deletes what it
# made, as a user would; sweep removes the rest.
hutch_recover() { timeout 120 "$HUTCH" --root "$HROOT" delete -f "$W/m/lab$1.yaml" >>"$W/log/cleanup.log" 2>&1; }

# --- main ---------------------------------------------------------------------
note "subnets: hutch 10.$HX.0.0/16 on $HBR, shell 10.$SX.0.0/16 on $SBR (no host route or address overlaps either); names carry the run id $RID"
note "memory cgroup of the shell lab: cgroup v$CGV ($SCGROOT/$SCG/K/$MEMFILE = 16M)"
# runs_for N: runs per runner at N (BENCH_LAB_RUNS, else 3 below 100, 2 from 100)
runs_for() {
	if [ -n "${BENCH_LAB_RUNS:-}" ]; then echo "$BENCH_LAB_RUNS"
	elif (($1 < 100)); then echo 3
	else echo 2; fi
}
run_all runs_for

$PY "$HERE/labstats.py" --samples "$SAMPLES" --notes "$NOTES" --logs "$W/log" --out "$OUT" \
	--hutch "$HUTCH" --loads "${LOADS[@]}" --shell-cgroup "v$CGV"
