#!/usr/bin/python3
"""stats.py: turns bench/run.sh's samples into the table it prints and writes
to bench/RESULTS.md.

Samples (tab-separated): FIGURE RUNNER PAIR VALUE UNIT, times in
microseconds, memory in kB. For every figure: runs, median, min and max per
runner, and the ratio hutch/runner computed pair by pair (pair i of hutch
against pair i of the runner, which ran next to each other) and summarised
by its median. Then issue 8's targets, each met or missed and by how much,
hutch's own per-step output of its last apply and delete, and the notes.
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

# figure -> (table, title); the order of this dict is the order of the table.
FIGURES = {
    "up": ("updown", "up: start -> first HTTP 200"),
    "upcmd": ("updown", "up, part: start -> the command returned"),
    "down": ("updown", "down: delete -> everything gone"),
    "noop1": ("updown", "no-op: second apply, unchanged manifest"),
    "upN": ("many", "up: all N serving"),
    "downN": ("many", "down: all N gone"),
    "noopN": ("many", "no-op: second apply, N containers"),
    "memory": ("many", "resident memory (VmRSS)"),
    "floor": ("floor", "/bin/true: start -> exited and cleaned up"),
    "rootfs": ("rootfs", "rootfs cold build, command line (hutch = hutch export --bundle, fresh --root)"),
    "rootfs-warm-export": ("rootfs", "rootfs warm, hutch export --bundle again (same --root)"),
    "rootfs-go": ("rootfs", "rootfs cold build, drivers/fs go benchmarks (ColdApply against CpA)"),
    "rootfs-warm": ("rootfs", "rootfs warm, drivers/fs go benchmark (WarmApply: layer cached, mount)"),
    "rootfs-step": ("rootfs", "apply's own rootfs step, as apply prints it"),
    "python": ("floor", "python3 start-up and import of http.server, chroot, no namespaces"),
}
STEP = re.compile(r"^[-+~!x] .*\((created|updated|replaced|deleted|unchanged|failed)[^)]*\)$")
SUMMARY = ("(run took", "Apply complete", "Delete complete", "No changes", "Plan:", "container ", "hutch:")
TABLES = {
    "updown": "up and down: one web server",
    "many": "N web servers",
    "floor": "floor",
    "rootfs": "rootfs",
}


def run(*cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not installed"


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or "?"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def git_head():
    """The repository's HEAD, short."""
    return run("git", "-C", os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rev-parse", "--short", "HEAD")


def notes_section(path):
    """The lines of a "### notes" section listing the file's lines, or none."""
    notes = []
    if os.path.exists(path):
        with open(path) as f:
            notes = [l.rstrip("\n") for l in f if l.strip()]
    if not notes:
        return []
    return ["### notes", ""] + [f"- {l}" for l in notes] + [""]


def fmt(v, unit):
    if unit == "us":
        ms = v / 1000.0
        if ms >= 1000:
            return f"{ms / 1000:.2f} s"
        if ms >= 100:
            return f"{ms:.0f} ms"
        return f"{ms:.1f} ms"
    if unit == "kB":
        return f"{v / 1024:.2f} MiB"
    return f"{v:g}"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 5:
                fig, runner, pair, val, unit = parts
                rows.append((fig, runner, int(pair), float(val), unit))
    return rows


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--samples", required=True)
    p.add_argument("--sections", required=True)
    p.add_argument("--notes", required=True)
    p.add_argument("--logs", required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--out", default="-")
    p.add_argument("--hutch", default="")
    p.add_argument("--rootfs", default="")
    a = p.parse_args(argv)
    n = a.n

    rows = load(a.samples)
    loads = {}
    with open(a.sections) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                loads[parts[0]] = (parts[1], parts[2])

    def fig_key(fig):
        if fig in (f"up{n}", f"down{n}", f"noop{n}"):
            return fig[:-len(str(n))] + "N"
        return fig

    data = {}  # figure -> runner -> {pair: value}
    units = {}
    runner_order = {}
    for fig, runner, pair, val, unit in rows:
        k = fig_key(fig)
        data.setdefault(k, {}).setdefault(runner, {})[pair] = val
        units[(k, runner)] = unit
        runner_order.setdefault(k, [])
        if runner not in runner_order[k]:
            runner_order[k].append(runner)

    summary = {}  # (figure, runner) -> dict(median, min, max, ratio)
    out = []
    w = out.append
    for table, ttitle in TABLES.items():
        figs = [f for f, (t, _) in FIGURES.items() if t == table and f in data]
        if not figs:
            continue
        title = ttitle.replace("N web", f"{n} web")
        la = loads.get(table, ("", "?"))[1]
        w(f"### {title} (load average at start: {la})")
        w("")
        w("| figure | runner | runs | median | min | max | hutch/runner, median of pair ratios |")
        w("|---|---|---:|---:|---:|---:|---:|")
        for fig in figs:
            ftitle = FIGURES[fig][1].replace("all N", f"all {n}").replace(", N c", f", {n} c")
            runners = runner_order[fig]
            # hutch first, then the others in the order they ran
            runners = sorted(runners, key=lambda r: (0 if r == "hutch" else 1, runners.index(r)))
            for r in runners:
                vals = data[fig][r]
                unit = units[(fig, r)]
                xs = sorted(vals.values())
                med = statistics.median(xs)
                ratio = ""
                ratio_v = None
                if r != "hutch" and "hutch" in data[fig] and unit == units.get((fig, "hutch")):
                    h = data[fig]["hutch"]
                    pr = [h[i] / vals[i] for i in vals if i in h and vals[i] > 0]
                    if pr:
                        ratio_v = statistics.median(pr)
                        ratio = f"{ratio_v:.2f} ({len(pr)} pairs)"
                summary[(fig, r)] = dict(median=med, min=xs[0], max=xs[-1], ratio=ratio_v, unit=unit, n=len(xs))
                w(f"| {ftitle} | {r} | {len(xs)} | {fmt(med, unit)} | {fmt(xs[0], unit)} | {fmt(xs[-1], unit)} | {ratio} |")
                ftitle = ""
        w("")

    # --- targets
    def med(fig, r):
        s = summary.get((fig, r))
        return s["median"] if s else None

    def ratio(fig, r):
        s = summary.get((fig, r))
        return s["ratio"] if s else None

    t = []

    def target(name, goal, got, limit, show):
        if got is None:
            t.append(f"| {name} | {goal} | not measured | - | - |")
            return
        ok = got <= limit
        by = "" if ok else f"misses by {show(got - limit)} ({got / limit:.2f}x the goal)"
        t.append(f"| {name} | {goal} | {show(got)} | {'yes' if ok else 'NO'} | {by} |")

    r2 = lambda x: f"{x:.3f}"
    ms = lambda x: f"{x / 1000:.1f} ms"
    mib = lambda x: f"{x / 1024:.2f} MiB"
    target("up, hutch/seed", "<= 0.70", ratio("up", "seed"), 0.70, r2)
    target("up, hutch/runc (ahead of every peer)", "< 1.00", ratio("up", "runc"), 1.0, r2)
    target("up, hutch/crun (ahead of every peer)", "< 1.00", ratio("up", "crun"), 1.0, r2)
    target("down, hutch/seed", "<= 0.80", ratio("down", "seed"), 0.80, r2)
    target(f"N={n} up, hutch/seed", "<= 0.60", ratio("upN", "seed"), 0.60, r2)
    target(f"N={n} delete, hutch/seed", "<= 0.50", ratio("downN", "seed"), 0.50, r2)
    target("no-op apply, 1 container", "< 10 ms", med("noop1", "hutch"), 10000, ms)
    target(f"no-op apply, {n} containers", "< 50 ms", med("noopN", "hutch"), 50000, ms)
    target("floor, hutch/crun", "<= 1.00", ratio("floor", "crun"), 1.0, r2)
    if ratio("rootfs-go", "cp-a") is not None:
        target("rootfs cold, hutch/cp -a (drivers/fs benchmarks)", "<= 1.00", ratio("rootfs-go", "cp-a"), 1.0, r2)
    target("rootfs cold, hutch export/cp -a (command line)", "<= 1.00", ratio("rootfs", "cp-a"), 1.0, r2)
    if med("rootfs-warm", "hutch") is not None:
        target("rootfs warm, hutch (WarmApply)", "< 5 ms", med("rootfs-warm", "hutch"), 5000, ms)
    else:
        target("rootfs warm, hutch export", "< 5 ms", med("rootfs-warm-export", "hutch"), 5000, ms)
    target("rootfs warm, apply's rootfs step", "< 5 ms", med("rootfs-step", "hutch apply, warm cache"), 5000, ms)
    target(f"memory per container at N={n}", "<= 2.2 MiB", med("memory", "hutch-per-container"), 2.2 * 1024, mib)
    w("### issue 8's targets")
    w("")
    w("| target | goal | measured (median) | met | miss |")
    w("|---|---|---:|---|---|")
    out.extend(t)
    w("")

    # --- hutch's own account of where the time goes
    logs = [
        ("last-apply-1.log", "hutch apply, one web server (last run)"),
        ("last-noop-1.log", "hutch apply again, unchanged (last run)"),
        ("last-delete-1.log", "hutch delete, one web server (last run)"),
        (f"last-apply-{n}.log", f"hutch apply, {n} web servers (last run)"),
        (f"last-noop-{n}.log", f"hutch apply again, {n} unchanged (last run)"),
        (f"last-delete-{n}.log", f"hutch delete, {n} web servers (last run)"),
        ("slowest-apply-1.log", "hutch apply, one web server (slowest run)"),
        ("slowest-delete-1.log", "hutch delete, one web server (slowest run)"),
        (f"slowest-apply-{n}.log", f"hutch apply, {n} web servers (slowest run)"),
        (f"slowest-delete-{n}.log", f"hutch delete, {n} web servers (slowest run)"),
        (f"last-procs-{n}.txt", f"processes at N={n}: pid, VmRSS kB, pid namespace, name, executable"),
    ]
    for fn, title in logs:
        path = os.path.join(a.logs, fn)
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            lines = f.read().rstrip("\n").splitlines()
        if fn.endswith(".log"):
            # the steps with their times and the summary; the plan's field
            # listing above them is left out
            keep = [l for l in lines if STEP.match(l) or l.startswith(SUMMARY)]
            lines = keep or lines
        if len(lines) > 60:
            lines = lines[:30] + [f"... ({len(lines) - 50} lines) ..."] + lines[-20:]
        w(f"#### {title}")
        w("")
        w("```")
        out.extend(lines)
        w("```")
        w("")

    out.extend(notes_section(a.notes))

    body = "\n".join(out)
    print(body)

    if a.out and a.out != "-":
        hier = "unknown"
        try:
            ctrls = sorted(d for d in os.listdir("/sys/fs/cgroup") if os.path.exists(f"/sys/fs/cgroup/{d}/cgroup.procs"))
            if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                hier = "cgroup v2 (unified)"
            else:
                uni = ""
                if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
                    with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
                        uni = f.read().strip() or "none"
                    hier = f"hybrid: cgroup v1 ({', '.join(c for c in ctrls if c != 'unified')}), cgroup2 at /sys/fs/cgroup/unified with controllers: {uni}"
                else:
                    hier = f"cgroup v1 ({', '.join(ctrls)})"
        except OSError:
            pass
        cpu = cpu_model()
        git = git_head()
        head = [
            "# Benchmark results",
            "",
            "Written by `make bench` (bench/run.sh): the last run's table, as printed. "
            "Times are wall-clock; ratios are hutch/runner per pair (hutch's run i against "
            "the runner's run i, which ran next to it), summarised by their median.",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, {hier}",
            f"- hutch: {run(a.hutch, 'version') if a.hutch else 'not built'} (git {git})",
            f"- runc: {run('runc', '--version')}; crun: {run('crun', '--version')}",
            f"- iproute2: {run('ip', '-V')}; util-linux: {run('unshare', '--version')}; curl: {run('curl', '--version')}",
            f"- python: {run('/usr/bin/python3', '-V')} (Debian's /usr/bin/python3)",
            f"- podman: {run('podman', '--version')}",
            "",
        ]
        # the other scripts' sections (lab.sh, ports.sh, startup.sh: each
        # between its <!-- NAME begin --> and <!-- NAME end --> markers) are
        # kept, in their order, after ours
        kept = ""
        if os.path.exists(a.out):
            with open(a.out) as f:
                old = f.read()
            for m in re.finditer(r"<!-- (\w+) begin -->.*?<!-- \1 end -->", old, re.S):
                kept += "\n" + m.group(0) + "\n"
        with open(a.out, "w") as f:
            f.write("\n".join(head) + "\n" + body + "\n" + kept)


if __name__ == "__main__":
    main(sys.argv[1:])
