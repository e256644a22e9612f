#!/usr/bin/python3
"""scalestats.py: turns bench/scale.sh's samples into its tables, and writes
them as the "Scale" section of bench/RESULTS.md, between the markers
<!-- scale begin --> and <!-- scale end --> (replaced on every run; the rest
of the file is kept; appended when the markers are not there yet).

Samples (tab-separated): N RUNNER PHASE RUN MICROSECONDS, phases apply,
serve (first answer from every server), noop (hutch: a second apply of the
unchanged manifest, whole process) and delete (until nothing is left), and
hutch's own phases from its HUTCH_TRACE lines (--phases writes them). For
each N and phase: median, min and max per runner, the cost per container
(median / N) and hutch/shell; the growth of the cost per container from the
smallest N to each larger one, against issue 18's goal for hutch's delete
(at most 1.2x); where hutch's time goes; its delete by kind of step.
The tables are built by labstats.py's functions (lab.sh's tables).
Only reads its inputs and runs --version commands; writes --out.
"""
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from labstats import (STEP, TRACE_PHASES, about, emit, fmt, growth_table, med, parse_args, phase_tables,  # noqa: E402
                      phase_times, read_samples, steps_table, to_us, trace_events, trace_table)
from stats import run  # noqa: E402

PHASES = [
    ("apply", "apply: the command(s) until they return"),
    ("serve", "first answer: then until every server answered a GET"),
    ("up", "up: apply + first answer"),
    ("noop", "no-op apply: `hutch apply` of the unchanged manifest, the whole process", ["hutch"]),
    ("delete", "delete: the command(s) until nothing is left"),
]
GOAL = 1.2
GOAL_PHASES = ["delete"]
BEGIN, END = "<!-- scale begin -->", "<!-- scale end -->"
# hutch's phases from its trace: apply's as lab.sh has them, the no-op's, and
# delete's cut at its first step's start and its last step's end
SCALE_TRACE_PHASES = [(k, t) for k, t in TRACE_PHASES if k.startswith("a.")] + [
    ("n.load", "no-op apply: start -> locked and loaded (Go start, manifest, locks, store)"),
    ("n.observe", "no-op apply: -> observed (the host read)"),
    ("n.exit", "no-op apply: -> exit (plan found nothing to do)"),
    ("d.find", "delete: start -> first step (Go start, manifest, locks, store, marks found on the host)"),
    ("d.work", "delete: first step's start -> last step's end"),
    ("d.tail", "delete: last step's end -> exit (state folders removed)"),
]
STEP_START = re.compile(r"^step (\w+) (\S+): starts$")
# per kind of delete step: what --phases records, per run
KIND_MEASURES = ["sum", "count", "med", "max", "span"]


def delete_times(start_us, total_us, trace, log):
    """delete's phases and, per kind of step, its step time summed, count,
    median and longest step and wall span (first start to last end): each
    step's start from the trace (step delete KIND/ID: starts), its length
    from the printed line (- KIND ID (deleted, D ms))."""
    starts = {}
    for t, msg in trace_events(start_us, trace):
        m = STEP_START.match(msg)
        if m and m.group(1) == "delete":
            starts.setdefault(m.group(2), t)
    if not starts:
        return {}
    took = {}
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            for line in f:
                m = STEP.match(line.rstrip("\n"))
                if m and m.group(3) == "deleted" and m.group(4):
                    took[f"{m.group(1)}/{m.group(2)}"] = to_us(m.group(4), m.group(5))
    first = min(starts.values())
    ends = [starts[i] + took[i] for i in starts if i in took]
    last = max(ends) if ends else total_us
    out = {"d.find": first, "d.work": last - first, "d.tail": total_us - last}
    kinds = {}
    for i, d in took.items():
        if i in starts:
            kinds.setdefault(i.split("/", 1)[0], []).append((starts[i], d))
    for k, xs in kinds.items():
        ds = [d for _, d in xs]
        out.update({f"d.sum.{k}": sum(ds), f"d.count.{k}": len(ds), f"d.med.{k}": statistics.median(ds),
                    f"d.max.{k}": max(ds), f"d.span.{k}": max(s + d for s, d in xs) - min(s for s, _ in xs)})
    return out


def noop_times(start_us, total_us, trace):
    """The no-op apply's phases: loaded, observed, then nothing to do."""
    at = {}
    for t, msg in trace_events(start_us, trace):
        for key, pre in (("loaded", "apply: locked and loaded"), ("observed", "apply: observed at")):
            if msg.startswith(pre) and key not in at:
                at[key] = t
    if "loaded" not in at or "observed" not in at:
        return {}
    return {"n.load": at["loaded"], "n.observe": at["observed"] - at["loaded"], "n.exit": total_us - at["observed"]}


