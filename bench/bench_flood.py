#!/usr/bin/env python3
"""bench_flood.py HOST PORT SECONDS: hostile datagrams at a node's UDP port, as fast as
one process can send them, for bench_flood.sh.

Three kinds, in turn: random bytes of random length; packets shaped like QUIC v1
Initials (long header, random connection ids, no token, padded to 1200 bytes) whose
payload is random, so the node derives Initial keys and fails to decrypt each one; and
short-header packets with random connection ids. Every 256 packets the flood moves to a
new source port, as spoofed sources would. QPC_FLOOD_KINDS=junk,initial,short picks
the kinds (default all three). Prints "sent N" at the end.
"""
import os
import socket
import sys
import time


def initial() -> bytes:
    dcid, scid = os.urandom(8), os.urandom(8)
    body_len = 1200 - 1 - 4 - 1 - 8 - 1 - 8 - 1 - 2
    hdr = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([8]) + dcid + bytes([8]) + scid
    hdr += b"\x00" + (0x4000 | body_len).to_bytes(2, "big")
    return hdr + os.urandom(body_len)


def junk() -> bytes:
    return os.urandom(1 + os.urandom(1)[0] * 5)


def short() -> bytes:
    return bytes([0x40 | (os.urandom(1)[0] & 0x3F)]) + os.urandom(16 + 100)


def main() -> int:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    names = os.environ.get("QPC_FLOOD_KINDS", "junk,initial,short").split(",")
    kinds = [{"junk": junk, "initial": initial, "short": short}[n] for n in names]
    # a pool of payloads, so the sender's own RNG is not what limits the rate
    pool = [kinds[i % len(kinds)]() for i in range(3 * 512)]
    end = time.monotonic() + seconds
    sent = 0
    sock = None
    while time.monotonic() < end:
        if sent % 256 == 0:
            if sock:
                sock.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(64):
            try:
                sock.sendto(pool[sent % len(pool)], (host, port))
            except OSError:   # a full socket buffer: the flood outruns the kernel, go on
                pass
            sent += 1
    print(f"sent {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
