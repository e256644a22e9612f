#!/usr/bin/python3
"""portstats.py: bench/ports.sh's measuring and its table (issue 16).

  portstats.py pick
      prints a free 10.X.Y.0/24 (no host route, in any table, or address
      overlaps it) as "10.X.Y" and a free TCP and UDP port of 127.0.0.1.

  portstats.py round --hutch H --root R --manifest M --ifname V --addr A
                     --port P --requests K --round I --samples FILE --logs DIR
      one round: starts `hutch apply -f M`, and from that instant polls, in
      two threads, the container's own address A:8000 (the socket bound to
      the benchmark's veth V, SO_BINDTODEVICE, so no packet can leave by
      another interface while the veth does not exist yet) and the published
      port 127.0.0.1:P, each every 2 ms with a new connection and a GET,
      until each answers 200; then K sequential requests through each path,
      alternating (own, published / published, own, ...), a new connection
      each (busybox httpd closes it after one answer). Appends samples
      (ROUND FIGURE VALUE_US) to FILE.

  portstats.py report --samples FILE --notes FILE --out RESULTS.md
                      --hutch H --load "1 5 15" --requests K
      the table: median, p90, min, max of each figure, and writes it as the
      "Published ports" section of RESULTS.md, between the markers
      <!-- ports begin --> and <!-- ports end --> (replaced on every run;
      appended when they are not there yet).
"""
import argparse
import datetime
import ipaddress
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import cpu_model, git_head, notes_section, run  # noqa: E402

BEGIN, END = "<!-- ports begin -->", "<!-- ports end -->"
FIGURES = [
    ("apply", "apply: `hutch apply` until it returns"),
    ("first-own", "first answer at the container's own address (A:8000), from apply's start"),
    ("first-pub", "first answer at the published port (127.0.0.1:P), from apply's start"),
    ("first-diff", "published minus own, round by round"),
    ("delete", "delete: `hutch delete` until it returns"),
    ("req-own", "one request through the container's own address (new connection, GET, answer)"),
    ("req-pub", "one request through the published port 127.0.0.1:P (dnat in output, masquerade)"),
    ("req-diff", "published minus own, median of each round's requests"),
]


