#!/usr/bin/python3
"""procs.py: lists the processes bench/run.sh is responsible for, with their RSS.

A process is listed when it matches any of:
  --cgroup PATH   its cgroup (any hierarchy, /proc/PID/cgroup) is PATH or below
  --netns FILE    its network namespace is the one bind-mounted at FILE
  --match STR     its executable or command line contains STR
and is not in --exclude (a file of pids, one a line, e.g. a snapshot taken
before a runner started) and is not this process or its parent.
--hostpid keeps only processes in this process's pid namespace (a container's
own processes live in a pid namespace of their own; what a runner leaves
beside them lives in the host's).

Each line: PID RSS_KB PIDNS(host|ctr) COMM EXE. Reads /proc only.
"""
import argparse
import os
import sys


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def ino(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--cgroup", action="append", default=[])
    p.add_argument("--netns", action="append", default=[])
    p.add_argument("--match", action="append", default=[])
    p.add_argument("--exclude")
    p.add_argument("--hostpid", action="store_true")
    p.add_argument("--snapshot", action="store_true", help="print every pid and stop")
    a = p.parse_args(argv)

    pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
    if a.snapshot:
        for pid in pids:
            print(pid)
        return
    skip = {os.getpid(), os.getppid()}
    if a.exclude:
        with open(a.exclude) as f:
            skip |= {int(x) for x in f.read().split()}
    nets = {ino(n) for n in a.netns} - {None}
    mypidns = ino("/proc/self/ns/pid")
    for pid in pids:
        if pid in skip:
            continue
        base = f"/proc/{pid}"
        hit = False
        cg = read(base + "/cgroup") or ""
        for line in cg.splitlines():
            path = line.split(":", 2)[-1]
            if any(path == c or path.startswith(c.rstrip("/") + "/") for c in a.cgroup):
                hit = True
        if not hit and nets and ino(base + "/ns/net") in nets:
            hit = True
        try:
            exe = os.readlink(base + "/exe")
        except OSError:
            exe = ""
        cmd = (read(base + "/cmdline") or "").replace("\0", " ")
        if not hit and any(m in exe or m in cmd for m in a.match):
            hit = True
        if not hit:
            continue
        pidns = "host" if ino(base + "/ns/pid") == mypidns else "ctr"
        if a.hostpid and pidns != "host":
            continue
        status = read(base + "/status") or ""
        rss = 0
        comm = "?"
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Name:"):
                comm = line.split(None, 1)[1] if len(line.split()) > 1 else "?"
        print(pid, rss, pidns, comm, exe or "-")


if __name__ == "__main__":
    main(sys.argv[1:])
