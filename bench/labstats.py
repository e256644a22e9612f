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
import subprocess
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


def trace_events(start_us, trace):
    """(microseconds since the command's start, message) of each of its
    HUTCH_TRACE lines (times of day, local), given its start (epoch
    microseconds, as bash's EPOCHREALTIME)."""
    day0 = datetime.datetime.fromtimestamp(start_us / 1e6)
    s0 = day0.hour * 3600 + day0.minute * 60 + day0.second + day0.microsecond / 1e6
    if not os.path.exists(trace):
        return
    with open(trace, errors="replace") as f:
        for line in f:
            m = TRACE.match(line.rstrip("\n"))
            if m:
                t = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) - s0) % 86400 * 1e6
                yield t, m.group(4)


def phase_times(what, start_us, total_us, trace):
    """hutch's phases of one apply or delete, in microseconds, from its
    HUTCH_TRACE lines and the command's start and wall time."""
    at = {}
    for t, msg in trace_events(start_us, trace):
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
    return out


def phases(what, start_us, total_us, trace):
    for k, v in phase_times(what, start_us, total_us, trace).items():
        print(f"{k}\t{max(0, int(v))}")


def read_samples(path):
    """(n, runner, phase) -> {run: us} from a samples file (tab-separated: N
    RUNNER PHASE RUN MICROSECONDS), with "up" = apply + serve run by run."""
    data = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            n, runner, phase, i, us = parts
            data.setdefault((int(n), runner, phase), {})[int(i)] = float(us)
    for (n, r, ph), vals in list(data.items()):
        if ph == "apply":
            serve = data.get((n, r, "serve"), {})
            if serve:
                data[(n, r, "up")] = {i: v + serve[i] for i, v in vals.items() if i in serve}
    return data


def med(data, n, r, ph):
    v = data.get((n, r, ph))
    return statistics.median(v.values()) if v else None


def phase_runners(phase, runners):
    """A phase is (key, title) or (key, title, its runners)."""
    return phase[0], phase[1], (phase[2] if len(phase) > 2 else runners)


