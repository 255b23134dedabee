#!/usr/bin/env python3
"""idle_capture.py SECONDS OUT.json: what this network namespace sends, by kind.

Run inside a lab namespace (`ip netns exec NS python3 idle_capture.py 60 out.json`) by
mesh_lab.py's idle windows when MESH_LAB_CAPTURE=1. Counts the frames the namespace
sends (AF_PACKET, outgoing only, all interfaces but lo) for SECONDS and writes bytes and
packets per kind: mdns (UDP 5353), p2p-big / p2p-small (UDP from or to the P2P port:
QUIC packets of at least 200 bytes, which is where announces and messages ride, and
the rest: ACKs, keep-alive PINGs, handshakes), server (UDP to or from the server's
client port), fed (federation port), other UDP, and non-UDP (ARP, ICMP, IPv6 ND).
p2p-peers counts the IPv4 addresses P2P packets went to (in its packets field),
p2p-handshakes the QUIC handshakes it started or answered on the P2P port over IPv4 (the
distinct Destination Connection IDs of the Initial packets it sent: a retransmitted
Initial keeps its DCID, so each handshake counts once; relayed handshakes travel inside
the server connection and are not seen). Bytes are the Ethernet frames, as `ip -s link`
counts them. No dependency beyond Python's standard library (the lab has no tcpdump).
"""
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
P2P_PORT, SRV_PORT, FED_PORT, MDNS_PORT = 7100, 7000, 7001, 5353


def kind(frame):
    if len(frame) < 14:
        return "other"
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x0800 and len(frame) >= 34 and frame[23] == 17:
        ihl = (frame[14] & 0x0F) * 4
        sport, dport = struct.unpack("!HH", frame[14 + ihl:18 + ihl])
    elif et == 0x86DD and len(frame) >= 58 and frame[20] == 17:
        sport, dport = struct.unpack("!HH", frame[54:58])
    else:
        return "non-udp"
    ports = (sport, dport)
    if MDNS_PORT in ports:
        return "mdns"
    if SRV_PORT in ports:
        return "server"
    if FED_PORT in ports:
        return "fed"
    if P2P_PORT in ports:
        return "p2p-big" if len(frame) >= 200 else "p2p-small"
    return "udp-other"


def initial_dcid(frame):
    """The DCID of a QUIC v1 Initial packet starting the UDP payload of an IPv4 frame, or None."""
    if frame[12:14] != b"\x08\x00":
        return None
    q = 14 + (frame[14] & 0x0F) * 4 + 8
    if len(frame) < q + 6 or frame[q] & 0xF0 != 0xC0 or frame[q + 1:q + 5] != b"\x00\x00\x00\x01":
        return None
    n = frame[q + 5]
    return frame[q + 6:q + 6 + n] if len(frame) >= q + 6 + n else None


def main():
    secs, out = float(sys.argv[1]), sys.argv[2]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tally, peers, dcids = {}, set(), set()
    end = time.time() + secs
    while True:
        left = end - time.time()
        if left <= 0:
            break
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        frame, addr = s.recvfrom(65535)
        if addr[2] != PACKET_OUTGOING or addr[0] == "lo":
            continue
        k = kind(frame)
        b, p = tally.get(k, (0, 0))
        tally[k] = (b + len(frame), p + 1)
        if k.startswith("p2p") and len(frame) >= 34 and frame[12:14] == b"\x08\x00":
            peers.add(socket.inet_ntoa(frame[30:34]))
        if k.startswith("p2p"):
            d = initial_dcid(frame)
            if d is not None:
                dcids.add(d)
    res = {k: {"bytes": b, "packets": p} for k, (b, p) in tally.items()}
    res["p2p-peers"] = {"bytes": 0, "packets": len(peers)}
    res["p2p-handshakes"] = {"bytes": 0, "packets": len(dcids)}
    with open(out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