def pick():
    used = []
    for cmd in (["ip", "-4", "-o", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr", "show"]):
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        for line in out.splitlines():
            words = line.split()
            cands = words[:1] + [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("inet", "local", "broadcast")]
            for c in cands:
                if c == "default":
                    continue
                try:
                    n = ipaddress.ip_network(c, strict=False)
                except ValueError:
                    continue
                if n.prefixlen > 0:
                    used.append(n)
    net = None
    for x in range(100, 255):
        for y in range(1, 255, 7):
            n = ipaddress.ip_network(f"10.{x}.{y}.0/24")
            if not any(n.overlaps(u) for u in used):
                net = f"10.{x}.{y}"
                break
        if net:
            break
    if not net:
        sys.exit("no free 10.X.Y.0/24 on this host")
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        t.close()
        try:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", port))
            u.close()
        except OSError:
            continue
        print(net, port)
        return
    sys.exit("no free port on 127.0.0.1")


def get(addr, port, ifname=None, connect_timeout=1.0):
    """One GET / on a new connection; True when the answer is 200."""
    s = socket.socket()
    try:
        if ifname:
            # ENODEV until the veth exists: not ready yet
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        s.settimeout(connect_timeout)
        s.connect((addr, port))
        s.settimeout(1.0)
        s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"HTTP/1.") and data.split(b" ", 2)[1] == b"200"
    except OSError:
        return False
    finally:
        s.close()


def one_round(a):
    first = {}
    t0 = time.perf_counter_ns()
    deadline = t0 + 60 * 10**9

    def poll(key, addr, port, ifname):
        while time.perf_counter_ns() < deadline:
            # A SYN lost while the path is being made (no neighbour yet,
            # the rule before its route_localnet) would wait for TCP's 1 s
            # retransmission: a short connect timeout and a new SYN measure
            # when the path first works instead.
            if get(addr, port, ifname, connect_timeout=0.02):
                first[key] = (time.perf_counter_ns() - t0) / 1000
                return
            time.sleep(0.002)

    with open(os.path.join(a.logs, "apply.log"), "w") as log:
        p = subprocess.Popen([a.hutch, "--root", a.root, "apply", "-f", a.manifest],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        threads = [threading.Thread(target=poll, args=("first-own", a.addr, 8000, a.ifname)),
                   threading.Thread(target=poll, args=("first-pub", "127.0.0.1", a.port, None))]
        for t in threads:
            t.start()
        rc = p.wait()
        applied = (time.perf_counter_ns() - t0) / 1000
        for t in threads:
            t.join()
    if rc != 0:
        sys.exit(f"round {a.round}: hutch apply failed (exit {rc}); see {a.logs}/apply.log")
    missing = [k for k in ("first-own", "first-pub") if k not in first]
    if missing:
        sys.exit(f"round {a.round}: no answer within 60 s at {', '.join(missing)}")
    own, pub = [], []
    lost = {"own": 0, "pub": 0}
    for k in range(a.requests):
        order = [("own", a.addr, 8000, a.ifname), ("pub", "127.0.0.1", a.port, None)]
        if k % 2:
            order.reverse()
        for key, addr, port, ifname in order:
            # A request with no answer within 1 s (TCP's first SYN
            # retransmission) is counted apart and asked again, up to 3 times.
            for _ in range(3):
                s = time.perf_counter_ns()
                ok = get(addr, port, ifname)
                d = (time.perf_counter_ns() - s) / 1000
                if ok:
                    break
                lost[key] += 1
            else:
                sys.exit(f"round {a.round}: request {k} through {key} failed 3 times")
            (own if key == "own" else pub).append(d)
    with open(a.samples, "a") as f:
        w = lambda fig, v: f.write(f"{a.round}\t{fig}\t{v:.1f}\n")  # noqa: E731
        w("apply", applied)
        w("first-own", first["first-own"])
        w("first-pub", first["first-pub"])
        w("first-diff", first["first-pub"] - first["first-own"])
        for v in own:
            w("req-own", v)
        for v in pub:
            w("req-pub", v)
        w("req-diff", statistics.median(pub) - statistics.median(own))
        w("lost-own", lost["own"])
        w("lost-pub", lost["pub"])
    print(f"apply {applied / 1000:.0f} ms, first answer own {first['first-own'] / 1000:.1f} ms, "
          f"published {first['first-pub'] / 1000:.1f} ms; requests own {statistics.median(own):.0f} us, "
          f"published {statistics.median(pub):.0f} us (medians of {a.requests})")


def fmt(us):
    neg = us < 0
    us = abs(us)
    if us >= 1e6:
        s = f"{us / 1e6:.2f} s"
    elif us >= 1e5:
        s = f"{us / 1e3:.0f} ms"
    elif us >= 1e3:
        s = f"{us / 1e3:.1f} ms"
    else:
        s = f"{us:.0f} us"
    return ("-" if neg else "") + s


def p90(xs):
    """The nearest-rank 90th percentile: the smallest value at least 90% of
    the samples do not exceed."""
    xs = sorted(xs)
    return xs[max(0, -(-9 * len(xs) // 10) - 1)]


def report(a):
    data = {}
    rounds = set()
    with open(a.samples) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            r, fig, v = parts
            rounds.add(int(r))
            data.setdefault(fig, []).append(float(v))
    out = []
    w = out.append
    w(f"### {len(rounds)} rounds (load average at start: {a.load})")
    w("")
    w("| figure | samples | median | p90 | min | max |")
    w("|---|---:|---:|---:|---:|---:|")

    def row(title, xs):
        if not xs:
            w(f"| {title} | 0 | - | - | - | - |")
            return
        w(f"| {title} | {len(xs)} | {fmt(statistics.median(xs))} | {fmt(p90(xs))} | {fmt(min(xs))} | {fmt(max(xs))} |")

    # Rounds whose first packet to A met the neighbour race (below) answer
    # about 1 s later on both paths: their first answers are shown apart.
    pairs = list(zip(data.get("first-own", []), data.get("first-pub", [])))
    late = [i for i, (o, p_) in enumerate(pairs) if min(o, p_) > 500e3]
    for fig, title in FIGURES:
        xs = data.get(fig, [])
        if fig in ("first-own", "first-pub") and late:
            row(title + ", rounds without the neighbour race", [x for i, x in enumerate(xs) if i not in late])
            row(title + ", rounds with it", [x for i, x in enumerate(xs) if i in late])
            continue
        row(title, xs)
    w("")
    lo, lp = int(sum(data.get("lost-own", []))), int(sum(data.get("lost-pub", [])))
    w(f"Requests with no answer within 1 s, asked again and left out of the rows above: {lo} of "
      f"{len(data.get('req-own', [])) + lo} through the container's address, {lp} of "
      f"{len(data.get('req-pub', [])) + lp} through the published port.")
    w("")
    if late:
        w(f"In {len(late)} of {len(pairs)} rounds both paths first answered only about 1 s after apply's "
          "start: the neighbour race of a client that asks while the container is being made. Its first "
          "packet to A left an INCOMPLETE neighbour entry, which the kernel asks again only after "
          "retrans_time_ms (1000 ms). hutch sets the host's entries of the container's IPs from the "
          "container end's MAC when it adds the host end's address (docs/network.md), which should leave "
          "none: a late round here means that no longer holds.")
        w("")
    elif pairs:
        w(f"No round of {len(pairs)} met the neighbour race (a first answer about 1 s late): hutch sets "
          "the host's neighbour entries of the container's IPs from the container end's MAC when it adds "
          "the host end's address, so a client's early try is not left waiting for ARP.")
        w("")
    out.extend(notes_section(a.notes))
    body = "\n".join(out)
    print(body)
    if not a.out or a.out == "-":
        return
    head = [
        BEGIN,
        "## Published ports: first answer through the port and through the container's address (bench/ports.sh)",
        "",
        "Written by `make bench-ports` (and `make bench`, after the sections above): the last run's table. "
        "Each round applies one busybox httpd container on a veth (a /24 of its own, 16M memory) whose "
        "port 8000 is published on 127.0.0.1 (`hostIP: 127.0.0.1`, so nothing is opened on the host's "
        "other addresses), times from the start of `hutch apply` to the first 200 at the container's own "
        "address and at 127.0.0.1:P (both polled from that instant in two threads, every 2 ms, a new "
        "connection each with a 20 ms connect timeout, so a SYN lost while the path is being made costs "
        "20 ms and not TCP's 1 s retransmission), then "
        f"{a.requests} sequential requests through each path, alternating, a new connection each, and deletes "
        "it. One unrecorded warm-up round first; the same --root throughout (the rootfs layer is cached). "
        "The published path is the output chain's dnat, route_localnet on the veth and the masquerade of the "
        "host's own source (docs/labs.md#published-ports). The process has `startWindow: 0s`, as in run.sh "
        "and lab.sh: apply returns once it is started, and the pollers measure the rest.",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), kernel {platform.release()}",
        f"- hutch: {run(a.hutch, 'version') if a.hutch else 'not built'} (git {git_head()})",
        f"- busybox: {run('busybox')}; nftables: {run('nft', '-v')}; python: {platform.python_version()}",
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


def main(argv):
    if argv[:1] == ["pick"]:
        return pick()
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["round", "report"])
    p.add_argument("--hutch", default="")
    p.add_argument("--root")
    p.add_argument("--manifest")
    p.add_argument("--ifname")
    p.add_argument("--addr")
    p.add_argument("--port", type=int)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--round", type=int, default=0)
    p.add_argument("--samples")
    p.add_argument("--logs", default=".")
    p.add_argument("--notes", default="")
    p.add_argument("--out", default="-")
    p.add_argument("--load", default="?")
    a = p.parse_args(argv)
    if a.cmd == "round":
        one_round(a)
    else:
        report(a)


if __name__ == "__main__":
    main(sys.argv[1:])
