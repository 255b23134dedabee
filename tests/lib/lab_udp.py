#!/usr/bin/env python3
"""lab_udp.py: plain-UDP probes for the NAT lab (tests/lib/lab.sh), run inside a namespace.

The one idea: check the lab's NATs with nothing but UDP, so a test can tell a lab that
behaves like the internet (mappings kept, crossing packets clashing in conntrack, TTL-2
packets dying at the router) from a bug in qpc. Every mode is bounded in time.

  echo PORT [SECONDS]            answer every datagram with "seen HOST:PORT" (the sender
                                 as observed), for SECONDS (default 30)
  probe LPORT HOST:PORT          from local port LPORT, ask an echo server; prints the
                                 observed "HOST:PORT"; exit 1 without an answer in 2 s
  listen LPORT SECONDS           prints "got HOST:PORT" for the first datagram to LPORT;
                                 exit 0 if one came within SECONDS, else 1
  send LPORT HOST:PORT COUNT     COUNT datagrams from LPORT, one every 50 ms
  count HOST LPORT... SECONDS    datagrams arriving at HOST:LPORT (each port) during
                                 SECONDS; prints the total
  punch LPORT HOST:PORT [--low-ttl N] [--delay S] [--for S]
                                 from LPORT: N datagrams with TTL 2 first, then after S
                                 seconds one datagram every 50 ms at normal TTL for the
                                 --for seconds (default 2); prints "got HOST:PORT" for the
                                 first datagram from HOST:PORT; exit 0 if one came, else 1
"""
import socket
import sys
import time


def addr(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def sock(lport):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", lport))
    return s


def echo(port, seconds):
    s = sock(port)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            _, src = s.recvfrom(2048)
        except socket.timeout:
            break
        s.sendto(("seen %s:%d" % src).encode(), src)


def probe(lport, server):
    s = sock(lport)
    s.settimeout(2.0)
    s.sendto(b"probe", addr(server))
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        return 1
    print(data.decode().split(" ", 1)[1])
    return 0


def listen(lport, seconds):
    s = sock(lport)
    s.settimeout(seconds)
    try:
        _, src = s.recvfrom(2048)
    except socket.timeout:
        return 1
    print("got %s:%d" % src)
    return 0


def send(lport, peer, count):
    s = sock(lport)
    for _ in range(count):
        s.sendto(b"hello", addr(peer))
        time.sleep(0.05)
    return 0


def count(host, ports, seconds):
    import select
    socks = []
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, p))
        socks.append(s)
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select(socks, [], [], max(0.0, end - time.monotonic()))
        for s in ready:
            s.recvfrom(2048)
            n += 1
    print(n)
    return 0


def punch(lport, peer, low, delay, seconds):
    s = sock(lport)
    to = addr(peer)
    if low:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 2)
        for _ in range(low):
            s.sendto(b"open", to)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
    time.sleep(delay)
    end = time.monotonic() + seconds
    s.settimeout(0.05)
    while time.monotonic() < end:
        s.sendto(b"punch", to)
        try:
            _, src = s.recvfrom(2048)
        except socket.timeout:
            continue
        if src == to:
            print("got %s:%d" % src)
            # a few more, so the other side hears us too
            for _ in range(10):
                s.sendto(b"punch", to)
                time.sleep(0.05)
            return 0
    return 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "echo":
        echo(int(argv[1]), float(argv[2]) if len(argv) > 2 else 30.0)
        return 0
    if len(argv) == 3 and argv[0] == "probe":
        return probe(int(argv[1]), argv[2])
    if len(argv) == 3 and argv[0] == "listen":
        return listen(int(argv[1]), float(argv[2]))
    if len(argv) == 4 and argv[0] == "send":
        return send(int(argv[1]), argv[2], int(argv[3]))
    if len(argv) >= 4 and argv[0] == "count":
        return count(argv[1], [int(p) for p in argv[2:-1]], float(argv[-1]))
    if len(argv) >= 3 and argv[0] == "punch":
        low, delay, seconds = 0, 0.0, 2.0
        rest = argv[3:]
        while rest:
            opt, val, rest = rest[0], rest[1], rest[2:]
            if opt == "--low-ttl":
                low = int(val)
            elif opt == "--delay":
                delay = float(val)
            elif opt == "--for":
                seconds = float(val)
            else:
                raise SystemExit("unknown option " + opt)
        return punch(int(argv[1]), argv[2], low, delay, seconds)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
