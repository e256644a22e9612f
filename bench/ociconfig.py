#!/usr/bin/python3
"""ociconfig.py: writes the OCI config.json that bench/run.sh gives runc and crun.

It is `runc spec`'s default (namespaces pid, ipc, uts, mount; /proc, /dev,
/dev/pts, /dev/shm, /dev/mqueue, /sys, /sys/fs/cgroup; runc's capability set,
masked and read-only paths; no seccomp), with what the seed's container asks
for: the rootfs, the process, a hostname, the named network namespace made
with iproute2, memory 50M, and a CPU quota. Both runtimes read the same file,
so the two differ only in themselves.

usage: ociconfig.py OUT --rootfs DIR --cgroup PATH [--netns FILE]
                    [--hostname H] [--memory BYTES] [--quota US --period US]
                    -- ARGS...
"""
import argparse
import json
import sys

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--rootfs", required=True)
    p.add_argument("--cgroup", required=True)
    p.add_argument("--netns")
    p.add_argument("--hostname", default="hbench")
    p.add_argument("--memory", type=int)
    p.add_argument("--quota", type=int)
    p.add_argument("--period", type=int)
    p.add_argument("args", nargs="+")
    a = p.parse_args(argv)

    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if a.netns:
        namespaces.append({"type": "network", "path": a.netns})
    resources = {"devices": [{"allow": False, "access": "rwm"}]}
    if a.memory:
        resources["memory"] = {"limit": a.memory}
    if a.quota:
        resources["cpu"] = {"quota": a.quota, "period": a.period or 100000}

    cfg = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": a.args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": a.rootfs, "readonly": False},
        "hostname": a.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": a.cgroup,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    with open(a.out, "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
