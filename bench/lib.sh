# bench/lib.sh: what the bench scripts share. Sourced first, so a script's
# own function of the same name wins. The caller defines REPO, say and die,
# and W (its work folder, with W/log) before building hutch; work_folder
# makes W.

# build_hutch_tree DIR OUT: builds the hutch of the tree at DIR into OUT as every
# build of it is made (scripts/build.sh: statically linked), or with a plain
# go build for a tree older than that script.
build_hutch_tree() {
	if [ -x "$1/scripts/build.sh" ]; then
		"$1/scripts/build.sh" "$2"
	else
		(cd "$1" && go build -o "$2" ./cmd/apply)
	fi
}

# hutch_binary sets HUTCH to a hutch binary of this run's own: BENCH_HUTCH
# copied, else built from the working tree, else (a tree mid-edit that does
# not build) from the last commit; HUTCH stays empty when none builds.
hutch_binary() {
	if [ -n "${BENCH_HUTCH:-}" ]; then
		# a path of this run's own, so its processes are told from any other hutch's
		cp "$BENCH_HUTCH" "$W/hutch" && HUTCH=$W/hutch
	elif command -v go >/dev/null; then
		say "building hutch (scripts/build.sh)"
		if build_hutch_tree "$REPO" "$W/hutch" >"$W/log/build.log" 2>&1; then
			HUTCH=$W/hutch
		elif git -C "$REPO" rev-parse HEAD >/dev/null 2>&1; then
			# the working tree does not build (someone mid-edit): try the last commit
			mkdir -p "$W/src"
			if git -C "$REPO" archive HEAD | tar -x -C "$W/src" &&
				build_hutch_tree "$W/src" "$W/hutch" >>"$W/log/build.log" 2>&1; then
				HUTCH=$W/hutch
				note "hutch: the working tree did not build; built the last commit ($(git -C "$REPO" rev-parse --short HEAD)) instead"
			fi
			rm -rf "$W/src"
		fi
	fi
}

# install_missing CMD:PACKAGE...: apt-get installs the Debian package of
# each command that is not on PATH ($PY for python3), all in one go.
install_missing() {
	local pair cmd pkg need=""
	for pair in "$@"; do
		cmd=${pair%%:*} pkg=${pair#*:}
		if [ "$cmd" = python3 ]; then [ -x "$PY" ] && continue; else command -v "$cmd" >/dev/null && continue; fi
		need+=" $pkg"
	done
	[ -n "$need" ] || return 0
	say "installing$need"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086 # a list of package names
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends $need >/dev/null; } ||
		die "apt-get install$need failed"
}

# note_cg_parents records which hierarchies of CG_HIER already hold hutch's
# cgroup parent, so that remove_cg_parents removes only those the run made.
note_cg_parents() {
	local h
	HUTCH_CG_PARENT_EXISTED=()
	for h in "${CG_HIER[@]}"; do [ -d "$h/hutch" ] && HUTCH_CG_PARENT_EXISTED+=("$h"); done
}

remove_cg_parents() {
	local h
	for h in "${CG_HIER[@]}"; do
		if [ -d "$h/hutch" ] && [[ " ${HUTCH_CG_PARENT_EXISTED[*]} " != *" $h "* ]]; then
			rmdir "$h/hutch" 2>/dev/null
		fi
	done
}