def phase_tables(w, data, ns, phases_, runners, heading):
    """One table per N: each phase's median, min, max per runner, median / N
    and hutch/shell; heading(n) is its title."""
    for n in ns:
        w(heading(n))
        w("")
        w("| phase | runner | runs | median | min | max | per container | hutch/shell |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for ph in phases_:
            ph, t, rs = phase_runners(ph, runners)
            for r in rs:
                v = data.get((n, r, ph))
                if not v:
                    w(f"| {t} | {r} | 0 | - | - | - | - | |")
                    t = ""
                    continue
                xs = sorted(v.values())
                m = statistics.median(xs)
                ratio = ""
                if r == "shell" and med(data, n, "hutch", ph):
                    ratio = f"{med(data, n, 'hutch', ph) / m:.2f}"
                w(f"| {t} | {r} | {len(xs)} | {fmt(m)} | {fmt(xs[0])} | {fmt(xs[-1])} | {fmt(m / n)} | {ratio} |")
                t = ""
        w("")


def growth_table(w, data, ns, phases_, runners, goal, goal_phases, goal_text):
    """The cost per container at each N and its growth from the smallest N
    to each larger one; hutch's phases in goal_phases are held to goal.
    Returns [(phase, worst growth or None)] of those phases."""
    lo, more = ns[0], ns[1:]
    if len(ns) == 2:
        per = [f"per container at {n}" for n in ns]
    else:
        per = [f"per container at {lo}"] + [f"at {n}" for n in more]
    w(f"### growth of the cost per container, N={lo} to N={ns[-1]} ({goal_text}: at most {goal}x)")
    w("")
    w(f"| phase | runner | {' | '.join(per)} | {' | '.join(f'growth ({n} / {lo})' for n in more)} | goal met |")
    w("|---|---|" + "---:|" * (len(ns) + len(more)) + "---|")
    verdict = []
    for ph in phases_:
        ph, title, rs = phase_runners(ph, runners)
        t = title.split(":")[0]
        for r in rs:
            a_ = med(data, lo, r, ph)
            gs = [None if a_ is None or med(data, n, r, ph) is None else (med(data, n, r, ph) / n) / (a_ / lo)
                  for n in more]
            held = r == "hutch" and ph in goal_phases
            if all(g is None for g in gs) or (len(ns) == 2 and a_ is None):
                w(f"| {t} | {r} | " + "- | " * len(ns) + "not measured | " * len(more) + "|")
                if held:
                    verdict.append((ph, None))
                t = ""
                continue
            cells = [fmt(med(data, n, r, ph) / n) if med(data, n, r, ph) is not None else "-" for n in ns]
            gcells = [f"{g:.2f}x" if g is not None else "not measured" for g in gs]
            worst = None if None in gs else max(gs)
            if held:
                verdict.append((ph, worst))
                if worst is None:
                    met = "not everywhere measured"
                elif worst <= goal:
                    met = "yes"
                elif len(more) == 1:
                    met = f"NO ({worst / goal:.2f}x the goal)"
                else:
                    bad = [f"N={n}: {g / goal:.2f}x the goal" for n, g in zip(more, gs) if g > goal]
                    met = f"NO ({', '.join(bad)})"
            else:
                met = "(reference)" if r != "hutch" else "(no goal)"
            w(f"| {t} | {r} | {' | '.join(cells)} | {' | '.join(gcells)} | {met} |")
            t = ""
    w("")
    return verdict


def trace_table(w, data, ns, trace_phases, title):
    """hutch's phases (medians of the runs) at each N, per container, and
    their growth from the smallest N to each larger one."""
    tr = [(k, t) for k, t in trace_phases if any(data.get((n, "hutch", k)) for n in ns)]
    if not tr:
        return
    lo, more = ns[0], ns[1:]
    w(title)
    w("")
    hdr = " | ".join(f"N={n}: median | per container" for n in ns)
    w(f"| phase | {hdr} |" + "".join(f" growth ({n} / {lo}) |" for n in more))
    w("|---|" + "---:|---:|" * len(ns) + "---:|" * len(more))
    for k, t in tr:
        cells = []
        for n in ns:
            m = med(data, n, "hutch", k)
            cells.append(f"{fmt(m)} | {fmt(m / n)}" if m is not None else "- | -")
        g = ""
        for n in more:
            a_, b_ = med(data, lo, "hutch", k), med(data, n, "hutch", k)
            g += f" {(b_ / n) / (a_ / lo):.2f}x |" if a_ and b_ else " - |"
        w(f"| {t} | {' | '.join(cells)} |{g}")
    w("")


def steps_table(w, logs, ns, whats=("apply", "delete")):
    """hutch's own account: its steps by kind in the last run at each N (the
    logs last-WHAT-N.log)."""
    rows = []
    for n in ns:
        for what in whats:
            kinds, total = steps(os.path.join(logs, f"last-{what}-{n}.log"))
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
        for r in rows:
            w(r)
        w("")


def dirty():
    """", working tree with uncommitted changes" when the tracked files differ
    from HEAD (the build is the working tree's, lib.sh's hutch_binary)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return ", working tree with uncommitted changes" if out.strip() else ""


def about(hutch, machine_extra, tools):
    """The lines that say when, where and with what a section was measured."""
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), kernel {platform.release()}, {machine_extra}",
        f"- hutch: {run(hutch, 'version') if hutch else 'not built'} (git {git_head()}{dirty()})",
        tools,
        "",
    ]


def parse_args(argv):
    """The arguments lab.sh and scale.sh give their stats script."""
    p = argparse.ArgumentParser()
    p.add_argument("--samples", required=True)
    p.add_argument("--notes", required=True)
    p.add_argument("--logs", required=True)
    p.add_argument("--out", default="-")
    p.add_argument("--hutch", default="")
    p.add_argument("--shell-cgroup", default="")
    p.add_argument("--loads", nargs="*", default=[])
    a = p.parse_args(argv)
    a.loads = dict(x.split(":", 1) for x in a.loads if ":" in x)
    return a


def emit(a, out, begin, end, title, intro, about_lines):
    """Prints the tables (out, with the notes) and writes them to a.out as
    write_section does, unless a.out is "-"."""
    out.extend(notes_section(a.notes))
    body = "\n".join(out)
    print(body)
    if a.out and a.out != "-":
        write_section(a.out, begin, end, title, intro, about_lines, body)


def write_section(out, begin, end, title, intro, about_lines, body):
    """Writes the section (markers, title, intro, about_lines, body) into out
    in place of the one between begin and end, or appends it; the rest of
    out is kept."""
    section = "\n".join([begin, title, "", intro, ""] + about_lines) + "\n" + body + "\n" + end + "\n"
    old = ""
    if os.path.exists(out):
        with open(out) as f:
            old = f.read()
    if begin in old and end in old:
        pre, rest = old.split(begin, 1)
        post = rest.split(end, 1)[1].lstrip("\n")
        new = pre + section + (("\n" + post) if post else "")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section
    with open(out, "w") as f:
        f.write(new)


def main(argv):
    if argv[:1] == ["--phases"]:
        # --phases apply|delete START_US TOTAL_US TRACEFILE
        return phases(argv[1], int(argv[2]), int(argv[3]), argv[4])
    a = parse_args(argv)
    data = read_samples(a.samples)
    ns = sorted({k[0] for k in data})
    runners = ["hutch", "shell"]
    loads = a.loads

    out = []
    w = out.append
    phase_tables(w, data, ns, PHASES, runners,
                 lambda n: f"### N={n}: one network, {n} web servers (load average at start: {loads.get(str(n), '?')})")
    if len(ns) >= 2:
        verdict = growth_table(w, data, ns, PHASES, runners, GOAL, [ph for ph, _ in PHASES], "issue 15's goal for hutch")
        missed = [ph for ph, g in verdict if g is None or g > GOAL]
        if missed:
            w(f"**The {GOAL}x goal does not hold for hutch in: {', '.join(missed)}.**")
        else:
            w(f"**The {GOAL}x goal holds for hutch in every phase.**")
        w("")
    trace_table(w, data, ns, TRACE_PHASES, "### where hutch's time goes (its HUTCH_TRACE lines, medians of the runs)")
    steps_table(w, a.logs, ns)
    emit(
        a, out, BEGIN, END,
        "## Labs: N web servers on one network (bench/lab.sh)",
        "Written by `make bench-lab` (and `make bench`, after the sections above): the last run's table. "
        "hutch applies one `kind: Network` and N busybox httpd containers; shell makes the same "
        "bridge, namespaces, veths, addresses, routes, nftables rule and memory cgroups with `ip`, "
        "`nft` and shell writes, and starts the same servers (see bench/README.md for what it leaves "
        "out). Runs alternate hutch, shell / shell, hutch after one unrecorded warm-up pair. "
        "Times are wall-clock medians; per container = median / N.",
        about(a.hutch, f"shell lab's memory cgroup: {a.shell_cgroup or '?'}",
              f"- busybox: {run('busybox')}; iproute2: {run('ip', '-V')}; nftables: {run('nft', '-v')}; curl: {run('curl', '--version')}"))


if __name__ == "__main__":
    main(sys.argv[1:])
