# bench/lib.sh: what bench/run.sh and bench/lab.sh share. Sourced; the
# caller defines W (its work folder, with W/log), REPO, say and note.

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