# cg_hierarchies sets CG_HIER to the cgroup hierarchies under CG that hutch
# makes a container's cgroup in: CG itself on a cgroup v2 host (its
# cgroup.controllers is at the top), else every mounted v1 hierarchy and the
# unified one of a hybrid host (each a folder holding cgroup.procs).
cg_hierarchies() {
	local h
	CG_HIER=()
	if [ -e "$CG/cgroup.controllers" ]; then
		CG_HIER=("$CG")
		return 0
	fi
	for h in "$CG"/*/; do
		h=${h%/}
		[ -e "$h/cgroup.procs" ] && CG_HIER+=("$h")
	done
	[ ${#CG_HIER[@]} -gt 0 ] || die "no cgroup hierarchies under $CG"
}

# shell_memory_cgroup sets where a shell runner makes a memory cgroup by
# hand: CGV (1 or 2), SCGROOT (v1's memory hierarchy, or the unified root
# of a v2 host, where the parent's cgroup.subtree_control needs +memory) and
# MEMFILE (the limit's file).
shell_memory_cgroup() {
	if [ -e "$CG/cgroup.controllers" ]; then
		CGV=2 SCGROOT=$CG MEMFILE=memory.max
	elif [ -e "$CG/memory/cgroup.procs" ]; then
		CGV=1 SCGROOT=$CG/memory MEMFILE=memory.limit_in_bytes
	else
		die "no memory cgroup: neither $CG/cgroup.controllers (v2) nor $CG/memory (v1)"
	fi
}

# note_netns_dir records whether /run/netns and its mount (iproute2 and
# hutch make it a mount point of its own on first use) were there, so that
# restore_netns_dir takes away only what the run made.
note_netns_dir() {
	NETNS_DIR_EXISTED=0 NETNS_MNT_EXISTED=0
	[ -d /run/netns ] && NETNS_DIR_EXISTED=1
	awk '$5 == "/run/netns" {f=1} END {exit !f}' /proc/self/mountinfo && NETNS_MNT_EXISTED=1
	return 0
}

restore_netns_dir() {
	if ((!NETNS_MNT_EXISTED)) && [ -z "$(ls -A /run/netns 2>/dev/null)" ] &&
		awk '$5 == "/run/netns" {f=1} END {exit !f}' /proc/self/mountinfo; then
		umount /run/netns 2>/dev/null # not lazy: it fails if anyone mounted a netns meanwhile
	fi
	((NETNS_DIR_EXISTED)) || rmdir /run/netns 2>/dev/null
	return 0
}

# free_subnets COUNT prints COUNT numbers X (100..254, in random order) whose
# 10.X.0.0/16 overlaps no route of any table: none inside it (`root`), none
# holding it but the default route (`match`). A host's address brings its
# routes (table local, and main unless noprefixroute), so addresses count.
free_subnets() {
	local x got=()
	for x in $(shuf -i 100-254); do
		[ -n "$(ip -4 -o route show table all root "10.$x.0.0/16")" ] && continue
		ip -4 -o route show table all match "10.$x.0.0/16" | grep -qvw default && continue
		got+=("$x")
		((${#got[@]} == $1)) && { echo "${got[*]}"; return 0; }
	done
	return 1
}

# poll_serve SECONDS TARGET...: until every TARGET (IFACE,ADDR:PORT) answered
# one GET / with 200. One curl per sweep over the targets still silent (up
# to 32 connections at once), each bound to its interface (curl --interface
# if!IFACE: no packet leaves by another), 2 ms between sweeps (the caller's
# msleep). POLL_LEFT says what was still silent at the deadline.
poll_serve() {
	local t url code args deadline=$((${EPOCHREALTIME/./} + $1 * 1000000))
	shift
	local -A pending=()
	for t in "$@"; do pending["http://${t#*,}/"]=${t%%,*}; done
	while :; do
		args=()
		for url in "${!pending[@]}"; do
			((${#args[@]})) && args+=(--next)
			args+=(-s -o /dev/null --interface "if!${pending[$url]}" --connect-timeout 2 --max-time 5
				-w '%{http_code} %{url_effective}\n' "$url")
		done
		while read -r code url; do
			[ "$code" = 200 ] && unset "pending[$url]"
		done < <(curl --parallel --parallel-max 32 "${args[@]}" 2>/dev/null)
		((${#pending[@]})) || return 0
		if ((${EPOCHREALTIME/./} > deadline)); then
			POLL_LEFT="${#pending[@]} of $# silent: $(echo "${!pending[@]}" | cut -c1-200)"
			return 1
		fi
		msleep 2
	done
}

# poll_gone SECONDS: until nothing is left of GONE_PATHS (paths), GONE_PIDS
# (processes; a zombie has released all but its pid and counts as gone) and
# GONE_MOUNTS (strings no line of /proc/self/mountinfo may hold), polled
# every 2 ms (the caller's msleep) without forking. A thing seen gone stays
# gone, so one pass with a cursor is exact. POLL_LEFT says what was left.
poll_gone() {
	local i=0 j=0 line m mi deadline=$((${EPOCHREALTIME/./} + $1 * 1000000))
	POLL_LEFT=""
	while ((i < ${#GONE_PATHS[@]})); do
		if [ -e "${GONE_PATHS[i]}" ]; then
			((${EPOCHREALTIME/./} > deadline)) && { POLL_LEFT=${GONE_PATHS[i]}; return 1; }
			msleep 2
		else
			((i++))
		fi
	done
	while ((j < ${#GONE_PIDS[@]})); do
		if read -r line 2>/dev/null <"/proc/${GONE_PIDS[j]}/stat" && line=${line##*) } && [ "${line%% *}" != Z ]; then
			((${EPOCHREALTIME/./} > deadline)) && { POLL_LEFT="pid ${GONE_PIDS[j]}"; return 1; }
			msleep 2
		else
			((j++))
		fi
	done
	while :; do
		mapfile -t mi </proc/self/mountinfo
		line=""
		for m in "${GONE_MOUNTS[@]}"; do [[ "${mi[*]}" == *"$m"* ]] && { line=$m; break; }; done
		[ -z "$line" ] && return 0
		((${EPOCHREALTIME/./} > deadline)) && { POLL_LEFT="a mount holding $line"; return 1; }
		msleep 2
	done
}

# --- what lab.sh's and scale.sh's kind of run needs -----------------------

# work_folder NAME: W, a new folder /var/tmp/NAME.XXXXXX with W/log and W/m,
# SAMPLES and NOTES (empty files in it), and the fifo msleep reads
# (SLEEPFD). STDOUT_FD and STDERR_FD keep the script's own stdout and
# stderr for restore_stdio.
work_folder() {
	exec {STDOUT_FD}>&1 {STDERR_FD}>&2
	W=$(mktemp -d "/var/tmp/$1.XXXXXX") || die "mktemp failed"
	mkdir -p "$W/log" "$W/m"
	SAMPLES=$W/samples.tsv NOTES=$W/notes.txt
	: >"$SAMPLES"
	: >"$NOTES"
	mkfifo "$W/sleep.fifo"
	exec {SLEEPFD}<>"$W/sleep.fifo"
}
# restore_stdio: the script's own stdout and stderr again, for a trap that
# may run inside a function whose stderr goes to a log (shell_run's
# shell_up 2>>shell.err), where what cleanup says would be lost with W.
restore_stdio() { exec 1>&"$STDOUT_FD" 2>&"$STDERR_FD"; }
# msleep MS: sleeps without forking (read with a timeout on a fifo nobody writes).
msleep() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u "$SLEEPFD" _ || :; }
now() { T=${EPOCHREALTIME/./}; }             # microseconds, no fork
since() { E=$((${EPOCHREALTIME/./} - $1)); } # E: microseconds since $1, no fork
note() { echo "$*" >>"$NOTES"; say "$*"; }
# rec N RUNNER PHASE RUN MICROSECONDS: a sample, unless in the warm-up.
WARMUP=0
rec() { ((WARMUP)) || printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$SAMPLES"; }

# procs_naming STRING...: the processes whose command line holds a STRING.
procs_naming() {
	local p c s
	for p in /proc/[0-9]*; do
		mapfile -d '' -t c 2>/dev/null <"$p/cmdline" || continue
		for s in "$@"; do [[ "${c[*]}" == *"$s"* ]] && { echo "${p##*/}"; break; }; done
	done
}

