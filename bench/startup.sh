#!/usr/bin/env bash
# bench/startup.sh: how long hutch's verbs take to start, against a bare Go
# program built in the same run (issue 18: every verb within 2 ms of it).
# Run as root on Debian:
#   make bench-startup               (make bench runs it last)
# Environment: BENCH_STARTUP_RUNS (timed runs of each command, default 300),
# BENCH_HUTCH (a hutch binary to use instead of building one), BENCH_OUT
# (where the section goes, default bench/RESULTS.md; "-" for nowhere).
#
# Each command is a whole process, timed by bench/startup (a Go program)
# from fork to the end of wait4, stdout and stderr on /dev/null, the commands
# in turns (one run of each per round, the order rotated), after 20
# untimed rounds. The commands:
#   bare Go         package main; func main() { os.Stdout.WriteString(...) },
#                   CGO_ENABLED=0: the reference
#   bare cgo        the same with one cgo call, linked as hutch is (static
#                   glibc): what any cgo binary on glibc pays before main
#   hutch version   prints one line
#   hutch validate  -f manifests/webserver.yaml: reads, decodes, validates
#   hutch get       an empty state root (--root, made here): prints the header
# It touches nothing outside one temporary folder, which it removes.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
RUNS=${BENCH_STARTUP_RUNS:-300}
OUT=${BENCH_OUT:-$HERE/RESULTS.md}
export PATH=$PATH:/usr/local/go/bin

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
note() { echo "$*" >>"$W/notes.txt"; }
[ "$(id -u)" = 0 ] || die "run me as root (hutch's verbs check their state root as root)"
command -v go >/dev/null || die "no go command"

W=$(mktemp -d /var/tmp/hstartup.XXXXXX) || die "mktemp failed"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/log" "$W/bare" "$W/cgo"
: >"$W/notes.txt"

HUTCH=""
hutch_binary
[ -n "$HUTCH" ] || die "no hutch binary (build failed: $(tail -n 3 "$W/log/build.log" 2>/dev/null | tr '\n' ' '))"

say "building the bare Go programs and the clock"
cat >"$W/bare/main.go" <<'EOF'
package main

import "os"

func main() { os.Stdout.WriteString("hello\n") }
EOF
cat >"$W/cgo/main.go" <<'EOF'
package main

// static int one(void) { return 1; }
import "C"

import "os"

func main() {
	if C.one() == 1 {
		os.Stdout.WriteString("hello\n")
	}
}
EOF
printf 'module bare\n\ngo 1.21\n' >"$W/bare/go.mod"
printf 'module cgo\n\ngo 1.21\n' >"$W/cgo/go.mod"
(cd "$W/bare" && CGO_ENABLED=0 GOFLAGS= go build -o "$W/bare-go" .) >>"$W/log/build.log" 2>&1 ||
	die "bare Go program: $(tail -n 3 "$W/log/build.log")"
(cd "$W/cgo" && GOFLAGS= go build -tags netgo,osusergo -ldflags '-extldflags=-static' -o "$W/bare-cgo" .) >>"$W/log/build.log" 2>&1 ||
	die "bare cgo program: $(tail -n 3 "$W/log/build.log")"
(cd "$REPO" && go build -o "$W/startup" ./bench/startup) >>"$W/log/build.log" 2>&1 ||
	die "bench/startup: $(tail -n 3 "$W/log/build.log")"

mkdir -m 0700 "$W/root"
read -r la1 la5 la15 _ </proc/loadavg
say "timing $RUNS runs of each command (load $la1 $la5 $la15)"
"$W/startup" -runs "$RUNS" \
	"bare Go=$W/bare-go" \
	"bare cgo (static glibc)=$W/bare-cgo" \
	"hutch version=$HUTCH version" \
	"hutch validate -f manifests/webserver.yaml=$HUTCH validate -f $REPO/manifests/webserver.yaml" \
	"hutch get (empty root)=$HUTCH --root $W/root get" >"$W/times.tsv"

if readelf -lW "$HUTCH" 2>/dev/null | grep -q "Requesting program interpreter"; then
	note "hutch is dynamically linked (BENCH_HUTCH, or a tree older than scripts/build.sh): ld.so's work is in its figures"
fi

/usr/bin/python3 - "$W/times.tsv" "$OUT" "$HUTCH" "$REPO" "$RUNS" "$la1 $la5 $la15" "$W/notes.txt" <<'EOF'
import datetime, os, platform, subprocess, sys

times, out, hutch, repo, runs, load, notes = sys.argv[1:]
BEGIN, END = "<!-- startup begin -->", "<!-- startup end -->"
GOAL_MS = 2.0

def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except Exception:
        return "?"

rows = []
with open(times) as f:
    for line in f:
        label, n, med, p90, lo, hi = line.rstrip("\n").split("\t")
        rows.append((label, int(n), *(int(x) / 1000 for x in (med, p90, lo, hi))))
bare = rows[0][2]
table = [
    "| command | runs | median | p90 | min | max | median - bare Go's |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
verdicts = []
for label, n, med, p90, lo, hi in rows:
    delta = "" if label == "bare Go" else f"{med - bare:+.2f} ms"
    table.append(f"| {label} | {n} | {med:.2f} ms | {p90:.2f} ms | {lo:.2f} ms | {hi:.2f} ms | {delta} |")
    if label.startswith("hutch"):
        ok = med - bare <= GOAL_MS
        verdicts.append(f"- {label}: {med - bare:.2f} ms over bare Go's median: "
                        + ("met" if ok else f"MISSED by {med - bare - GOAL_MS:.2f} ms"))

cpu = "?"
try:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
except OSError:
    pass
git = run("git", "-C", repo, "rev-parse", "--short", "HEAD")
if subprocess.run(["git", "-C", repo, "diff", "--quiet", "HEAD", "--", "."], capture_output=True).returncode != 0:
    git += " + uncommitted changes"
with open(notes) as f:
    note_lines = [f"- {l.strip()}" for l in f if l.strip()]

section = "\n".join([
    BEGIN,
    "## Start-up: hutch's verbs against a bare Go program (bench/startup.sh)",
    "",
    "Written by `make bench-startup` (and `make bench`, last): whole processes timed from fork to "
    "the end of wait4, stdout on /dev/null, the commands in turns after 20 untimed rounds. "
    "bare Go is `os.Stdout.WriteString` with CGO_ENABLED=0; bare cgo is the same with one cgo "
    "call, linked as scripts/build.sh links hutch (static glibc).",
    "",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    f"- machine: {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, load average at start: {load}",
    f"- hutch: {run(hutch, 'version')} (git {git})",
    "",
    *table,
    "",
    f"### issue 18's goal: every verb's median within {GOAL_MS:g} ms of bare Go's",
    "",
    *verdicts,
    *([""] + ["### notes", ""] + note_lines if note_lines else []),
    "",
    END,
    "",
])
print("\n".join(table + [""] + verdicts))
if out == "-":
    sys.exit(0)
old = ""
if os.path.exists(out):
    with open(out) as f:
        old = f.read()
if BEGIN in old and END in old:
    pre, rest = old.split(BEGIN, 1)
    post = rest.split(END, 1)[1].lstrip("\n")
    new = pre + section + (("\n" + post) if post else "")
else:
    new = old.rstrip("\n") + ("\n\n" if old else "") + section
with open(out, "w") as f:
    f.write(new)
print(f"bench: wrote {out}", file=sys.stderr)
EOF
