#!/usr/bin/env python3
"""bench_paths.py: times paths in the NAT lab (driven by bench/bench_paths.sh).

The one idea: time what a user waits for, from the outside. `send` starts `qpc send` in
a namespace N times and takes the time from the fork to the line "delivered ..." on its
stdout (process start, server session, punch or relay, handshake, ack: all of it).
`repl` starts a REPL on a pseudo-terminal N times, waits until it is connected to its
server, and takes the time from typing "/mesh send" to "delivered". Samples are 0.25 s
apart (PAUSE_S). `start` times
`qpc version`, the floor every one-shot figure stands on. Prints one line per mode:
median, p99 and max in ms, and how many samples said which path.

  bench_paths.py send NS N QPC ARGS... -- KEY
  bench_paths.py repl NS N QPC ARGS... -- KEY
  bench_paths.py start NS N QPC
"""
import os
import pty
import re
import select
import statistics
import subprocess
import sys
import time

# Between two samples: a node takes 5 punch requests a second per client key (bursts of
# 20), and a user does not send 30 one-shot messages a second.
PAUSE_S = 0.25
# The receipt's line: "delivered ID to WHO (1 hop, via direct link|relay ADDR|server ..., T ms)".
DELIVERED = re.compile(rb"delivered [0-9a-f]{12} to [0-9a-f]{12} \(\d+ hops?, via (direct link|relay|server)")
PATH_NAMES = {"direct link": "direct", "relay": "relayed", "server": "server"}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def report(what, xs, paths):
    if not xs:
        print("%-22s no samples" % what)
        return
    kinds = ", ".join("%s %d" % (k, v) for k, v in sorted(paths.items()))
    print("%-22s n=%-3d median %6.1f ms  p99 %6.1f ms  max %6.1f ms  (%s)" %
          (what, len(xs), statistics.median(xs), pct(xs, 99), max(xs), kinds))


def one_send(ns, argv, key, i):
    t0 = time.monotonic()
    p = subprocess.Popen(["ip", "netns", "exec", ns] + argv + ["send", key, "bench %d" % i],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    path = None
    for line in p.stdout:
        m = DELIVERED.search(line)
        if m:
            path = PATH_NAMES[m.group(1).decode()]
            break
    t1 = time.monotonic()
    p.stdout.close()
    p.wait()
    return (t1 - t0) * 1000.0, path or "not delivered"


def read_until(fd, pattern, timeout):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        m = pattern.search(buf)
        if m:
            return m
    return None


def one_repl(ns, argv, key, i):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("ip", ["ip", "netns", "exec", ns] + argv + ["repl"])
    try:
        if read_until(fd, re.compile(rb"connected to server"), 10) is None:
            return None, "no session"
        time.sleep(0.3)   # the prompt is idle: nothing else in flight when we type
        line = ("/mesh send %s repl %d\r" % (key, i)).encode()
        t0 = time.monotonic()
        os.write(fd, line)
        m = read_until(fd, DELIVERED, 10)
        t1 = time.monotonic()
        os.write(fd, b"/quit\r")
        read_until(fd, re.compile(rb"$^"), 1.0)
        return ((t1 - t0) * 1000.0, PATH_NAMES[m.group(1).decode()]) if m else (None, "not delivered")
    finally:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def main(argv):
    mode, ns, n = argv[0], argv[1], int(argv[2])
    rest = argv[3:]
    if mode == "start":
        xs = []
        for _ in range(n):
            t0 = time.monotonic()
            subprocess.run(["ip", "netns", "exec", ns, rest[0], "version"], stdout=subprocess.DEVNULL)
            xs.append((time.monotonic() - t0) * 1000.0)
        report("process start", xs, {"-": n})
        return 0
    sep = rest.index("--")
    qpc, key = rest[:sep], rest[sep + 1]
    xs, paths = [], {}
    for i in range(n):
        if i > 0:
            time.sleep(PAUSE_S)
        ms, path = (one_send if mode == "send" else one_repl)(ns, qpc, key, i)
        paths[path] = paths.get(path, 0) + 1
        if ms is not None and path in ("direct", "relayed"):
            xs.append(ms)
    report("qpc send" if mode == "send" else "first REPL message", xs, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
