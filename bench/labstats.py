#!/usr/bin/python3
"""labstats.py: turns bench/lab.sh's samples into its table, and writes it as
the "Labs" section of bench/RESULTS.md, between the markers
<!-- lab begin --> and <!-- lab end --> (replaced on every run; the rest of
the file is kept as it is; appended when the markers are not there yet).

Samples (tab-separated): N RUNNER PHASE RUN MICROSECONDS, phases apply,
serve (first answer from every server) and delete. For each N and phase:
median, min and max per runner, the median divided by N (the cost per
container) and hutch/shell. Then the growth of the cost per container from
the smallest N to the largest, against issue 15's goal (at most 1.2x), and
hutch's own account of its steps in the last run at each N.
Only reads its inputs and runs --version commands; writes --out.
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import sys

# The pieces stats.py (run.sh's tables) has too.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import cpu_model, git_head, notes_section, run  # noqa: E402

PHASES = [
    ("apply", "apply: the command(s) until they return"),
    ("serve", "first answer: then until every server answered a GET"),
    ("delete", "delete: the command(s) until nothing is left"),
    ("up", "up: apply + first answer"),
]
GOAL = 1.2
BEGIN, END = "<!-- lab begin -->", "<!-- lab end -->"
STEP = re.compile(r"^[-+~] (\S+) (\S+) \((created|deleted|updated|replaced)(?:, ([0-9.]+) (ms|s|us|µs))?\)$")
DONE = re.compile(r"^(Apply|Delete) complete in ([0-9.]+) (ms|s)")
TRACE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) (.*)$")
# hutch's phases, from its HUTCH_TRACE lines (phase key -> title)
TRACE_PHASES = [
    ("a.load", "apply: start -> locked and loaded (Go start, manifest, locks, store)"),
    ("a.observe", "apply: -> observed (the host read)"),
    ("a.intent", "apply: -> intent recorded (plan printed, intent written)"),
    ("a.steps", "apply: -> steps ended"),
    ("a.settle", "apply: -> exit (state settled)"),
    ("d.find", "delete: start -> first step (Go start, manifest, locks, store, marks found on the host)"),
    ("d.steps", "delete: first step -> exit (steps, state folders removed)"),
]


def fmt(us):
    ms = us / 1000.0
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def to_us(v, unit):
    v = float(v)
    return v * {"s": 1e6, "ms": 1e3, "us": 1, "µs": 1}[unit]


def steps(path):
    """Per kind of step in a hutch apply/delete log: durations (us), and the
    total hutch printed."""
    kinds, total = {}, None
    if not os.path.exists(path):
        return kinds, total
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = STEP.match(line)
            if m and m.group(4):
                kinds.setdefault(m.group(1), []).append(to_us(m.group(4), m.group(5)))
            m = DONE.match(line)
            if m:
                total = to_us(m.group(2), m.group(3))
    return kinds, total


def phases(what, start_us, total_us, trace):
    """hutch's phases of one apply or delete, in microseconds, from its
    HUTCH_TRACE lines (times of day, local) and the command's start (epoch
    microseconds, as bash's EPOCHREALTIME) and wall time."""
    day0 = datetime.datetime.fromtimestamp(start_us / 1e6)
    s0 = day0.hour * 3600 + day0.minute * 60 + day0.second + day0.microsecond / 1e6
    at = {}
    with open(trace, errors="replace") as f:
        for line in f:
            m = TRACE.match(line.rstrip("\n"))
            if not m:
                continue
            t = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) - s0) % 86400 * 1e6
            msg = m.group(4)
            for key, pre in (("loaded", "apply: locked and loaded"), ("observed", "apply: observed at"),
                             ("intent", "apply: intent recorded"), ("ended", "apply: steps ended"),
                             ("step", "step ")):
                if msg.startswith(pre) and key not in at:
                    at[key] = t
    out = {}
    if what == "apply" and all(k in at for k in ("loaded", "observed", "intent", "ended")):
        out = {"a.load": at["loaded"], "a.observe": at["observed"] - at["loaded"],
               "a.intent": at["intent"] - at["observed"], "a.steps": at["ended"] - at["intent"],
               "a.settle": total_us - at["ended"]}
    elif what == "delete" and "step" in at:
        out = {"d.find": at["step"], "d.steps": total_us - at["step"]}
    for k, v in out.items():
        print(f"{k}\t{max(0, int(v))}")