def print_phases(what, start_us, total_us, trace, log):
    if what == "delete":
        out = delete_times(start_us, total_us, trace, log)
    elif what == "noop":
        out = noop_times(start_us, total_us, trace)
    else:
        out = phase_times(what, start_us, total_us, trace)
    for k, v in out.items():
        print(f"{k}\t{max(0, int(v))}")


def kinds_table(w, data, ns):
    """hutch's delete by kind of step: medians of the runs at each N."""
    kinds = sorted({k[2].split(".", 2)[2] for k in data if k[1] == "hutch" and k[2].startswith("d.sum.")},
                   key=lambda k: -max(med(data, n, "hutch", f"d.sum.{k}") or 0 for n in ns))
    if not kinds:
        return
    lo = ns[0]
    w("### hutch's delete by kind of step (its trace and printed step times, medians of the runs)")
    w("")
    w("Step time is each step's own time, summed over the steps of that kind (steps run side by side, "
      "so the sums exceed the wall time); span is from the first such step's start to the last one's end.")
    w("")
    w(f"| step | N | count | step time | per container | growth per container (N / {lo}) | median step | longest step | span |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in kinds:
        t = k
        base = med(data, lo, "hutch", f"d.sum.{k}")
        for n in ns:
            v = {m: med(data, n, "hutch", f"d.{m}.{k}") for m in KIND_MEASURES}
            if v["sum"] is None:
                continue
            g = f"{(v['sum'] / n) / (base / lo):.2f}x" if base and n != lo else ""
            w(f"| {t} | {n} | {v['count']:.0f} | {fmt(v['sum'])} | {fmt(v['sum'] / n)} | {g} | "
              f"{fmt(v['med'])} | {fmt(v['max'])} | {fmt(v['span'])} |")
            t = ""
    w("")


def main(argv):
    if argv[:1] == ["--phases"]:
        # --phases apply|noop|delete START_US TOTAL_US TRACEFILE LOGFILE
        return print_phases(argv[1], int(argv[2]), int(argv[3]), argv[4], argv[5])
    a = parse_args(argv)
    data = read_samples(a.samples)
    ns = sorted({k[0] for k in data})
    loads = a.loads
    out = []
    w = out.append
    phase_tables(w, data, ns, PHASES, ["hutch", "shell"],
                 lambda n: f"### N={n}: {n} containers, each its own netns, veth pair, cgroup, rootfs and "
                           f"web server (load average at start: {loads.get(str(n), '?')})")
    if len(ns) >= 2:
        verdict = growth_table(w, data, ns, PHASES, ["hutch", "shell"], GOAL, GOAL_PHASES,
                               "issue 18's goal for hutch's delete")
        for ph, g in verdict:
            if g is None:
                w(f"**hutch's {ph}: not measured at every N, so the {GOAL}x goal is not shown to hold.**")
            elif g <= GOAL:
                w(f"**The {GOAL}x goal holds for hutch's {ph} up to N={ns[-1]} (growth at most {g:.2f}x).**")
            else:
                w(f"**The {GOAL}x goal does not hold for hutch's {ph}: it grows by up to {g:.2f}x.**")
        w("")
    trace_table(w, data, ns, SCALE_TRACE_PHASES, "### where hutch's time goes (its HUTCH_TRACE lines, medians of the runs)")
    kinds_table(w, data, ns)
    steps_table(w, a.logs, ns, ("apply",))
    emit(
        a, out, BEGIN, END,
        "## Scale: N containers, each with its own netns, veth pair, cgroup, rootfs and web server (bench/scale.sh)",
        "Written by `make bench-scale` (and `make bench`): the last run's table. hutch applies one manifest "
        "of N busybox httpd containers, each with its own network namespace, one veth pair to the host with "
        "addresses and a default route, a 16M memory limit and a rootfs; shell makes the same with the seed "
        "tutorial's commands (`ip`, `mkdir`, `cp`, nsenter and unshare into the netns and the cgroup, chroot) "
        "and removes them one container after the other as bench/run.sh's seed runner does. Runs alternate "
        "hutch, shell / shell, hutch after one unrecorded warm-up pair. Times are wall-clock medians; per "
        "container = median / N.",
        about(a.hutch, f"shell's memory cgroup: {a.shell_cgroup or '?'}",
              f"- busybox: {run('busybox')}; iproute2: {run('ip', '-V')}; util-linux: {run('unshare', '--version')}; "
              f"curl: {run('curl', '--version')}"))


if __name__ == "__main__":
    main(sys.argv[1:])
