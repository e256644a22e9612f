#!/usr/bin/env bash
# bench/run.sh: hutch side by side with the seed tutorial's own commands, runc
# and crun, in one run on one machine (issue 8). Run as root on Debian:
#   make bench                       (or ./bench/run.sh)
# Environment: BENCH_RUNS (runs per runner, default 10), BENCH_RUNS20 (runs of
# the N=20 section, default 10), BENCH_N (default 20), BENCH_HUTCH (a hutch
# binary to use instead of building one), BENCH_OUT (where the table goes,
# default bench/RESULTS.md; "-" for nowhere).
#
# What it touches on the host, all named so they cannot collide with a real
# container and all removed on exit (also on Ctrl-C or an error):
#   network namespaces hbench<K>, veth pairs hbh<K> (host) / hbc<K> (inside),
#   addresses 172.31.<K>.1/24 and .2/24, cgroups hbench/* and hutch/hbench*
#   in every hierarchy, runc and crun containers hbench-*, hutch containers
#   hbench<K> under a temporary --root, and one temporary folder.
# The only traffic is curl to 172.31.<K>.2:8000, bound to the benchmark's own
# veth (curl --interface), so nothing leaves the namespaces the script made.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
RUNS=${BENCH_RUNS:-10}
RUNS20=${BENCH_RUNS20:-10}
N=${BENCH_N:-20}
OUT=${BENCH_OUT:-$HERE/RESULTS.md}
PY=/usr/bin/python3
CG=/sys/fs/cgroup
# The environment of every container's process (runc's default; hutch's and
# the OCI config's too): the seed's gets no more of this shell's than they.
CPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run me as root (namespaces, veth pairs and cgroups need it)"
((N >= 1 && N <= 200)) || die "BENCH_N must be 1..200"

# --- tools: Debian packages, installed only when missing -----------------
install_missing runc:runc crun:crun curl:curl ip:iproute2 nsenter:util-linux unshare:util-linux \
	python3:python3 ldd:libc-bin

# --- preflight: nothing of ours may exist yet, and nothing of theirs may be in the way
[ -z "$(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^hb[hc][0-9]+(@|$)/')" ] ||
	die "links named hbh*/hbc* exist already (an earlier run killed hard?); remove them first"
ls /run/netns/hbench* >/dev/null 2>&1 && die "network namespaces hbench* exist already; remove them first"
[ -z "$(ip -4 -o addr show | awk '$4 ~ /^172\.31\./')" ] || die "the host uses 172.31.0.0/16; this benchmark needs it"
ip -4 route show | awk '$1 ~ /^172\.31\./ {f=1} END {exit !f}' && die "the host routes 172.31.0.0/16; this benchmark needs it"

# --- the temporary folder and the trap that removes everything -----------
W=$(mktemp -d /var/tmp/hbench.XXXXXX) || die "mktemp failed"
mkdir -p "$W/log" "$W/m" "$W/oci"
HROOT=$W/hroot
SAMPLES=$W/samples.tsv
SECTIONS=$W/sections.tsv
NOTES=$W/notes.txt
: >"$SAMPLES"
: >"$SECTIONS"
: >"$NOTES"
mkfifo "$W/sleep.fifo"
exec {SLEEPFD}<>"$W/sleep.fifo"
# msleep MS: sleeps without forking (read with a timeout on a fifo nobody writes).
msleep() { read -r -t "$(printf '0.%03d' "$1")" -u "$SLEEPFD" _ || :; }