def main(argv):
    if argv[:1] == ["--phases"]:
        # --phases apply|delete START_US TOTAL_US TRACEFILE
        return phases(argv[1], int(argv[2]), int(argv[3]), argv[4])
    p = argparse.ArgumentParser()
    p.add_argument("--samples", required=True)
    p.add_argument("--notes", required=True)
    p.add_argument("--logs", required=True)
    p.add_argument("--out", default="-")
    p.add_argument("--hutch", default="")
    p.add_argument("--shell-cgroup", default="")
    p.add_argument("--loads", nargs="*", default=[])
    a = p.parse_args(argv)

    data = {}  # (n, runner, phase) -> {run: us}
    with open(a.samples) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            n, runner, phase, i, us = parts
            data.setdefault((int(n), runner, phase), {})[int(i)] = float(us)
    # up = apply + first answer, run by run
    for (n, r, ph), vals in list(data.items()):
        if ph == "apply":
            serve = data.get((n, r, "serve"), {})
            data[(n, r, "up")] = {i: v + serve[i] for i, v in vals.items() if i in serve}
    ns = sorted({k[0] for k in data})
    runners = ["hutch", "shell"]
    loads = dict(x.split(":", 1) for x in a.loads if ":" in x)

    def med(n, r, ph):
        v = data.get((n, r, ph))
        return statistics.median(v.values()) if v else None

    out = []
    w = out.append
    for n in ns:
        w(f"### N={n}: one network, {n} web servers (load average at start: {loads.get(str(n), '?')})")
        w("")
        w("| phase | runner | runs | median | min | max | per container | hutch/shell |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for ph, title in PHASES:
            t = title
            for r in runners:
                v = data.get((n, r, ph))
                if not v:
                    w(f"| {t} | {r} | 0 | - | - | - | - | |")
                    t = ""
                    continue
                xs = sorted(v.values())
                m = statistics.median(xs)
                ratio = ""
                if r == "shell" and med(n, "hutch", ph):
                    ratio = f"{med(n, 'hutch', ph) / m:.2f}"
                w(f"| {t} | {r} | {len(xs)} | {fmt(m)} | {fmt(xs[0])} | {fmt(xs[-1])} | {fmt(m / n)} | {ratio} |")
                t = ""
        w("")

    verdict = []
    if len(ns) >= 2:
        lo, hi = ns[0], ns[-1]
        w(f"### growth of the cost per container, N={lo} to N={hi} (issue 15's goal for hutch: at most {GOAL}x)")
        w("")
        w(f"| phase | runner | per container at {lo} | per container at {hi} | growth ({hi} / {lo}) | goal met |")
        w("|---|---|---:|---:|---:|---|")
        for ph, title in PHASES:
            t = title.split(":")[0]
            for r in runners:
                a_, b_ = med(lo, r, ph), med(hi, r, ph)
                if a_ is None or b_ is None:
                    w(f"| {t} | {r} | - | - | not measured | |")
                    if r == "hutch":
                        verdict.append((ph, None))
                    t = ""
                    continue
                g = (b_ / hi) / (a_ / lo)
                met = ""
                if r == "hutch":
                    met = "yes" if g <= GOAL else f"NO ({g / GOAL:.2f}x the goal)"
                    verdict.append((ph, g))
                else:
                    met = "(reference)"
                w(f"| {t} | {r} | {fmt(a_ / lo)} | {fmt(b_ / hi)} | {g:.2f}x | {met} |")
                t = ""
        w("")
        missed = [ph for ph, g in verdict if g is None or g > GOAL]
        if missed:
            w(f"**The {GOAL}x goal does not hold for hutch in: {', '.join(missed)}.**")
        else:
            w(f"**The {GOAL}x goal holds for hutch in every phase.**")
        w("")

    # where hutch's time goes, from HUTCH_TRACE, run by run
    tr = [(k, t) for k, t in TRACE_PHASES if any(data.get((n, "hutch", k)) for n in ns)]
    if tr:
        lo, hi = ns[0], ns[-1]
        w("### where hutch's time goes (its HUTCH_TRACE lines, medians of the runs)")
        w("")
        hdr = " | ".join(f"N={n}: median | per container" for n in ns)
        w(f"| phase | {hdr} |" + (f" growth ({hi} / {lo}) |" if len(ns) > 1 else ""))
        w("|---|" + "---:|---:|" * len(ns) + ("---:|" if len(ns) > 1 else ""))
        for k, t in tr:
            cells = []
            for n in ns:
                m = med(n, "hutch", k)
                cells.append(f"{fmt(m)} | {fmt(m / n)}" if m is not None else "- | -")
            g = ""
            if len(ns) > 1:
                a_, b_ = med(lo, "hutch", k), med(hi, "hutch", k)
                g = f" {(b_ / hi) / (a_ / lo):.2f}x |" if a_ and b_ else " - |"
            w(f"| {t} | {' | '.join(cells)} |{g}")
        w("")

    # hutch's own account: its steps by kind, last run at each N
    rows = []
    for n in ns:
        for what in ("apply", "delete"):
            kinds, total = steps(os.path.join(a.logs, f"last-{what}-{n}.log"))
            if not kinds:
                continue
            rows.append(f"| {n} | {what} | {'all steps, as hutch printed' if total else ''} | | | | | {fmt(total) if total else '-'} |")
            for k in sorted(kinds, key=lambda k: -sum(kinds[k])):
                xs = sorted(kinds[k])
                rows.append(f"| | | {k} | {len(xs)} | {fmt(statistics.median(xs))} | {fmt(xs[int(0.9 * (len(xs) - 1))])} | {fmt(xs[-1])} | {fmt(sum(xs))} |")
    if rows:
        w("### hutch's own steps in the last run at each N")
        w("")
        w("Each step's time as `hutch apply` / `hutch delete` print it (steps run side by side, so the sums exceed the wall time).")
        w("")
        w("| N | command | step | count | median | p90 | max | sum |")
        w("|---:|---|---|---:|---:|---:|---:|---:|")
        out.extend(rows)
        w("")

    out.extend(notes_section(a.notes))

    body = "\n".join(out)
    print(body)
    if not a.out or a.out == "-":
        return

    cpu = cpu_model()
    git = git_head()
    head = [
        BEGIN,
        "## Labs: N web servers on one network (bench/lab.sh)",
        "",
        "Written by `make bench-lab` (and `make bench`, after the sections above): the last run's table. "
        "hutch applies one `kind: Network` and N busybox httpd containers; shell makes the same "
        "bridge, namespaces, veths, addresses, routes, nftables rule and memory cgroups with `ip`, "
        "`nft` and shell writes, and starts the same servers (see bench/README.md for what it leaves "
        "out). Runs alternate hutch, shell / shell, hutch after one unrecorded warm-up pair. "
        "Times are wall-clock medians; per container = median / N.",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, shell lab's memory cgroup: {a.shell_cgroup or '?'}",
        f"- hutch: {run(a.hutch, 'version') if a.hutch else 'not built'} (git {git})",
        f"- busybox: {run('busybox')}; iproute2: {run('ip', '-V')}; nftables: {run('nft', '-v')}; curl: {run('curl', '--version')}",
        "",
    ]
    section = "\n".join(head) + "\n" + body + "\n" + END + "\n"
    old = ""
    if os.path.exists(a.out):
        with open(a.out) as f:
            old = f.read()
    if BEGIN in old and END in old:
        pre, rest = old.split(BEGIN, 1)
        post = rest.split(END, 1)[1].lstrip("\n")
        new = pre + section + (("\n" + post) if post else "")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section
    with open(a.out, "w") as f:
        f.write(new)


if __name__ == "__main__":
    main(sys.argv[1:])
