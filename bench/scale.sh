#!/usr/bin/env bash
# bench/scale.sh: N containers in one manifest, each with its own network
# namespace, one veth pair to the host with addresses and a default route,
# a memory cgroup, a rootfs and a busybox web server; made and removed by
# hutch and by the seed tutorial's shell commands, side by side (issue 18).
# Run as root on Debian:
#   make bench-scale                (or ./bench/scale.sh; make bench runs it too)
# Environment: BENCH_SCALE_N (the counts, default "20 200"; "20,200,1000"
# works too), BENCH_SCALE_RUNS (runs per runner and N; default 3 for N < 100,
# 2 below 500, 1 from 500), BENCH_SCALE_WARM (the unrecorded warm-up pair's
# N, default 20; 0 for none), BENCH_SCALE_TRACE (default 1: hutch runs with
# HUTCH_TRACE=1, whose lines say where its time goes; 0 for none),
# BENCH_HUTCH (a hutch binary instead of building one), BENCH_OUT (the
# RESULTS.md whose "Scale" section is replaced, default bench/RESULTS.md;
# "-" for none), BENCH_KEEPLOG (a folder to copy the logs, samples and
# manifests to).
#
# For each N, runs alternate hutch, shell / shell, hutch, ... and each run
# times:
#   apply        the command(s) that make the N containers, until they return
#   first answer from then until every server answered one HTTP GET
#   no-op apply  (hutch) a second `hutch apply` of the unchanged manifest, whole
#   delete       the command(s) that remove them, until nothing is left
# and the table shows the medians, the cost per container (time / N), its
# growth from the smallest N to each larger one (issue 18's goal for hutch's
# delete: at most 1.2x), and where hutch's time goes (its trace).
#
# What it makes on the host, every name carrying this run's random id RID
# (4 hex digits), all removed on exit (also on Ctrl-C or an error):
#   hutch: containers and netns hsh<RID>-<K>, host veths hshv<RID>-<K>
#     (eth0 inside), cgroups hutch/hsh<RID>-<K>, all under a temporary --root;
#   shell: netns hss<RID>-<K>, host veths hssv<RID>-<K> (eth0 inside),
#     cgroups hss<RID>/<K> (memory), busybox httpd processes and their rootfs
#     folders; one temporary folder /var/tmp/hscale.*.
# Container K's pair has 10.X.0.0/16's K-th /30 (host .1, container .2), X
# picked at start so that no host route or address overlaps the /16. The only
# traffic is curl to the containers' own addresses, each request bound to the
# container's host veth (curl --interface if!VETH).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
NS_LIST=${BENCH_SCALE_N:-20 200}
NS_LIST=${NS_LIST//,/ }
OUT=${BENCH_OUT:-$HERE/RESULTS.md}
WARM_N=${BENCH_SCALE_WARM:-20}
PY=/usr/bin/python3
CG=/sys/fs/cgroup
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

die() { echo "scale: $*" >&2; exit 1; }
say() { echo "scale: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run me as root (namespaces, veths and cgroups need it)"
# 4000: four digits in the names, and far below the 16384 /30s of a /16
check_counts BENCH_SCALE_N 4000
if ! [[ $WARM_N =~ ^[0-9]+$ ]] || ((WARM_N > 4000)); then die "BENCH_SCALE_WARM: want a count 0..4000"; fi
[ -z "${BENCH_SCALE_RUNS:-}" ] || [[ $BENCH_SCALE_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SCALE_RUNS: want a count"
((WARM_N > MAXN)) && MAXK=$WARM_N || MAXK=$MAXN

# --- tools: Debian packages, installed only when missing -----------------
install_missing busybox:busybox-static curl:curl ip:iproute2 nsenter:util-linux unshare:util-linux \
	shuf:coreutils python3:python3
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=$(command -v busybox)
# hutch copies the binary into the rootfs with the libraries ldd names, the
# shell copies the binary alone: a static busybox (busybox-static's) needs none.
[[ $(ldd "$BUSYBOX" 2>&1) == *"not a dynamic"* ]] || die "$BUSYBOX is not static (install busybox-static)"

# --- names: a random id that no object on the host carries yet -------------
for _ in 1 2 3 4 5 6 7 8 9 10; do
	RID=$(printf '%04x' $((RANDOM % 65536)))
	compgen -G "/run/netns/hs[hs]$RID-*" >/dev/null || compgen -G "/sys/class/net/hs[hs]v$RID-*" >/dev/null ||
		compgen -G "$CG/*/hs[hs]$RID*" >/dev/null || compgen -G "$CG/*/hutch/hsh$RID-*" >/dev/null || break
done
HPFX=hsh$RID   # hutch's containers and netns: hsh<RID>-<K>
HVETH=hshv$RID # hutch's host veths: hshv<RID>-<K> (13 bytes at K=9999)
SPFX=hss$RID   # the shell's netns: hss<RID>-<K>
SVETH=hssv$RID # the shell's host veths: hssv<RID>-<K>
SCG=hss$RID    # the shell's cgroup parent
# KN[K]: K zero-padded, so that every name of a run has one length. Made
# once, as are the addresses, so the timed paths never fork for them.
KN=()
for ((k = 1; k <= MAXK; k++)); do printf -v 'KN[k]' '%0*d' "${#MAXK}" "$k"; done

# --- two free /16s, container K's pair in the K-th /30 of each ---------------
read -r HX SX < <(free_subnets 2) || die "no two free 10.X.0.0/16 (X in 100..254) on this host"
[ -n "${SX:-}" ] || die "no two free 10.X.0.0/16 (X in 100..254) on this host"
HHOST=() HCTR=() SHOST=() SCTR=()
for ((k = 1; k <= MAXK; k++)); do
	b=$((4 * (k - 1)))
	HHOST[k]=10.$HX.$((b / 256)).$((b % 256 + 1)) HCTR[k]=10.$HX.$((b / 256)).$((b % 256 + 2))
	SHOST[k]=10.$SX.$((b / 256)).$((b % 256 + 1)) SCTR[k]=10.$SX.$((b / 256)).$((b % 256 + 2))
done

# --- the temporary folder and the trap that removes everything -----------
work_folder hscale # W, W/log, W/m, SAMPLES, NOTES; msleep, now, since, note, rec
mkdir "$W/srootfs"
HROOT=$W/hroot
cg_hierarchies
shell_memory_cgroup
note_netns_dir
note_cg_parents
HUTCH=""
SHELL_PIDS=()

# ours_netns, ours_links, ours_cgroups: every such object on the host that
# carries this run's names (hutch's veth ends inside go with their netns).
ours_netns() {
	local d
	for d in /run/netns/"$HPFX"-* /run/netns/"$SPFX"-*; do [ -e "$d" ] && echo "${d##*/}"; done
}
ours_links() {
	local l
	for l in /sys/class/net/"$HVETH"-* /sys/class/net/"$SVETH"-*; do [ -e "$l" ] && echo "${l##*/}"; done
}
ours_cgroups() {
	local h d
	for h in "${CG_HIER[@]}"; do
		for d in "$h/hutch/$HPFX"-* "$h/$SCG"; do [ -d "$d" ] && echo "$d"; done
	done
}
# ours_procs: processes in our cgroups, the shell's servers, and anything
# running this run's hutch binary, naming its folder or supervising ours.
ours_procs() {
	local d p
	for d in $(ours_cgroups); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done
	for p in "${SHELL_PIDS[@]}"; do [ -e "/proc/$p" ] && echo "$p"; done
	procs_naming "$W/" "hutch-supervisor $HPFX-"
}
ours_mounts() {
	awk -v w="$W/" -v h="/run/netns/$HPFX-" -v s="/run/netns/$SPFX-" \
		'index($5, w) == 1 || index($5, h) == 1 || index($5, s) == 1 {print $5}' /proc/self/mountinfo
}

# sweep: removes by hand whatever of this run is left (after a failed run,
# and at exit after hutch delete). Safe at any time: every name is ours.
sweep() {
	local l d
	kill_listed ours_procs
	for l in $(ours_links); do ip link del "$l" 2>/dev/null; done
	for d in $(ours_netns); do ip netns del "$d" 2>/dev/null; done
	ours_mounts | sort -r | while read -r d; do umount -l "$d" 2>/dev/null; done
	remove_cgroup_trees ours_cgroups
	rm -rf "$W/srootfs" && mkdir -p "$W/srootfs"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	# after a closed pipe (make bench-scale | head), the writes below fail
	# quietly instead of killing the cleanup
	trap '' PIPE
	set +e
	restore_stdio
	say "cleaning up"
	# the servers first (the shell's, and every process in our cgroups), so
	# that hutch's delete does not wait for a stop timeout; then hutch, the
	# way a user would (when anything of it is there), then by hand
	kill_listed ours_procs
	[ -n "$(ls -A "$HROOT/containers" 2>/dev/null)$(ours_netns)$(ours_links)$(ours_cgroups)" ] && delete_manifests 600
	sweep
	wait 2>/dev/null
	restore_netns_dir
	finish scale "$rc" "$(
		ours_netns | sed 's/^/netns /'
		ours_links | sed 's/^/link /'
		ours_cgroups | sed 's/^/cgroup /'
		ours_mounts | sed 's/^/mount /'
		ours_procs | sort -u | grep -vx "$$" | sed 's/^/pid /'
	)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
trap 'exit 141' PIPE

# --- hutch ----------------------------------------------------------------
hutch_binary
[ -n "$HUTCH" ] || die "no hutch binary (go build failed: $(tail -n 3 "$W/log/build.log" 2>/dev/null | tr '\n' ' '))"

# manifest N FILE: N busybox web servers, each with its own netns and veth
# pair (no network), in one manifest. printf, a builtin: 1000 containers
# are written without forking 1000 times.
manifest() {
	local n=$1 k
	{
		echo "# bench/scale.sh: $n web servers, each with its own netns, veth pair, cgroup and rootfs"
		for ((k = 1; k <= n; k++)); do
			printf '%s\n' "---" "apiVersion: hutch/v1alpha1" "kind: Container" "metadata:" "  name: $HPFX-${KN[k]}" \
				"spec:" "  rootfs:" "    binaries: [$BUSYBOX]" "    files:" "      - path: /www/index.html" \
				'        content: "hutch scale bench\n"' "  process:" \
				'    args: [busybox, httpd, -f, -p, "8000", -h, /www]' "    stopTimeout: 300ms" "    startWindow: 0s" \
				"  network:" "    interfaces:" "      - name: eth0" "        addresses: [${HCTR[k]}/30]" \
				"        host: {name: $HVETH-${KN[k]}, addresses: [${HHOST[k]}/30]}" "        defaultRoute: true" \
				"  resources:" "    memory: 16M"
		done
	} >"$2"
}

# HUTCH_TRACE set to the empty string is off (no env(1) in the timed path).
# On, hutch writes a line to stderr (a file here) per step and phase.
TRACE=1
[ "${BENCH_SCALE_TRACE:-1}" = 0 ] && TRACE=""

# hutch_gone_list N: what hutch made for N containers, read after up.
hutch_gone_list() {
	local n=$1 k name h
	GONE_PATHS=() GONE_PIDS=() GONE_MOUNTS=("$W/" " /run/netns/$HPFX-")
	for ((k = 1; k <= n; k++)); do
		name=$HPFX-${KN[k]}
		GONE_PATHS+=("/run/netns/$name" "/sys/class/net/$HVETH-${KN[k]}" "$HROOT/containers/$name")
		for h in "${CG_HIER[@]}"; do GONE_PATHS+=("$h/hutch/$name"); done
	done
	mapfile -t GONE_PIDS < <(ours_procs | sort -un | grep -vx "$$")
}

# hutch_cmd WHAT N RUN: one timed hutch command (apply, noop or delete) of
# the manifest of N; E is its wall time, T0 its start.
hutch_cmd() {
	local what=$1 n=$2 i=$3 verb=apply
	[ "$what" = delete ] && verb=delete
	now
	T0=$T
	if ! HUTCH_TRACE=$TRACE "$HUTCH" --root "$HROOT" "$verb" -f "$W/m/scale$n.yaml" </dev/null \
		>"$W/log/hutch-$what.log" 2>"$W/log/hutch-$what.err"; then
		note "hutch: N=$n run $i: $what failed: $(tail -q -n 3 "$W/log/hutch-$what.err" "$W/log/hutch-$what.log" | tr '\n' ' ' | cut -c1-400)"
		return 1
	fi
	since "$T0"
}

hutch_run() { # N RUN
	local n=$1 i=$2 k t0 d_apply t_apply d_noop t_noop d_delete w lim
	lim=$(phase_limit "$n")
	local targets=()
	[ -e "$W/m/scale$n.yaml" ] || manifest "$n" "$W/m/scale$n.yaml"
	for ((k = 1; k <= n; k++)); do targets+=("$HVETH-${KN[k]},${HCTR[k]}:8000"); done
	hutch_cmd apply "$n" "$i" || return 1
	t_apply=$T0 d_apply=$E
	rec "$n" hutch apply "$i" "$E"
	now
	t0=$T
	if ! poll_serve "$lim" "${targets[@]}"; then
		note "hutch: N=$n run $i: not every server answered: $POLL_LEFT"
		return 1
	fi
	since "$t0"
	rec "$n" hutch serve "$i" "$E"
	# the no-op: the unchanged manifest again, the whole process
	hutch_cmd noop "$n" "$i" || return 1
	t_noop=$T0 d_noop=$E
	rec "$n" hutch noop "$i" "$E"
	if ! grep -q '^No changes' "$W/log/hutch-noop.log"; then
		note "hutch: N=$n run $i: the second apply of the unchanged manifest changed something: $(head -n 3 "$W/log/hutch-noop.log" | tr '\n' ' ' | cut -c1-300)"
	fi
	# untimed: hutch's phases, and what must disappear
	rec_phases scalestats.py "$n" "$i" apply "$t_apply" "$d_apply" "$W/log/hutch-apply.err" "$W/log/hutch-apply.log"
	rec_phases scalestats.py "$n" "$i" noop "$t_noop" "$d_noop" "$W/log/hutch-noop.err" "$W/log/hutch-noop.log"
	hutch_gone_list "$n"
	hutch_cmd delete "$n" "$i" || return 1
	d_delete=$E
	if ! poll_gone "$lim"; then
		note "hutch: N=$n run $i: not gone $lim s after delete started: $POLL_LEFT"
		return 1
	fi
	since "$T0"
	rec "$n" hutch delete "$i" "$E"
	rec_phases scalestats.py "$n" "$i" delete "$T0" "$d_delete" "$W/log/hutch-delete.err" "$W/log/hutch-delete.log"
	if ((!WARMUP)); then
		for w in apply noop delete; do
			cp "$W/log/hutch-$w.log" "$W/log/last-$w-$n.log"
			cp "$W/log/hutch-$w.err" "$W/log/last-$w-$n.err"
		done
	fi
}

# --- runner: the seed tutorial's commands -------------------------------------
# The same containers by hand, one command per step, as the seed's script
# does them and as bench/run.sh's seed runner does (network, cgroup, rootfs,
# then nsenter joins the netns and unshare makes the pid, mount and uts
# namespaces, proc and sys mounted inside, chroot into the rootfs).
shell_up() { # N
	local n=$1 k ns v h c cg r
	mkdir "$SCGROOT/$SCG" || return 1
	if ((CGV == 2)); then echo +memory >"$SCGROOT/$SCG/cgroup.subtree_control" || return 1; fi
	for ((k = 1; k <= n; k++)); do
		ns=$SPFX-${KN[k]} v=$SVETH-${KN[k]} h=${SHOST[k]} c=${SCTR[k]} cg=$SCGROOT/$SCG/${KN[k]} r=$W/srootfs/${KN[k]}
		ip netns add "$ns" &&
			ip link add "$v" type veth peer name eth0 netns "$ns" &&
			ip addr add "$h/30" dev "$v" &&
			ip link set "$v" up &&
			ip -n "$ns" addr add "$c/30" dev eth0 &&
			ip -n "$ns" link set eth0 up &&
			ip -n "$ns" link set lo up &&
			ip -n "$ns" route add default via "$h" &&
			mkdir "$cg" &&
			echo 16M >"$cg/$MEMFILE" &&
			mkdir -p "$r/bin" "$r/www" "$r/proc" "$r/sys" &&
			cp "$BUSYBOX" "$r/bin/busybox" &&
			echo "hutch scale bench" >"$r/www/index.html" || return 1
		# shellcheck disable=SC2016 # $0 is the rootfs, for the inner sh
		(
			# the server keeps none of the script's descriptors (stdio, the fifo)
			exec {STDOUT_FD}>&- {STDERR_FD}>&- {SLEEPFD}>&-
			echo "$BASHPID" >"$cg/cgroup.procs" &&
				exec nsenter --net="/run/netns/$ns" unshare --pid --fork --kill-child --mount --uts \
					sh -c 'mount -t proc proc "$0/proc" && mount -t sysfs sysfs "$0/sys" && cd "$0" && exec chroot . /bin/busybox httpd -f -p 8000 -h /www' "$r"
		) </dev/null >>"$W/log/shell-httpd.log" 2>&1 &
		SHELL_PIDS+=($!)
	done
}
# shell_down N: as run.sh's seed runner, container after container: SIGKILL
# to the cgroup's processes (busybox httpd is pid 1 of its namespace and
# would ignore SIGTERM from outside), their exit waited for, the cgroup
# removed, the host end deleted (which deletes the pair), the netns deleted;
# then the rootfs folders.
shell_down() { # N
	local n=$1 k p cg pids
	for ((k = 1; k <= n; k++)); do
		cg=$SCGROOT/$SCG/${KN[k]}
		mapfile -t pids <"$cg/cgroup.procs"
		((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
		wait "${SHELL_PIDS[k - 1]}" 2>/dev/null
		# the kernel may still be uncharging the killed server: retry a moment
		for ((p = 0; p < 1000; p++)); do rmdir "$cg" 2>/dev/null && break; msleep 1; done
		ip link del "$SVETH-${KN[k]}" || return 1
		ip netns del "$SPFX-${KN[k]}" || return 1
	done
	SHELL_PIDS=()
	rmdir "$SCGROOT/$SCG" && rm -rf "$W/srootfs" && mkdir "$W/srootfs"
}
shell_gone_list() {
	local n=$1 k
	GONE_PATHS=() GONE_PIDS=() GONE_MOUNTS=("$W/" " /run/netns/$SPFX-")
	for ((k = 1; k <= n; k++)); do
		GONE_PATHS+=("/run/netns/$SPFX-${KN[k]}" "/sys/class/net/$SVETH-${KN[k]}" "$SCGROOT/$SCG/${KN[k]}" "$W/srootfs/${KN[k]}")
	done
	GONE_PATHS+=("$SCGROOT/$SCG")
	mapfile -t GONE_PIDS < <(ours_procs | sort -un | grep -vx "$$")
}
# shell_targets N: TARGETS, what answers when the shell's N are up (lib.sh's
# shell_run polls them).
shell_targets() {
	local k
	TARGETS=()
	for ((k = 1; k <= $1; k++)); do TARGETS+=("$SVETH-${KN[k]},${SCTR[k]}:8000"); done
}

# hutch_recover N: after a failed run (lib.sh's one), hutch deletes what it
# made, as a user would; sweep removes the rest.
hutch_recover() { timeout 600 "$HUTCH" --root "$HROOT" delete -f "$W/m/scale$1.yaml" >>"$W/log/cleanup.log" 2>&1; }

# --- main ---------------------------------------------------------------------
note "subnets: hutch 10.$HX.0.0/16, shell 10.$SX.0.0/16, container K's pair in the K-th /30 (no host route or address overlaps either /16); names carry the run id $RID"
note "memory cgroup of the shell's containers: cgroup v$CGV ($SCGROOT/$SCG/K/$MEMFILE = 16M); hutch's: every hierarchy (${#CG_HIER[@]})"
# runs_for N: runs per runner at N (BENCH_SCALE_RUNS, else fewer for more)
runs_for() {
	if [ -n "${BENCH_SCALE_RUNS:-}" ]; then echo "$BENCH_SCALE_RUNS"
	elif (($1 < 100)); then echo 3
	elif (($1 < 500)); then echo 2
	else echo 1; fi
}
# The host's ARP table is one for every namespace: each container's first
# answer leaves two entries (the host's for the container, the container's
# for the host), and above gc_thresh3 the kernel refuses new ones ("arp_cache:
# neighbor table overflow") until entries at least 5 s old can be freed. The
# script leaves the setting as it is and says when it bounded a first answer.
read -r ARP_MAX </proc/sys/net/ipv4/neigh/default/gc_thresh3 || ARP_MAX=0
arp_overflows() { dmesg 2>/dev/null | grep -c 'arp_cache: neighbor table overflow'; }
before_n() { OVF0=$(arp_overflows); }
after_n() {
	local n=$1 ovf=$(($(arp_overflows) - OVF0))
	if ((ovf > 0)); then
		note "N=$n: the first answers waited for the host's ARP table: the kernel logged $ovf 'arp_cache: neighbor table overflow' (a lower bound: it rate-limits them); $n containers need about $((2 * n)) entries, net.ipv4.neigh.default.gc_thresh3 is $ARP_MAX, and entries under 5 s old are not freed (raise gc_thresh3 before the run to measure past it)"
	elif ((2 * n > ARP_MAX)); then
		note "N=$n: about $((2 * n)) ARP entries against net.ipv4.neigh.default.gc_thresh3 = $ARP_MAX, but the kernel logged no overflow"
	fi
}
run_all runs_for

$PY "$HERE/scalestats.py" --samples "$SAMPLES" --notes "$NOTES" --logs "$W/log" --out "$OUT" \
	--hutch "$HUTCH" --loads "${LOADS[@]}" --shell-cgroup "v$CGV"