CG_HIER=()
for h in "$CG"/*/; do
	h=${h%/}
	[ -e "$h/cgroup.procs" ] && CG_HIER+=("$h")
done
[ ${#CG_HIER[@]} -gt 0 ] || die "no cgroup hierarchies under $CG"
# iproute2 (and hutch) make /run/netns a mount point of its own on first use;
# if this run is what made it, the cleanup takes it away again.
NETNS_DIR_EXISTED=0
NETNS_MNT_EXISTED=0
[ -d /run/netns ] && NETNS_DIR_EXISTED=1
awk '$5 == "/run/netns" {f=1} END {exit !f}' /proc/self/mountinfo && NETNS_MNT_EXISTED=1
note_cg_parents

declare -A SEED_PID=()
HUTCH=""
HAVE_APPLY=0
HAVE_DELETE=0
HAVE_EXPORT=0

# crun refuses to start on a hybrid host whose cgroup2 lists controllers
# ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"); here cgroup2 at $CG/unified lists hugetlb. crunw runs crun in a
# private mount namespace in which that file is /dev/null.
CRUN_WRAP=0
if [ -e "$CG/unified/cgroup.controllers" ] && read -r _c <"$CG/unified/cgroup.controllers" && [ -n "${_c:-}" ]; then
	CRUN_WRAP=1
fi
crunw() {
	if ((CRUN_WRAP)); then
		unshare -m sh -c 'mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec crun "$@"' crun "$@"
	else
		crun "$@"
	fi
}

cleanup() {
	local rc=$? k h d l p
	trap - EXIT INT TERM HUP
	set +e
	say "cleaning up"
	# processes first: everything in our cgroups and the seed's launchers
	# (so that no delete below waits for a stop timeout)
	for p in "${SEED_PID[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for h in "${CG_HIER[@]}"; do
		for d in "$h"/hbench "$h"/hutch/hbench* "$h"/hutch/hbtrue; do
			[ -d "$d" ] || continue
			find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		done
	done
	# then hutch, the way a user would, then by hand whatever is left
	if [ -n "$HUTCH" ] && ((HAVE_DELETE)); then
		for m in "$W"/m/*.yaml; do
			[ -e "$m" ] && timeout 60 "$HUTCH" --root "$HROOT" delete -f "$m" >>"$W/log/cleanup.log" 2>&1
		done
	fi
	for id in $(runc list -q 2>/dev/null | grep '^hbench-'); do runc delete -f "$id" >/dev/null 2>&1; done
	for id in $(crunw list -q 2>/dev/null | grep '^hbench-'); do crunw delete -f "$id" >/dev/null 2>&1; done
	if [ -x "$HERE/procs.py" ]; then
		$PY "$HERE/procs.py" --match "$W/" --match "hutch-supervisor hbench" --match "hutch-supervisor hbtrue" --hostpid |
			awk '{print $1}' | xargs -r kill -KILL 2>/dev/null
	fi
	wait 2>/dev/null
	# network: host ends (deleting one end removes the pair), then namespaces
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^hb[hc][0-9]+$'); do
		ip link del "$l" 2>/dev/null
	done
	for d in /run/netns/hbench*; do [ -e "$d" ] && ip netns del "${d##*/}" 2>/dev/null; done
	if ((!NETNS_MNT_EXISTED)) && [ -z "$(ls -A /run/netns 2>/dev/null)" ] &&
		awk '$5 == "/run/netns" {f=1} END {exit !f}' /proc/self/mountinfo; then
		umount /run/netns 2>/dev/null # not lazy: it fails if anyone mounted a netns meanwhile
	fi
	((NETNS_DIR_EXISTED)) || rmdir /run/netns 2>/dev/null
	# mounts under the temporary folder, deepest first
	awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r d; do umount -l "$d" 2>/dev/null; done
	# cgroups, leaves first; retry while the kernel finishes killing
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		left=0
		for h in "${CG_HIER[@]}"; do
			for d in "$h"/hbench "$h"/hutch/hbench* "$h"/hutch/hbtrue; do
				[ -d "$d" ] || continue
				find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
				[ -d "$d" ] && left=1
			done
		done
		remove_cg_parents
		((left)) || break
		sleep 0.2
	done
	if [ -n "${BENCH_KEEPLOG:-}" ]; then
		cp -r "$W/log" "$BENCH_KEEPLOG" && cp "$SAMPLES" "$SECTIONS" "$NOTES" "$BENCH_KEEPLOG/"
	fi
	rm -rf "$W"
	# what is left, if anything, is said out loud
	left=$(
		ip -o link show | awk -F': ' '{print $2}' | grep -E '^hb[hc][0-9]+(@|$)'
		ls /run/netns 2>/dev/null | grep '^hbench'
		for h in "${CG_HIER[@]}"; do ls -d "$h"/hbench "$h"/hutch/hbench* "$h"/hutch/hbtrue 2>/dev/null; done
		grep -F "$W" /proc/self/mountinfo
	)
	if [ -n "$left" ]; then
		echo "bench: LEFT BEHIND:" >&2
		echo "$left" >&2
		rc=1
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- recording ----------------------------------------------------------
# rec SECTION RUNNER PAIR VALUE UNIT
WARMUP=0
rec() { ((WARMUP)) || printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$SAMPLES"; }
note() { echo "$*" >>"$NOTES"; say "$*"; }
# section KEY TITLE: starts a section and records the load average now.
section() {
	local la
	read -r la _ </proc/loadavg
	read -r -a la_all </proc/loadavg
	printf '%s\t%s\t%s\n' "$1" "$2" "${la_all[0]} ${la_all[1]} ${la_all[2]}" >>"$SECTIONS"
	say "== $2 (load ${la_all[0]} ${la_all[1]} ${la_all[2]})"
}
now() { T=${EPOCHREALTIME/./}; }          # microseconds, no fork
since() { echo $(((${EPOCHREALTIME/./} - $1))); } # microseconds since $1

# --- hutch ----------------------------------------------------------------
build_hutch() {
	hutch_binary
	if [ -z "$HUTCH" ]; then
		note "hutch: no binary (go build failed: $(tail -n 3 "$W/log/build.log" 2>/dev/null | tr '\n' ' '))"
		return
	fi
	"$HUTCH" apply --help >/dev/null 2>&1 && HAVE_APPLY=1
	"$HUTCH" delete --help >/dev/null 2>&1 && HAVE_DELETE=1
	((HAVE_APPLY && HAVE_DELETE)) || note "hutch: apply not available in this build"
}

# hutch_manifest K: manifests/webserver.yaml with the benchmark's names:
# container hbench<K>, netns hbench<K>, veth hbh<K>/hbc<K>, 172.31.<K>.0/24.
hutch_manifest() {
	local k=$1
	sed -e "s/^  name: webserver\$/  name: hbench$k/" \
		-e "s/container_ns/hbench$k/g" \
		-e "s/\\bveth0\\b/hbh$k/g" -e "s/\\bveth1\\b/hbc$k/g" \
		-e "s/172\\.16\\.0\\./172.31.$k./g" "$REPO/manifests/webserver.yaml" |
		# runc, crun and the seed's commands publish no port: neither does
		# the benchmark's hutch (a published port is four nftables rules).
		sed -e '/^    # The seed.s "Next steps: add port forwarding"/,/^        containerPort: 8000$/d' |
		# runc and crun return once the process is started; hutch apply by
		# default also watches it for a second (spec.process.startWindow)
		# or until its health check passes: neither is measured here, the
		# benchmark's own readiness poll is.
		sed -e 's/^    env: \[PYTHONUNBUFFERED=1\]$/&\n    startWindow: 0s/' -e '/^  healthCheck:$/,/^$/d'
}

make_manifests() {
	local k
	hutch_manifest 0 >"$W/m/one.yaml"
	: >"$W/m/many.yaml"
	for ((k = 1; k <= N; k++)); do
		((k > 1)) && echo --- >>"$W/m/many.yaml"
		hutch_manifest "$k" >>"$W/m/many.yaml"
	done
	# The benchmark must never touch the seed's own names.
	if grep -qE 'container_ns|veth[01]\b|172\.16\.|^  name: webserver$' "$W/m/one.yaml" "$W/m/many.yaml"; then
		die "generated manifests still name container_ns/veth0/172.16: fix hutch_manifest"
	fi
}

# --- the seed's network, with iproute2 (seed, runc and crun share it) ----
# These are the seed's commands of step 2, names changed.
net_up() {
	local k=$1 ns=hbench$1
	ip netns add "$ns" &&
		ip link add "hbh$k" type veth peer name "hbc$k" &&
		ip link set "hbc$k" netns "$ns" &&
		ip addr add "172.31.$k.1/24" dev "hbh$k" &&
		ip link set "hbh$k" up &&
		ip netns exec "$ns" ip addr add "172.31.$k.2/24" dev "hbc$k" &&
		ip netns exec "$ns" ip link set "hbc$k" up &&
		ip netns exec "$ns" ip link set lo up
}
# Deleting the host end removes both ends at once; `ip netns del` alone would
# leave the pair to the kernel's asynchronous namespace cleanup.
net_down() {
	ip link del "hbh$1" 2>/dev/null
	ip netns del "hbench$1"
}

# --- runner: the seed's commands, fixed ------------------------------------
# Step 3 (cgroups) plus the fix the seed forgets: the process is placed in
# them. Step 4 fixed: `unshare --net=PATH` does not join PATH, it creates a
# new network namespace and bind-mounts it over PATH, so the server would be
# unreachable; nsenter --net joins the named one. `unshare --pid` without
# --fork leaves the shell in the old pid namespace and its first child
# becomes pid 1. proc and sys are mounted inside the new mount namespace
# (the seed mounts them on the host, where they leak and show the host's
# processes).
seed_up() {
	local k=$1 m=$CG/memory/hbench/c$1 c=$CG/cpu/hbench/c$1
	net_up "$k" || return 1
	mkdir -p "$m" "$c" || return 1
	echo 50M >"$m/memory.limit_in_bytes" || return 1
	echo 100000 >"$c/cpu.cfs_period_us" || return 1
	echo 100000 >"$c/cpu.cfs_quota_us" || return 1
	(
		echo "$BASHPID" >"$m/cgroup.procs" && echo "$BASHPID" >"$c/cgroup.procs" &&
			exec env -i "PATH=$CPATH" nsenter --net="/run/netns/hbench$k" unshare --pid --fork --kill-child --mount --uts \
				sh -c 'mount -t proc proc "$0/proc" && mount -t sysfs sysfs "$0/sys" && cd "$0" && exec chroot . /usr/bin/python3 /server.py' "$ROOTFS"
	) </dev/null >>"$W/log/seed$k.log" 2>&1 &
	SEED_PID[$k]=$!
}
seed_down() {
	local k=$1 m=$CG/memory/hbench/c$1 c=$CG/cpu/hbench/c$1 pids
	mapfile -t pids <"$m/cgroup.procs"
	((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
	wait "${SEED_PID[$k]}" 2>/dev/null
	unset "SEED_PID[$k]"
	local i
	for ((i = 0; i < 5000; i++)); do
		rmdir "$m" 2>/dev/null || [ ! -d "$m" ] && break
		msleep 1
	done
	rmdir "$c"
	net_down "$k"
}

# --- runners: runc and crun, with the same netns made by iproute2 --------
oci_bundle() { # oci_bundle K: the bundle of container hbench-c<K>
	local k=$1
	mkdir -p "$W/oci/c$k"
	$PY "$HERE/ociconfig.py" "$W/oci/c$k/config.json" --rootfs "$ROOTFS" --cgroup "/hbench/c$k" \
		--netns "/run/netns/hbench$k" --hostname webserver --memory 52428800 --quota 100000 --period 100000 \
		-- /usr/bin/python3 /server.py
}
runc_up() {
	net_up "$1" || return 1
	runc run -d --bundle "$W/oci/c$1" "hbench-c$1" </dev/null >>"$W/log/runc$1.log" 2>&1
}
runc_down() {
	runc delete -f "hbench-c$1" >>"$W/log/runc$1.log" 2>&1
	net_down "$1"
}
crun_up() {
	net_up "$1" || return 1
	crunw run -d --bundle "$W/oci/c$1" "hbench-c$1" </dev/null >>"$W/log/crun$1.log" 2>&1
}
crun_down() {
	crunw delete -f "hbench-c$1" >>"$W/log/crun$1.log" 2>&1
	net_down "$1"
}

# --- runner: hutch ----------------------------------------------------------
hutch_up() { "$HUTCH" --root "$HROOT" apply -f "$1" </dev/null >"$W/log/hutch-apply.log" 2>&1; }
hutch_down() { "$HUTCH" --root "$HROOT" delete -f "$1" </dev/null >"$W/log/hutch-delete.log" 2>&1; }

# --- readiness and teardown checks ---------------------------------------
# wait_http K: curl 172.31.K.2:8000 through hbh<K> until it answers 200,
# sleeping 2 ms between tries. 20 s at most.
wait_http() {
	local k=$1 code deadline=$((${EPOCHREALTIME/./} + 20000000))
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --interface "if!hbh$k" --connect-timeout 1 --max-time 3 \
			"http://172.31.$k.2:8000/" 2>/dev/null)
		[ "$code" = 200 ] && return 0
		((${EPOCHREALTIME/./} > deadline)) && return 1
		msleep 2
	done
}

# cgpath RUNNER K: the container's cgroup below each hierarchy's root
cgpath() { if [ "$1" = hutch ]; then echo "hutch/hbench$2"; else echo "hbench/c$2"; fi; }

# leftover RUNNER K: what of container K still exists, one word per thing
# (empty when all is gone). Only builtins, so polling it costs no fork.
# PIDS_<K> lists the processes seen after up (container and supervisor).
declare -A PIDS=()
leftover() {
	local r=$1 k=$2 cgp h p line
	cgp=$(cgpath "$r" "$k")
	[ -e "/run/netns/hbench$k" ] && echo -n "netns "
	[ -e "/sys/class/net/hbh$k" ] && echo -n "link "
	for h in "${CG_HIER[@]}"; do [ -d "$h/$cgp" ] && { echo -n "cgroup:${h##*/} "; break; }; done
	# A zombie has released everything but its pid; reaping it is its
	# parent's business (here often pid 1, which the runner does not control).
	for p in ${PIDS[$k]:-}; do
		read -r line 2>/dev/null <"/proc/$p/stat" || continue
		line=${line##*) }
		[ "${line%% *}" != Z ] && { echo -n "pid:$p "; break; }
	done
	while read -r line; do
		[[ $line == *" /run/netns/hbench$k "* || $line == *"$W/"* ]] && { echo -n "mount "; break; }
	done </proc/self/mountinfo
}
# wait_gone RUNNER K...: polls (1 ms) until nothing of the containers is left.
wait_gone() {
	local r=$1 k left prev="" t_gone=${EPOCHREALTIME/./} deadline=$((${EPOCHREALTIME/./} + 20000000))
	shift
	for k in "$@"; do
		while :; do
			left=$(leftover "$r" "$k")
			[ -z "$left" ] && break
			[ "$left" != "${prev:-}" ] && echo "$r $k $(since "$t_gone") us: $left" >>"$W/log/gone.log"
			prev=$left
			if ((${EPOCHREALTIME/./} > deadline)); then
				note "$r: container $k not gone 20 s after delete: $left"
				return 1
			fi
			msleep 1
		done
	done
}
# remember_pids RUNNER K: the processes of container K (untimed).
remember_pids() {
	local r=$1 k=$2
	$PY "$HERE/procs.py" --cgroup "/$(cgpath "$r" "$k")" --netns "/run/netns/hbench$k" \
		--match "$HROOT/" --match "hbench-c$k" --match "hutch-supervisor hbench$k" >"$W/procs.$k"
	echo "$r $k: $(tr '\n' ';' <"$W/procs.$k")" >>"$W/log/pids.log"
	PIDS[$k]=$(awk '{print $1}' "$W/procs.$k" | tr '\n' ' ')
}

# force_clean RUNNER K...: after a failed run, removes what is left by hand.
force_clean() {
	local r=$1 k h
	shift
	case $r in
	hutch) [ -n "$HUTCH" ] && ((HAVE_DELETE)) && for m in "$W"/m/*.yaml; do timeout 60 "$HUTCH" --root "$HROOT" delete -f "$m" >/dev/null 2>&1; done ;;
	runc) for k in "$@"; do runc delete -f "hbench-c$k" >/dev/null 2>&1; done ;;
	crun) for k in "$@"; do crunw delete -f "hbench-c$k" >/dev/null 2>&1; done ;;
	esac
	for k in "$@"; do
		[ -n "${SEED_PID[$k]:-}" ] && { kill -KILL "${SEED_PID[$k]}" 2>/dev/null; wait "${SEED_PID[$k]}" 2>/dev/null; unset "SEED_PID[$k]"; }
		for h in "${CG_HIER[@]}"; do
			local d=$h/$(cgpath "$r" "$k")
			[ -d "$d" ] || continue
			xargs -r kill -KILL <"$d/cgroup.procs" 2>/dev/null
			for _ in $(seq 50); do rmdir "$d" 2>/dev/null && break; sleep 0.05; done
		done
		ip link del "hbh$k" 2>/dev/null
		ip netns del "hbench$k" 2>/dev/null
	done
}

# reset_rootfs: the shared rootfs of seed, runc and crun is writable, and a
# python started in it writes __pycache__ there that the next run would
# enjoy; hutch's container writes into an overlay that its delete discards.
# When the rootfs came without .pyc files, they are removed after every run
# (untimed) so each run starts from the same files as hutch's does.
CLEAN_PYC=0
reset_rootfs() {
	((CLEAN_PYC)) && find "$ROOTFS" -name __pycache__ -type d -prune -exec rm -rf {} +
	return 0
}

# --- one measurement of each kind --------------------------------------------
# one_updown RUNNER PAIR: up (start -> first 200) and down (delete -> gone)
# of the single web server (K=0).
FAILS_hutch=0
one_updown() {
	local r=$1 i=$2 t0 up down
	[ "$r" = hutch ] && ! hutch_ok && return 0
	now
	t0=$T
	if ! { "${r}_up" "$( [ "$r" = hutch ] && echo "$W/m/one.yaml" || echo 0)" && rec upcmd "$r" "$i" "$(since "$t0")" us && wait_http 0; }; then
		note "$r: run $i: up failed ($(tail -n 2 "$W/log/$r"*.log 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
		force_clean "$r" 0
		[ "$r" = hutch ] && ((FAILS_hutch++))
		return 0
	fi
	up=$(since "$t0")
	rec up "$r" "$i" "$up" us
	if [ "$r" = hutch ]; then
		# apply's own rootfs step: cold in the warm-up pair (a fresh --root),
		# warm (layer cached) afterwards
		local step
		step=$(awk '/^\+ rootfs .*\(created, [0-9.]+ m?s\)$/ {v = $(NF-1); if ($NF ~ /^ms/) v = v * 1000; else v = v * 1000000; print int(v); exit}' "$W/log/hutch-apply.log")
		if [ -n "$step" ]; then
			if ((WARMUP)); then
				WARMUP=0 rec rootfs-step "hutch apply, cold cache" 1 "$step" us
			else
				rec rootfs-step "hutch apply, warm cache" "$i" "$step" us
			fi
		fi
		cp "$W/log/hutch-apply.log" "$W/log/last-apply-1.log"
		keep_slowest apply-1 "$up" "$W/log/hutch-apply.log"
		# no-op: a second apply of the unchanged manifest
		now
		t0=$T
		hutch_up "$W/m/one.yaml" && rec noop1 hutch "$i" "$(since "$t0")" us
		cp "$W/log/hutch-apply.log" "$W/log/last-noop-1.log"
	fi
	remember_pids "$r" 0
	now
	t0=$T
	if ! { "${r}_down" "$( [ "$r" = hutch ] && echo "$W/m/one.yaml" || echo 0)" && wait_gone "$r" 0; }; then
		note "$r: run $i: down failed"
		force_clean "$r" 0
		[ "$r" = hutch ] && ((FAILS_hutch++))
		return 0
	fi
	down=$(since "$t0")
	rec down "$r" "$i" "$down" us
	[ "$r" = hutch ] || reset_rootfs
	if [ "$r" = hutch ]; then
		cp "$W/log/hutch-delete.log" "$W/log/last-delete-1.log"
		keep_slowest delete-1 "$down" "$W/log/hutch-delete.log"
	fi
	return 0
}

# many_updown RUNNER PAIR: N containers up and serving, then all deleted.
HUTCH_N_SLOW=0
many_updown() {
	local r=$1 i=$2 t0 k ks=()
	[ "$r" = hutch ] && ! hutch_ok && return 0
	# a hutch that needs minutes per pair would make the run last hours:
	# after 3 runs slower than BENCH_SLOW seconds (default 30), stop it
	if [ "$r" = hutch ] && ((HUTCH_N_SLOW >= 3)); then
		((i == RUNS20)) && note "hutch: N=$N: stopped after 3 runs that each took over ${BENCH_SLOW:-30} s (up + down)"
		return 0
	fi
	local t_start=${EPOCHREALTIME/./}
	for ((k = 1; k <= N; k++)); do ks+=("$k"); done
	local before=$W/pids.before
	$PY "$HERE/procs.py" --snapshot >"$before"
	now
	t0=$T
	local ok=1
	if [ "$r" = hutch ]; then
		hutch_up "$W/m/many.yaml" || ok=0
	else
		for k in "${ks[@]}"; do "${r}_up" "$k" || { ok=0; break; }; done
	fi
	if ((ok)); then for k in "${ks[@]}"; do wait_http "$k" || { ok=0; break; }; done; fi
	if ((!ok)); then
		note "$r: N=$N run $i: up failed ($(tail -n 2 "$W/log/$r"*.log 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
		force_clean "$r" "${ks[@]}"
		[ "$r" = hutch ] && ((FAILS_hutch++))
		return 0
	fi
	local t=$(since "$t0")
	rec up$N "$r" "$i" "$t" us
	if [ "$r" = hutch ]; then
		cp "$W/log/hutch-apply.log" "$W/log/last-apply-$N.log"
		keep_slowest apply-$N "$t" "$W/log/hutch-apply.log"
		now
		t0=$T
		hutch_up "$W/m/many.yaml" && rec noop$N hutch "$i" "$(since "$t0")" us
		cp "$W/log/hutch-apply.log" "$W/log/last-noop-$N.log"
		# memory: what hutch leaves running beside the containers (in the
		# host's pid namespace), and the containers' own processes
		local cgs=()
		for k in "${ks[@]}"; do cgs+=(--cgroup "/hutch/hbench$k"); done
		$PY "$HERE/procs.py" --exclude "$before" "${cgs[@]}" --match "$HROOT/" --match "$HUTCH" \
			--match "hutch-supervisor hbench" >"$W/procs.txt"
		local host_kb host_n ctr_kb
		read -r host_kb host_n ctr_kb < <(awk '$3 == "host" {h += $2; c++} $3 == "ctr" {t += $2} END {print h + 0, c + 0, t + 0}' "$W/procs.txt")
		rec memory hutch-total "$i" "$host_kb" kB
		rec memory hutch-per-container "$i" "$((host_kb / N))" kB
		rec memory hutch-processes "$i" "$host_n" count
		rec memory container-python-per-container "$i" "$((ctr_kb / N))" kB
		cp "$W/procs.txt" "$W/log/last-procs-$N.txt"
	fi
	for k in "${ks[@]}"; do remember_pids "$r" "$k"; done
	now
	t0=$T
	if [ "$r" = hutch ]; then
		hutch_down "$W/m/many.yaml" || ok=0
	else
		for k in "${ks[@]}"; do "${r}_down" "$k" || ok=0; done
	fi
	if ((!ok)) || ! wait_gone "$r" "${ks[@]}"; then
		note "$r: N=$N run $i: delete failed"
		force_clean "$r" "${ks[@]}"
		[ "$r" = hutch ] && ((FAILS_hutch++))
		return 0
	fi
	t=$(since "$t0")
	rec down$N "$r" "$i" "$t" us
	[ "$r" = hutch ] || reset_rootfs
	if [ "$r" = hutch ] && (($(since "$t_start") > ${BENCH_SLOW:-30} * 1000000)) && ((!WARMUP)); then
		((HUTCH_N_SLOW++))
	fi
	if [ "$r" = hutch ]; then
		cp "$W/log/hutch-delete.log" "$W/log/last-delete-$N.log"
		keep_slowest delete-$N "$t" "$W/log/hutch-delete.log"
	fi
	PIDS=()
}

# keep_slowest NAME US LOG: keeps LOG as slowest-NAME.log when US is the
# slowest recorded so far (hutch's steps of its worst run).
declare -A SLOWEST=()
keep_slowest() {
	((WARMUP)) && return 0
	if (($2 > ${SLOWEST[$1]:-0})); then
		SLOWEST[$1]=$2
		{ echo "(run took $(($2 / 1000)) ms end to end)"; cat "$3"; } >"$W/log/slowest-$1.log"
	fi
}

# hutch_ok: hutch can run (built, has apply and delete, has not failed 3 times).
hutch_ok() {
	[ -n "$HUTCH" ] && ((HAVE_APPLY && HAVE_DELETE)) && ((FAILS_hutch < 3))
}

# floor_one RUNNER PAIR: a container running /bin/true, from start until it
# has exited and nothing of it is left.
floor_one() {
	local r=$1 i=$2 t0 ok=1 st
	case $r in
	hutch) hutch_ok || return 0 ;;
	esac
	now
	t0=$T
	case $r in
	unshare) unshare -fpmu chroot "$TRUEFS" /bin/true || ok=0 ;;
	runc) runc run --bundle "$W/oci/true" hbench-true </dev/null >>"$W/log/floor.log" 2>&1 || ok=0 ;;
	crun) crunw run --bundle "$W/oci/true" hbench-true </dev/null >>"$W/log/floor.log" 2>&1 || ok=0 ;;
	crun-wrapper) unshare -m sh -c 'mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec /bin/true' || ok=0 ;;
	hutch)
		# the fair equivalent of `runc run` / `crun run`: hutch run makes the
		# container, runs /bin/true as its own child, and with --rm deletes
		# everything before it exits
		"$HUTCH" --root "$HROOT" run --rm -f "$W/m/true.yaml" </dev/null >>"$W/log/floor.log" 2>&1 || ok=0
		;;
	esac
	# runc, crun and hutch run --rm remove their cgroup as they return: make sure
	if ((ok)); then
		for h in "${CG_HIER[@]}"; do
			while [ -d "$h/hbench/true" ] || [ -d "$h/hutch/hbtrue" ]; do
				(($(since "$t0") > 20000000)) && { ok=0; break; }
				msleep 1
			done
		done
	fi
	if ((ok)); then
		rec floor "$r" "$i" "$(since "$t0")" us
	else
		note "$r: floor run $i failed ($(tail -n 2 "$W/log/floor.log" "$W/log/hutch-"*.log 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
		[ "$r" = hutch ] && { ((FAILS_hutch++)); force_clean hutch; }
		runc delete -f hbench-true >/dev/null 2>&1
		crunw delete -f hbench-true >/dev/null 2>&1
	fi
}

# python_one: python3's own start-up and import of http.server, chrooted in
# the same rootfs, no namespaces: the part of "up" no runner can beat.
python_one() {
	local t0 imp='import http.server, socketserver'
	reset_rootfs
	now
	t0=$T
	env -i "PATH=$CPATH" PYTHONDONTWRITEBYTECODE=1 chroot "$ROOTFS" /usr/bin/python3 -c "$imp" &&
		rec python "rootfs as built$( ((CLEAN_PYC)) && echo ', no .pyc')" "$2" "$(since "$t0")" us
	if ((CLEAN_PYC)); then
		# the same with the .pyc files python writes on a first start
		env -i "PATH=$CPATH" chroot "$ROOTFS" /usr/bin/python3 -c "$imp"
		now
		t0=$T
		env -i "PATH=$CPATH" chroot "$ROOTFS" /usr/bin/python3 -c "$imp" && rec python "with .pyc" "$2" "$(since "$t0")" us
		reset_rootfs
	fi
}

# rootfs_one RUNNER PAIR: a cold build of the web server's rootfs on the
# filesystem of the temporary folder.
rootfs_one() {
	local r=$1 i=$2 t0 d=$W/rf.$1.$2
	case $r in hutch) ((HAVE_EXPORT)) || return 0 ;; esac
	now
	t0=$T
	case $r in
	cp-a) cp -a "$ROOTFS" "$d" ;;
	rootfs.sh) "$HERE/rootfs.sh" "$d" "$REPO/manifests/webserver.yaml" ;;
	hutch) "$HUTCH" --root "$d.root" export --bundle "$d" -f "$REPO/manifests/webserver.yaml" >"$W/log/export.log" 2>&1 ;;
	esac
	local rc=$?
	if ((rc == 0)); then
		rec rootfs "$r" "$i" "$(since "$t0")" us
	else
		note "$r: rootfs run $i failed"
	fi
	if [ "$r" = hutch ] && ((rc == 0)); then
		# warm: the same recipe again, its layer cached under the same --root
		now
		t0=$T
		"$HUTCH" --root "$d.root" export --bundle "$d.warm" -f "$REPO/manifests/webserver.yaml" >"$W/log/export.log" 2>&1 &&
			rec rootfs-warm-export hutch "$i" "$(since "$t0")" us
	fi
	rm -rf "$d" "$d.root" "$d.warm"
}

# alternate SECTION_FN RUNS RUNNERS...: pair i runs every runner once; the
# order turns round every pair (A B C D, D C B A, ...) so drift and
# first-in-pair effects cancel.
alternate() {
	local fn=$1 runs=$2 i r
	shift 2
	local rs=("$@")
	# pair 0 warms up (page cache, hutch's layer cache, runc's first exec) and
	# is not recorded
	WARMUP=1
	for r in "${rs[@]}"; do "$fn" "$r" 0; done
	WARMUP=0
	for ((i = 1; i <= runs; i++)); do
		if ((i % 2)); then
			for r in "${rs[@]}"; do "$fn" "$r" "$i"; done
		else
			for ((j = ${#rs[@]} - 1; j >= 0; j--)); do "$fn" "${rs[j]}" "$i"; done
		fi
		say "  pair $i/$runs done"
	done
}

# --- main -----------------------------------------------------------------
build_hutch
make_manifests

# The rootfs, built once for the runners other than hutch (hutch builds its
# own from the manifest's recipe, into its --root).
ROOTFS=$W/rootfs
ROOTFS_FROM=""
if [ -n "$HUTCH" ] && "$HUTCH" export --help 2>/dev/null | grep -q -- --bundle; then
	if "$HUTCH" --root "$W/hroot-export" export --bundle "$W/export" -f "$REPO/manifests/webserver.yaml" >"$W/log/export.log" 2>&1 &&
		[ -e "$W/export/webserver/rootfs/server.py" ] &&
		chroot "$W/export/webserver/rootfs" /usr/bin/python3 -c 'import http.server, socketserver' >>"$W/log/export.log" 2>&1; then
		mv "$W/export/webserver/rootfs" "$ROOTFS"
		ROOTFS_FROM="hutch export --bundle"
		HAVE_EXPORT=1
	fi
	rm -rf "$W/export" "$W/hroot-export"
fi
if [ -z "$ROOTFS_FROM" ]; then
	"$HERE/rootfs.sh" "$ROOTFS" "$REPO/manifests/webserver.yaml" || die "bench/rootfs.sh failed"
	ROOTFS_FROM="bench/rootfs.sh (same file list as manifests/webserver.yaml)"
fi
note "rootfs for seed, runc and crun: $ROOTFS_FROM, $(du -sm "$ROOTFS" | cut -f1) MB, $(find "$ROOTFS" | wc -l) entries"
[ -e "$ROOTFS/server.py" ] || die "rootfs has no /server.py"
if [ -z "$(find "$ROOTFS" -name '*.pyc' -print -quit)" ]; then
	CLEAN_PYC=1
	note "rootfs: it has no .pyc files (Debian's python3 ships them in __pycache__), so python3 compiles every module it imports at each start; the __pycache__ a run writes into the shared rootfs of seed, runc and crun is removed after each run, as hutch's overlay loses it at delete (see the python3 rows of the floor table for the cost)"
fi
for k in 0 $(seq 1 "$N"); do oci_bundle "$k" || die "ociconfig.py failed"; done
# The floor's rootfs: /bin/true and the libraries it loads.
TRUEFS=$W/rootfs-true
mkdir -p "$TRUEFS"/{bin,proc,sys,dev,tmp}
cp -L /bin/true "$TRUEFS/bin/true"
for l in $(ldd /bin/true | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
	mkdir -p "$TRUEFS$(dirname "$l")" && cp -L "$l" "$TRUEFS$l"
done
mkdir -p "$W/oci/true"
$PY "$HERE/ociconfig.py" "$W/oci/true/config.json" --rootfs "$TRUEFS" --cgroup /hbench/true -- /bin/true ||
	die "ociconfig.py failed"
cat >"$W/m/true.yaml" <<EOF
apiVersion: hutch/v1alpha1
kind: Container
metadata:
  name: hbtrue
spec:
  rootfs:
    binaries: [/bin/true]
  process:
    args: [/bin/true]
  restartPolicy:
    policy: never
EOF
((CRUN_WRAP)) && note "crun: this host's cgroup2 ($CG/unified) lists '$(cat $CG/unified/cgroup.controllers)', so crun refuses to run ('cgroups in hybrid mode not supported'); every crun command runs inside a private mount namespace (unshare -m) where $CG/unified/cgroup.controllers is bind-mounted from /dev/null; the wrapper's own cost is in the floor section (crun-wrapper)"
note "seed: its commands, fixed (env -i PATH=... as the others' processes get): nsenter --net=/run/netns/N joins the namespace (the seed's 'unshare --net=PATH' creates a new one and mounts it over PATH); 'unshare --pid' gets --fork (and --kill-child); proc and sys are mounted inside the new mount namespace; the process is written into the memory and cpu cgroups before exec (the seed never does); down kills the cgroup's processes, removes the cgroups, the veth and the netns"
note "runc/crun: one config.json for both (bench/ociconfig.py: runc spec's defaults, netns path, memory 52428800, cpu quota 100000/100000); network made with the seed's ip commands; run -d, delete -f"
note "readiness: curl --interface if!hbh<K> http://172.31.<K>.2:8000/ every 2 ms until 200; gone: no /run/netns/hbench<K>, no /sys/class/net/hbh<K>, no cgroup folder in any hierarchy, no process seen after up, no mount of the netns or under the temp folder (polled every 1 ms)"

# -- section: up/down, single container
RUNNERS=(hutch seed runc crun)
section updown "up and down: one web server"
alternate one_updown "$RUNS" "${RUNNERS[@]}"

# -- section: N containers
section many "N=$N web servers"
alternate many_updown "$RUNS20" "${RUNNERS[@]}"

# -- section: floor
section floor "floor"
alternate floor_one "$RUNS" hutch crun runc unshare
alternate floor_one "$RUNS" crun-wrapper
alternate python_one "$RUNS" python3

# -- section: rootfs
section rootfs "rootfs"
sync
alternate rootfs_one "$RUNS" hutch cp-a rootfs.sh
# drivers/fs's own benchmarks: ColdApply (resolve, write the layer, syncfs,
# mount) against CpA (`cp -a --parents` of the same files), and WarmApply;
# -benchtime 1x -count RUNS gives one sample per run.
if command -v go >/dev/null && grep -qs '^func BenchmarkColdApply' "$REPO/drivers/fs/bench_test.go"; then
	say "drivers/fs go benchmarks (ColdApply, CpA, WarmApply), $RUNS runs each"
	if (cd "$REPO" && go test -run '^$' -bench '^Benchmark(ColdApply|CpA|WarmApply)$' -benchtime 1x -count "$RUNS" ./drivers/fs/) \
		>"$W/log/fs-bench.txt" 2>&1; then
		awk '/^BenchmarkColdApply/ && $4 == "ns/op" {printf "rootfs-go\thutch\t%d\t%d\tus\n", ++c, $3 / 1000}
			/^BenchmarkCpA/ && $4 == "ns/op" {printf "rootfs-go\tcp-a\t%d\t%d\tus\n", ++p, $3 / 1000}
			/^BenchmarkWarmApply/ && $4 == "ns/op" {printf "rootfs-warm\thutch\t%d\t%d\tus\n", ++w, $3 / 1000}' \
			"$W/log/fs-bench.txt" >>"$SAMPLES"
		note "rootfs: drivers/fs benchmarks ColdApply and CpA ran one after the other (go test -count), not interleaved; ColdApply includes a syncfs, cp -a does not"
	else
		note "rootfs: drivers/fs benchmarks failed: $(tail -n 3 "$W/log/fs-bench.txt" | tr '\n' ' ')"
	fi
fi

# the table
$PY "$HERE/stats.py" --samples "$SAMPLES" --sections "$SECTIONS" --notes "$NOTES" --logs "$W/log" \
	--n "$N" --out "$OUT" --hutch "${HUTCH:-}" --rootfs "$ROOTFS"