# kill_listed FN: SIGKILL to every process FN lists (but this shell), then
# the shell's own servers (SHELL_PIDS) reaped.
kill_listed() {
	local p pids
	mapfile -t pids < <("$1" | sort -u | grep -vx "$$")
	((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
	for p in "${SHELL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	SHELL_PIDS=()
}

# remove_cgroup_trees FN: removes every cgroup folder FN lists, leaves
# first, for up to 5 s while the kernel finishes killing; then hutch's
# parents that the run made (remove_cg_parents).
remove_cgroup_trees() {
	local d left
	for _ in $(seq 50); do
		left=0
		for d in $("$1"); do
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$d" ] && left=1
		done
		((left)) || break
		sleep 0.1
	done
	remove_cg_parents
}

# delete_manifests SECONDS: hutch delete of every manifest in W/m, as a user
# would remove them, each given SECONDS at most.
delete_manifests() {
	local m
	[ -n "${HUTCH:-}" ] || return 0
	for m in "$W"/m/*.yaml; do
		[ -e "$m" ] && timeout "$1" "$HUTCH" --root "$HROOT" delete -f "$m" >>"$W/log/cleanup.log" 2>&1
	done
}

# finish TAG RC LEFT [KINDS]: copies the logs to BENCH_KEEPLOG if set,
# removes W, says out loud what is LEFT (or that no object of the KINDS the
# caller looked for is) and exits with RC (1 when something is left).
finish() {
	local tag=$1 rc=$2 left=$3 kinds=${4:-netns, link, cgroup, mount, process or folder}
	if [ -n "${BENCH_KEEPLOG:-}" ]; then
		mkdir -p "$BENCH_KEEPLOG" && cp -r "$W/log" "$SAMPLES" "$NOTES" "$W/m" "$BENCH_KEEPLOG/"
	fi
	rm -rf "$W"
	[ -e "$W" ] && left+=$'\n'"folder $W"
	if [ -n "$left" ]; then
		echo "$tag: ====================== LEFT BEHIND ======================" >&2
		echo "$left" >&2
		echo "$tag: ===========================================================" >&2
		rc=1
	else
		say "nothing left: no $kinds of this run"
	fi
	exit "$rc"
}

# one RUNNER N RUN: RUNNER_run N RUN; after a failure, RUNNER_recover N (when
# defined) and sweep remove what is left and the runs go on. A runner that
# failed three times runs no more.
declare -A FAILS=()
one() {
	local r=$1 n=$2 i=$3
	((${FAILS[$r]:-0} >= 3)) && return 0
	if ! "${r}_run" "$n" "$i"; then
		FAILS[$r]=$((${FAILS[$r]:-0} + 1))
		say "$r: N=$n run $i failed; removing what is left by hand"
		declare -F "${r}_recover" >/dev/null && "${r}_recover" "$n"
		sweep
	fi
	return 0
}

# run_all RUNS_FN: one unrecorded warm-up pair of N=WARM_N (page cache,
# hutch's rootfs layer cache under the run's --root, first execs), then for
# each N of NS_LIST `RUNS_FN N` runs of each runner, in turns hutch, shell /
# shell, hutch. LOADS gets the load average at each N's start; after_n N
# (when defined) runs after each N's runs.
run_all() {
	local n i r runs l1 l5 l15 order t_run
	if ((WARM_N > 0)); then
		say "warm-up pair, N=$WARM_N (not recorded)"
		WARMUP=1
		one hutch "$WARM_N" 0
		one shell "$WARM_N" 0
		WARMUP=0
	fi
	LOADS=()
	for n in $NS_LIST; do
		runs=$("$1" "$n")
		read -r l1 l5 l15 _ </proc/loadavg
		LOADS+=("$n:$l1 $l5 $l15")
		say "== N=$n: $runs runs per runner (load $l1 $l5 $l15)"
		declare -F before_n >/dev/null && before_n "$n"
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
		declare -F after_n >/dev/null && after_n "$n"
	done
	((${FAILS[hutch]:-0} + ${FAILS[shell]:-0})) && note "failed runs: hutch ${FAILS[hutch]:-0}, shell ${FAILS[shell]:-0} (see above)"
	return 0
}

# phase_limit N: the seconds a phase of N containers may take before the run
# counts as failed: generous, and more for more (the first N=200 deletes of
# issue 18 took 13 s).
phase_limit() { echo $((120 + $1 / 2)); }

# shell_run N RUN: a run of the shell runner, from the caller's shell_up N,
# shell_targets N (TARGETS: what must answer, as poll_serve takes them),
# shell_gone_list N (GONE_*: what must disappear) and shell_down N: apply
# (shell_up until it returns), serve (then until every target answered) and
# delete (shell_down, then until nothing is left).
shell_run() {
	local n=$1 i=$2 t0 lim
	lim=$(phase_limit "$n")
	shell_targets "$n"
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
	if ! poll_serve "$lim" "${TARGETS[@]}"; then
		note "shell: N=$n run $i: not every server answered: $POLL_LEFT"
		return 1
	fi
	since "$t0"
	rec "$n" shell serve "$i" "$E"
	shell_gone_list "$n"
	now
	t0=$T
	if ! shell_down "$n" 2>>"$W/log/shell.err"; then
		note "shell: N=$n run $i: teardown failed: $(tail -n 2 "$W/log/shell.err" | tr '\n' ' ')"
		return 1
	fi
	if ! poll_gone "$lim"; then
		note "shell: N=$n run $i: not gone $lim s after teardown started: $POLL_LEFT"
		return 1
	fi
	since "$t0"
	rec "$n" shell delete "$i" "$E"
}

# check_counts KNOB MAX: every N of NS_LIST (the KNOB's) is a count 1..MAX;
# MAXN is the largest.
check_counts() {
	local n
	MAXN=0
	for n in $NS_LIST; do
		if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > $2)); then die "$1: $n is not a count 1..$2"; fi
		((n > MAXN)) && MAXN=$n
	done
	((MAXN > 0)) || die "$1: no count given"
}

# rec_phases STATS N RUN ARGS...: hutch's phases of one command, as
# `STATS --phases ARGS...` reads them from its trace (lines of key and
# microseconds), recorded as hutch's samples; nothing when TRACE is off.
rec_phases() {
	local stats=$1 n=$2 i=$3 k v
	[ -n "$TRACE" ] || return 0
	while read -r k v; do rec "$n" hutch "$k" "$i" "$v"; done < <($PY "$HERE/$stats" --phases "${@:4}")
}
