#!/usr/bin/env python3
"""mesh_lab.py: a community mesh of qpc processes and qpc-servers in network namespaces.

Run by tests/it_mesh_lab.sh (10 nodes, CI) and bench/bench_mesh.sh (40 nodes), never
by CTest directly. The one idea: every qpc node is one REPL process in its own
namespace, driven over a pipe, and this script reads every node's stdout in a thread
that stamps each line with the time it came. So the time from the `/mesh send` line
written to one node to the message line printed by another is first-delivery latency
on one clock, and counting a message's tag in each recipient's output says whether it
was shown exactly once.

The mesh is what community networks look like: hosts on routed LANs (routers forward
IP, multicast stops at each one, so mDNS finds only the hosts of one LAN), a few
qpc-servers there with their clients, hosts behind NAT, and beyond the LANs chains and
rings of nodes joined by point-to-point links (a veth pair each: radio links between
rooftops) and unrouted clouds (one bridge, as BATMAN-adv shows itself), reached only
through nodes with two interfaces, which do not forward IP. Churn: some nodes leave
during the traffic and come back.

Namespaces are named PREFIX + role (the caller gives PREFIX with its PID, so runs never
clash); every process started here is ended and every namespace deleted on exit, also
on an exception or SIGTERM. Traffic goes only to namespaces made here.

Prints the figures and, with --check, exits 1 unless every message of an asserted class
was shown exactly once (classes: link, the pair shares an L2 segment; server, both are
clients of one qpc-server; mesh, anything else) and no message anywhere was shown twice.
"""
import argparse
import atexit
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

P2P_PORT = 7100
SRV_PORT = 7000
FED_PORT = 7001
TOPIC = "lab"


# ---- topologies ------------------------------------------------------------------------
# routers: chained in list order. lans: name -> (router, [members]); clouds (unrouted
# bridges): name -> [members]; nats: name -> (lan it sits on, [hosts behind]);
# links: point-to-point pairs; servers: name -> [clients]; churn: nodes that leave.
TOPOLOGIES = {
    "ci": {
        "routers": ["r1"],
        "lans": {"la": ("r1", ["s1", "a1", "a2"]), "lb": ("r1", ["b1", "natb"])},
        "nats": {"natb": ("lb", ["h1"])},
        "clouds": {"cm": ["y3", "m1"]},
        "links": [("a2", "x1"), ("x1", "x2"), ("x2", "y1"), ("y1", "y2"), ("y2", "y3"), ("y3", "x2")],
        "servers": {"s1": ["a1", "a2", "b1", "h1"]},
        "churn": ["y1"],
        "backbone": ["a2", "b1"],
    },
    "full": {
        "routers": ["r1", "r2", "r3"],
        "lans": {
            "la": ("r1", ["s1", "a1", "a2", "a3", "a4"]),
            "lb": ("r1", ["b1", "b2", "b3", "natb"]),
            "lc": ("r2", ["s2", "c1", "c2", "c3", "y1"]),
            "ld": ("r3", ["s3", "d1", "d2", "d3", "natd"]),
        },
        "nats": {"natb": ("lb", ["h1", "h2"]), "natd": ("ld", ["h3"])},
        "clouds": {"cm": ["x5", "m1", "m2", "m3", "m4"]},
        "links": (
            [("a4", "x1"), ("x1", "x2"), ("x2", "x3"), ("x3", "x4"), ("x4", "x5")]          # chain X
            + [("y1", "y2"), ("y2", "y3"), ("y3", "y4"), ("y4", "y5"), ("y5", "y6"), ("y6", "y1")]  # ring Y
            + [("d3", "z1"), ("z1", "z2"), ("z2", "z3"), ("z3", "z4"), ("z4", "y4")]        # chain Z into Y
            + [("b3", "w1"), ("w1", "w2"), ("w2", "w3"), ("w3", "w4"), ("w4", "w5"), ("w5", "m1")]  # chain W to M
            + [("m4", "y3")]
        ),
        "servers": {
            "s1": ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "h1", "h2"],
            "s2": ["c1", "c2", "c3", "y1"],
            "s3": ["d1", "d2", "d3", "h3"],
        },
        "churn": ["x3", "y2", "m2", "c1", "h1", "w3"],
        # --static-peers: these know each other's address (peers = [...] in qpc.toml),
        # as a mesh's admins would write down the nodes at the heads of their chains
        "backbone": ["a4", "b3", "y1", "d3"],
    },
    # bench_broadcast_mesh.sh: six nodes, a ring with one chord, no server: n1 publishes,
    # n2..n6 are one or two links away.
    "bcast6": {
        "routers": [], "lans": {}, "nats": {}, "clouds": {}, "servers": {}, "churn": [],
        "links": [("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5"), ("n5", "n6"), ("n6", "n1"), ("n1", "n4")],
    },
}


def log(msg):
    print(msg, flush=True)


class Lab:
    def __init__(self, args):
        self.a = args
        self.topo = TOPOLOGIES[args.topology]
        self.prefix = args.prefix
        self.namespaces = []
        self.procs = {}          # node -> Popen (current incarnation)
        self.lines = {}          # node -> [(t, line)] over every incarnation
        self.readers = []
        self.keys = {}
        self.up = {}             # node -> bool
        self.servers = dict(self.topo["servers"])
        self.server_of = {c: s for s, cs in self.servers.items() for c in cs}
        self.addr = {}           # node -> first IPv4 address (servers: where they listen)
        self.segments = []       # sets of nodes sharing one L2 segment
        self.ifcount = {}
        self.nodes = self._nodes()
        self.qpc = sorted(n for n in self.nodes if n not in self.servers)
        self.lock = threading.Lock()
        self.cleaned = False

    def _nodes(self):
        t = self.topo
        found = set()
        for _, members in t["lans"].values():
            found.update(members)
        for m in t["clouds"].values():
            found.update(m)
        for _, hosts in t["nats"].values():
            found.update(hosts)
        for x, y in t["links"]:
            found.update((x, y))
        return found - set(t["nats"])

    # ---- namespaces --------------------------------------------------------------------
    def ns(self, role):
        return self.prefix + role

    def run(self, *cmd, check=True):
        r = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
        return r.stdout

    def nsx(self, role, *cmd, check=True):
        return self.run("ip", "netns", "exec", self.ns(role), *cmd, check=check)

    def add_ns(self, role):
        self.namespaces.append(role)   # before it exists: cleanup deletes it even if this fails
        self.run("ip", "netns", "add", self.ns(role))
        self.run("ip", "-n", self.ns(role), "link", "set", "lo", "up")
        self.nsx(role, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")

    def next_if(self, node):
        i = self.ifcount.get(node, 0)
        self.ifcount[node] = i + 1
        return "eth%d" % i

    def plug(self, node, brns, br, cidr, gw=None):
        """node's next interface on bridge br in namespace brns, address cidr."""
        ifn = self.next_if(node)
        self.nports = getattr(self, "nports", 0) + 1
        port = "port%d" % self.nports
        self.run("ip", "link", "add", port, "netns", self.ns(brns), "type", "veth",
                 "peer", "name", ifn, "netns", self.ns(node))
        self.run("ip", "-n", self.ns(brns), "link", "set", port, "master", br, "up")
        self.run("ip", "-n", self.ns(node), "addr", "add", cidr, "dev", ifn)
        self.run("ip", "-n", self.ns(node), "link", "set", ifn, "multicast", "on", "up")
        if gw:
            self.run("ip", "-n", self.ns(node), "route", "add", "default", "via", gw)
        self.addr.setdefault(node, cidr.split("/")[0])

    def bridge(self, role, br, cidr=None):
        self.run("ip", "-n", self.ns(role), "link", "add", br, "type", "bridge")
        if cidr:
            self.run("ip", "-n", self.ns(role), "addr", "add", cidr, "dev", br)
        self.run("ip", "-n", self.ns(role), "link", "set", br, "up")

    def build(self):
        t = self.topo
        for n in sorted(self.nodes) + list(t["nats"]):
            self.add_ns(n)
        routers = t["routers"]
        for i, r in enumerate(routers):
            self.add_ns(r)
            self.nsx(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i in range(len(routers) - 1):     # the backbone: a chain of routers
            a, b = routers[i], routers[i + 1]
            self.run("ip", "link", "add", "up%d" % i, "netns", self.ns(a), "type", "veth",
                     "peer", "name", "dn%d" % i, "netns", self.ns(b))
            self.run("ip", "-n", self.ns(a), "addr", "add", "10.254.%d.1/24" % i, "dev", "up%d" % i)
            self.run("ip", "-n", self.ns(b), "addr", "add", "10.254.%d.2/24" % i, "dev", "dn%d" % i)
            self.run("ip", "-n", self.ns(a), "link", "set", "up%d" % i, "up")
            self.run("ip", "-n", self.ns(b), "link", "set", "dn%d" % i, "up")
        for k, (lan, (r, members)) in enumerate(sorted(t["lans"].items())):
            net = "10.20.%d" % (k + 1)
            self.bridge(r, "br" + lan, net + ".1/24")
            for j, m in enumerate(members):
                self.plug(m, r, "br" + lan, "%s.%d/24" % (net, 10 + j), gw=None if self.ifcount.get(m) else net + ".1")
            self.segments.append(set(m for m in members if m not in t["nats"]))
            ri = routers.index(r)
            for oj, other in enumerate(routers):     # the other routers reach this LAN along the chain
                if oj == ri:
                    continue
                via = "10.254.%d.1" % (oj - 1) if ri < oj else "10.254.%d.2" % oj
                self.run("ip", "-n", self.ns(other), "route", "add", net + ".0/24", "via", via)
        for k, (nat, (lan, hosts)) in enumerate(sorted(t["nats"].items())):
            net = "10.50.%d" % (k + 1)
            self.bridge(nat, "br0", net + ".1/24")
            for j, h in enumerate(hosts):
                self.plug(h, nat, "br0", "%s.%d/24" % (net, 2 + j), gw=net + ".1")
            self.segments.append(set(hosts))
            self.home_nat(nat)
        for k, (cloud, members) in enumerate(sorted(t["clouds"].items())):
            self.add_ns(cloud)
            self.bridge(cloud, "br0")
            for j, m in enumerate(members):
                self.plug(m, cloud, "br0", "10.30.%d.%d/24" % (k + 1, 2 + j))
            self.segments.append(set(members))
        for k, (x, y) in enumerate(t["links"]):
            ix, iy = self.next_if(x), self.next_if(y)
            self.run("ip", "link", "add", ix, "netns", self.ns(x), "type", "veth", "peer", "name", iy, "netns", self.ns(y))
            for n, i, h in ((x, ix, 1), (y, iy, 2)):
                self.run("ip", "-n", self.ns(n), "addr", "add", "172.16.%d.%d/24" % (k, h), "dev", i)
                self.run("ip", "-n", self.ns(n), "link", "set", i, "multicast", "on", "up")
                self.addr.setdefault(n, "172.16.%d.%d" % (k, h))
            self.segments.append({x, y})

    def home_nat(self, nat):
        """The home router of tests/lib/lab.sh: MASQUERADE, nothing in but replies."""
        x = lambda *c: self.nsx(nat, *c)
        # its wan is the interface plug() made on the LAN outside (eth0), the LAN is br0
        x("sysctl", "-qw", "net.ipv4.ip_forward=1")
        x("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE")
        x("iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
        x("iptables", "-A", "INPUT", "-i", "br0", "-j", "ACCEPT")
        x("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
        x("iptables", "-P", "INPUT", "DROP")
        x("iptables", "-A", "FORWARD", "-i", "br0", "-o", "br0", "-j", "ACCEPT")
        x("iptables", "-A", "FORWARD", "-i", "br0", "-o", "eth0", "-j", "ACCEPT")
        x("iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
        x("iptables", "-P", "FORWARD", "DROP")

    # ---- processes ---------------------------------------------------------------------
    def env(self):
        e = dict(os.environ)
        e["HOME"] = self.a.dir
        return e

    def start_servers(self):
        t = self.topo
        names = sorted(self.servers)
        fkeys = {}
        for s in names:
            fkeys[s] = self.run(self.a.server_build + "/qpc-server", "--data-dir=" + self.dir(s),
                                "--print-federation-key").strip()
        for i, s in enumerate(names):     # federated in a line, in name order
            peers = []
            for j in (i - 1, i + 1):
                if 0 <= j < len(names):
                    o = names[j]
                    peers.append("%s.lab=%s:%d %s" % (o, self.addr[o], FED_PORT, fkeys[o]))
            cmd = [self.a.server_build + "/qpc-server", "--data-dir=" + self.dir(s),
                   "--listen=%s:%d" % (self.addr[s], SRV_PORT), "--mdns-enabled=false",
                   "--metrics-listen=", "--federation-domain=%s.lab" % s, "--federation-enabled",
                   "--federation-listen=%s:%d" % (self.addr[s], FED_PORT),
                   "--federation-peers=" + ",".join(peers), "--log-level=warn"]
            self.spawn(s, cmd, stdin=False)
        for s in names:
            if not self.wait_line(s, "connect: ", 20):
                raise RuntimeError("server %s did not start" % s)

    def dir(self, n):
        return os.path.join(self.a.dir, n)

    def spawn(self, n, cmd, stdin=True):
        err = open(os.path.join(self.a.dir, n + ".err"), "a")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(n)] + cmd, env=self.env(),
                             stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        err.close()
        self.procs[n] = p
        self.lines.setdefault(n, [])
        th = threading.Thread(target=self.reader, args=(n, p), daemon=True)
        th.start()
        self.readers.append(th)
        return p

    def reader(self, n, p):
        out = open(os.path.join(self.a.dir, n + ".out"), "a")
        for line in p.stdout:
            now = time.time()
            with self.lock:
                self.lines[n].append((now, line.rstrip("\n")))
            out.write("%.3f %s" % (now, line))
            out.flush()
        out.close()

    def wait_line(self, n, text, secs, start=0):
        end = time.time() + secs
        while time.time() < end:
            with self.lock:
                if any(text in l for _, l in self.lines.get(n, [])[start:]):
                    return True
            time.sleep(0.1)
        return False

    def qpc_of(self, n):
        """The qpc binary node n runs: --old-build's for the --old-nodes, else --build's."""
        return (self.a.old_build if n in self.a.old_nodes else self.a.build) + "/qpc"

    def start_node(self, n):
        cmd = [self.qpc_of(n), "--data-dir", self.dir(n), "--listen", "0.0.0.0:%d" % P2P_PORT,
               "--log-level", "info"]
        bb = self.topo.get("backbone", [])
        if self.a.static_peers and n in bb:
            cmd += ["--peers", ",".join("%s:%d" % (self.addr[o], P2P_PORT) for o in bb if o != n)]
        s = self.server_of.get(n)
        if s:
            cmd += ["--server", "%s:%d" % (self.addr[s], SRV_PORT)]
        cmd.append("repl")
        mark = len(self.lines.get(n, []))
        self.spawn(n, cmd)
        self.up[n] = True
        self.cmd(n, "/mesh subscribe " + TOPIC)
        return mark

    def stop_node(self, n):
        p = self.procs[n]
        self.up[n] = False
        try:
            p.stdin.write("/quit\n")
            p.stdin.flush()
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def cmd(self, n, line):
        p = self.procs[n]
        t = time.time()
        p.stdin.write(line + "\n")
        p.stdin.flush()
        return t

    def cleanup(self):
        if self.cleaned:
            return
        self.cleaned = True
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for role in self.namespaces:
            subprocess.run(["ip", "netns", "del", self.ns(role)], stderr=subprocess.DEVNULL)

    # ---- figures -----------------------------------------------------------------------
    def tx_bytes(self, n):
        """Bytes n's namespace sent on all its interfaces but lo (IP and mDNS alike)."""
        out = self.run("ip", "-n", self.ns(n), "-j", "-s", "link", "show", check=False)
        try:
            return sum(i["stats64"]["tx"]["bytes"] for i in json.loads(out) if i["ifname"] != "lo")
        except (ValueError, KeyError):
            return 0

    def rss_kib(self, n):
        p = self.procs.get(n)
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for l in f:
                    if l.startswith("VmRSS:"):
                        return int(l.split()[1])
        except (OSError, AttributeError):
            pass
        return None

    def pair_class(self, x, y):
        if any(x in s and y in s for s in self.segments):
            return "link"
        if self.server_of.get(x) and self.server_of.get(x) == self.server_of.get(y):
            return "server"
        return "mesh"


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def announce_counters(lab):
    """{node: {counter: value}} from `/mesh announces` of every running qpc that has it."""
    marks = {}
    for n in lab.qpc:
        if lab.up.get(n):
            with lab.lock:
                marks[n] = len(lab.lines.get(n, []))
            lab.cmd(n, "/mesh announces")
    got, end = {}, time.time() + 5
    while time.time() < end and len(got) < len(marks):
        time.sleep(0.1)
        with lab.lock:
            for n, m in marks.items():
                for _, l in lab.lines.get(n, [])[m:]:
                    if "announces: made" in l:
                        w = l[l.index("announces: made"):].replace(",", " ").replace("(", " ").replace(")", " ").split()
                        nums = [int(x) for x in w if x.isdigit()]
                        keys = ["made", "triggered", "link_frames", "link_bytes", "server_frames", "server_bytes",
                                "passed_on", "links_up", "replayed", "received", "refused", "over_rate", "spared",
                                "sr_sent", "sr_received", "sr_answered", "sr_forwarded", "sr_bumped", "sr_dropped",
                                "copies", "copies_passed"]
                        got[n] = dict(zip(keys, nums))
    return got


def idle_rates(lab, seconds, label="start"):
    """Sleeps about seconds; returns (the seconds it took, {node: bytes/s it sent}).
    With MESH_LAB_CAPTURE=1 it also counts what each namespace sends by kind
    (idle_capture.py) and prints the breakdown, written to capture-LABEL.json."""
    caps = {}
    if os.environ.get("MESH_LAB_CAPTURE") == "1":
        tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "idle_capture.py")
        for n in lab.nodes:
            caps[n] = (os.path.join(lab.a.dir, "cap-%s-%s.json" % (label, n)),)
            caps[n] += (subprocess.Popen(["ip", "netns", "exec", lab.ns(n), "python3", tool,
                                          str(seconds), caps[n][0]]),)
        time.sleep(0.5)   # the sockets are open before the window starts
        ann0 = announce_counters(lab)
    tx0 = {n: lab.tx_bytes(n) for n in lab.nodes}
    t0 = time.time()
    time.sleep(seconds)
    took = time.time() - t0
    tx1 = {n: lab.tx_bytes(n) for n in lab.nodes}
    if caps:
        ann1 = announce_counters(lab)
        diff = {n: {k: ann1[n][k] - ann0[n].get(k, 0) for k in ann1[n]} for n in ann1 if n in ann0}
        if diff:
            tot = {k: sum(d[k] for d in diff.values()) for k in next(iter(diff.values()))}
            log("idle %s announces (sum over %d qpc, per second): " % (label, len(diff)) +
                ", ".join("%s %.2f" % (k, v / seconds) for k, v in tot.items()) +
                "; mean frame %.0f B" % (tot["link_bytes"] / max(1, tot["link_frames"])))
            with open(os.path.join(lab.a.dir, "announces-%s.json" % label), "w") as f:
                json.dump(diff, f, indent=1)
        got, total = {}, {}
        for n, (path, p) in caps.items():
            p.wait()
            try:
                with open(path) as f:
                    got[n] = json.load(f)
            except (OSError, ValueError):
                continue
            for k, v in got[n].items():
                t = total.setdefault(k, [0, 0])
                t[0] += v["bytes"]
                t[1] += v["packets"]
        with open(os.path.join(lab.a.dir, "capture-%s.json" % label), "w") as f:
            json.dump(got, f, indent=1)
        qn = [n for n in lab.qpc if n in got]
        for k, (b, pk) in sorted(total.items(), key=lambda kv: -kv[1][0]):
            qb = sum(got[n].get(k, {}).get("bytes", 0) for n in qn)
            log("idle %s by kind: %-9s %7.0f B/s all nodes (%5.1f pkt/s), qpc mean %5.0f B/s"
                % (label, k, b / seconds, pk / seconds, qb / seconds / max(1, len(qn))))
    return took, {n: (tx1[n] - tx0[n]) / took for n in lab.nodes}


def burst(lab, a):
    """--burst N --runs R: n1 types N broadcasts at once, R times; each run's rate is N
    over the time from the first line written to the last copy shown at the last
    subscriber. Prints every run and the median."""
    src = "n1"
    subs = [n for n in lab.qpc if n != src]
    rates = []
    dups = 0
    for r in range(a.runs):
        marks = {n: len(lab.lines[n]) for n in subs}
        t = time.time()
        lab.procs[src].stdin.write("".join("/mesh broadcast %s q%d.%d\n" % (TOPIC, r, i) for i in range(a.burst)))
        lab.procs[src].stdin.flush()
        want = {"q%d.%d" % (r, i) for i in range(a.burst)}
        end = time.time() + a.drain
        last, got = {}, {}
        while time.time() < end:
            with lab.lock:
                for n in subs:
                    ls = lab.lines[n]
                    for tl, l in ls[marks[n]:]:
                        w = l.split()
                        if len(w) >= 4 and w[1] == "[#%s]" % TOPIC and w[3] in want:
                            if w[3] in got.setdefault(n, set()):
                                dups += 1
                            got[n].add(w[3])
                            last[n] = tl
                    marks[n] = len(ls)
            if all(len(got.get(n, ())) == a.burst for n in subs):
                break
            time.sleep(0.2)
        time.sleep(0.5 if a.burst_check else 0)   # a copy shown twice would come right behind
        with lab.lock:
            for n in subs:
                for tl, l in lab.lines[n][marks[n]:]:
                    w = l.split()
                    if len(w) >= 4 and w[1] == "[#%s]" % TOPIC and w[3] in got.get(n, ()):
                        dups += 1
        shown = sum(len(got.get(n, ())) for n in subs)
        span = max(last.values()) - t if last else float("nan")
        rate = a.burst / span if shown == a.burst * len(subs) else float("nan")
        log("run %d: %d broadcasts, shown %d / %d at %d subscribers, last at %.2f s: %.0f msgs/s end to end"
            % (r + 1, a.burst, shown, a.burst * len(subs), len(subs), span, rate))
        if rate == rate:
            rates.append(rate)
        time.sleep(2)
    log("broadcast through %d qpc processes: median %.0f msgs/s over %d complete runs of %d, shown twice: %d"
        % (len(lab.qpc), statistics.median(rates) if rates else float("nan"), len(rates), a.runs, dups))
    ok = len(rates) == a.runs and dups == 0
    if a.burst_check:
        ok = burst_batches_used(lab, src, subs) and ok
    return 0 if ok else 1


def burst_batches_used(lab, src, subs):
    """--burst-check: every node's /mesh store says how its burst went: the source signed
    batches, and every subscriber checked broadcasts by hash (it verified batches). The
    --old-nodes know no batches: they only had to show each broadcast once (checked by
    the caller)."""
    new = [n for n in lab.qpc if n not in lab.a.old_nodes]
    subs = [n for n in subs if n in new]
    marks = {n: len(lab.lines[n]) for n in lab.qpc}
    for n in new:
        lab.procs[n].stdin.write("/mesh store\n")
        lab.procs[n].stdin.flush()
    said, end = {}, time.time() + 10
    while time.time() < end and len(said) < len(new):
        with lab.lock:
            for n in new:
                for _, l in lab.lines[n][marks[n]:]:
                    m = re.search(r"broadcast batches: (\d+) signed, (\d+) taken from links, (\d+) refused; "
                                  r"(\d+) broadcasts checked by hash", l)
                    if m:
                        said[n] = [int(x) for x in m.groups()]
        time.sleep(0.2)
    ok = len(said) == len(new) and said[src][0] > 0 and all(said[n][1] > 0 and said[n][3] > 0 for n in subs)
    ok = ok and all(said[n][2] == 0 for n in new)
    for n in lab.qpc:
        log("%s: batches signed, taken, refused; broadcasts checked by hash: %s"
            % (n, "(older qpc)" if n not in new else said.get(n, "no answer")))
    if not ok:
        log("FAIL: the burst did not go out in batches that every subscriber verified")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--server-build", help="where qpc-server is, if not in --build (two branches measured together)")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--topology", choices=sorted(TOPOLOGIES), default="ci")
    ap.add_argument("--settle", type=float, default=15)
    ap.add_argument("--idle", type=float, default=20, help="seconds of idle traffic measured")
    ap.add_argument("--messages", type=int, default=30)
    ap.add_argument("--broadcasts", type=int, default=3)
    ap.add_argument("--rate", type=float, default=2.0, help="direct messages per second")
    ap.add_argument("--down", type=float, default=15, help="seconds a churned node stays away")
    ap.add_argument("--drain", type=float, default=60)
    ap.add_argument("--idle-end", type=float, default=15, help="seconds of idle traffic measured at the end")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--static-peers", action="store_true", help="the topology's backbone nodes get peers = [...]")
    ap.add_argument("--burst", type=int, default=0, help="broadcast throughput instead (bcast6)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--old-build", help="an older qpc build, run by the --old-nodes (a mixed mesh)")
    ap.add_argument("--old-nodes", default="", help="comma-separated nodes that run --old-build's qpc")
    ap.add_argument("--burst-check", action="store_true",
                    help="--burst: also require batches signed at n1 and verified at every subscriber")
    ap.add_argument("--check", default="", help="classes that must be delivered exactly once "
                    "(link, server, mesh, each also +churn; broadcast)")
    a = ap.parse_args()
    a.server_build = a.server_build or a.build
    a.old_nodes = set(x for x in a.old_nodes.split(",") if x) if a.old_build else set()
    seed = a.seed if a.seed is not None else int(time.time())
    rnd = random.Random(seed)
    lab = Lab(a)
    atexit.register(lab.cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    t0 = time.time()
    lab.build()
    for n in sorted(lab.nodes):
        lab.keys[n] = lab.run(lab.qpc_of(n), "--data-dir", lab.dir(n), "identity").strip() \
            if n not in lab.servers else None
    lab.start_servers()
    for n in lab.qpc:
        lab.start_node(n)
    for n in lab.qpc:
        if not lab.wait_line(n, "listening on", 20):
            raise RuntimeError("%s did not start" % n)
    log("mesh_lab: %s, %d qpc + %d qpc-server, %d namespaces, static peers %s, seed %d, built in %.1f s, %d cores, load %s"
        % (a.topology, len(lab.qpc), len(lab.servers), len(lab.namespaces),
           ",".join(lab.topo.get("backbone", [])) if a.static_peers else "none", seed, time.time() - t0,
           os.cpu_count(), open("/proc/loadavg").read().split()[0]))
    time.sleep(a.settle)
    if a.burst:
        return burst(lab, a)

    # idle: what the mesh costs with nothing to say
    idle_s, ctl = idle_rates(lab, a.idle)

    # traffic with churn
    sent = []         # (tag, src, dst, t, class)
    bsent = []        # (tag, src, t, [expected recipients])
    churn = list(lab.topo["churn"])
    nmsg = a.messages
    step = 1.0 / a.rate
    bcast_at = set(rnd.sample(range(nmsg), min(a.broadcasts, nmsg)))
    churn_at = {int(nmsg * (i + 1) / (len(churn) + 2)): c for i, c in enumerate(churn)}
    back = []         # (time, node)
    windows = {}      # churned node -> [left, back]
    dst_up = {}       # tag -> was the recipient running when it was sent
    for i in range(nmsg):
        now = time.time()
        for tb, c in list(back):
            if now >= tb:
                lab.start_node(c)
                windows[c][1] = time.time()
                back.remove((tb, c))
                log("churn: %s back" % c)
        if i in churn_at:
            c = churn_at[i]
            lab.stop_node(c)
            windows[c] = [time.time(), None]
            back.append((time.time() + a.down, c))
            log("churn: %s left" % c)
        ups = [n for n in lab.qpc if lab.up[n]]
        src = rnd.choice(ups)
        dst = rnd.choice([n for n in lab.qpc if n != src])
        tag = "m%04d" % i
        t = lab.cmd(src, "/mesh send %s %s %s>%s" % (lab.keys[dst], tag, src, dst))
        sent.append((tag, src, dst, t, lab.pair_class(src, dst)))
        dst_up[tag] = lab.up[dst]
        if i in bcast_at:
            src = rnd.choice(ups)
            tag = "b%04d" % i
            t = lab.cmd(src, "/mesh broadcast %s %s from %s" % (TOPIC, tag, src))
            bsent.append((tag, src, t, [n for n in lab.qpc if n != src]))
        time.sleep(max(0, step - (time.time() - now)))
    while back:
        tb, c = back.pop(0)
        time.sleep(max(0, tb - time.time()))
        lab.start_node(c)
        windows[c][1] = time.time()
        log("churn: %s back" % c)

    # A message sent while a node was away, or in the CALM_S after it came back, is of
    # class "X+churn": routes are changing then, which is where losses would show.
    CALM_S = 10
    sent = [(tag, src, dst, t, cls + ("+churn" if any(l - 1 <= t <= b + CALM_S for l, b in windows.values()) else ""))
            for tag, src, dst, t, cls in sent]

    def tally():
        first, count, hops = {}, {}, {}
        with lab.lock:
            for n, ls in lab.lines.items():
                for t, l in ls:
                    # "[HH:MM] <who> mNNNN src>dst (path, N hops)" or "[HH:MM] [#lab] <who> bNNNN from src"
                    parts = l.split()
                    if len(parts) < 4 or not l.startswith("["):
                        continue
                    w = parts[3] if parts[1].startswith("[#") else parts[2]
                    if not (w[:1] in "mb" and w[1:].isdigit() and len(w) == 5):
                        continue
                    k = (w, n)
                    count[k] = count.get(k, 0) + 1
                    first.setdefault(k, t)
                    if w[0] == "m" and "hop" in l:
                        try:
                            inner = l[l.rindex("(") + 1:]
                            hops[k] = (inner.split(",")[0], int(inner.split(",")[1].split()[0]))
                        except (ValueError, IndexError):
                            pass
        return first, count, hops

    end = time.time() + a.drain
    while time.time() < end:
        first, count, hops = tally()
        if all((tag, dst) in first for tag, _, dst, _, _ in sent) and \
           all((tag, r) in first for tag, _, _, rs in bsent for r in rs):
            break
        time.sleep(1)
    time.sleep(2)     # late copies would show up now
    first, count, hops = tally()
    # the same idle figure once more at the end: routes known, churn over
    end_s, ctl_end = idle_rates(lab, a.idle_end, "end")
    first, count, hops = tally()
    rss = {n: lab.rss_kib(n) for n in lab.nodes}
    with open(os.path.join(a.dir, "sent.json"), "w") as f:     # for a post-mortem (MESH_LAB_KEEP)
        json.dump({"keys": lab.keys, "direct": [
            {"tag": tag, "from": src, "to": dst, "t": t, "class": cls, "shown": count.get((tag, dst), 0)}
            for tag, src, dst, t, cls in sent], "broadcast": [
            {"tag": tag, "from": src, "t": t, "missing": [r for r in rs if (tag, r) not in first]}
            for tag, src, t, rs in bsent]}, f, indent=1)
    receipts = 0
    with lab.lock:
        for n, ls in lab.lines.items():
            receipts += sum(1 for _, l in ls if l.startswith("delivered "))

    # ---- report ----------------------------------------------------------------------
    by_class = {}
    lat, lat_up, lat_hops, dups, paths = [], [], {}, 0, {}
    for tag, src, dst, t, cls in sent:
        c = by_class.setdefault(cls, [0, 0, 0])
        c[0] += 1
        k = (tag, dst)
        if k in first:
            c[1] += 1
            d = (first[k] - t) * 1000
            lat.append(d)
            if dst_up[tag]:
                lat_up.append(d)
            p, h = hops.get(k, ("?", 0))
            if dst_up[tag]:
                lat_hops.setdefault(h, []).append(d)
            paths[p] = paths.get(p, 0) + 1
        if count.get(k, 0) > 1:
            c[2] += 1
            dups += 1
    # copies shown anywhere else (a message shown to a node that is not its recipient)
    stray = sum(v for (w, n), v in count.items() if w[0] == "m" and
                not any(tag == w and dst == n for tag, _, dst, _, _ in sent))
    blat, bexp, bgot, bdup = [], 0, 0, 0
    for tag, src, t, rs in bsent:
        for r in rs:
            bexp += 1
            if (tag, r) in first:
                bgot += 1
                blat.append((first[(tag, r)] - t) * 1000)
            if count.get((tag, r), 0) > 1:
                bdup += 1
    delivered = sum(c[1] for c in by_class.values())
    log("direct: delivered %d / %d sent, shown twice or more: %d, shown to a non-recipient: %d, receipts seen by senders: %d"
        % (delivered, len(sent), dups, stray, receipts))
    for cls in sorted(by_class):
        c = by_class[cls]
        log("  class %-12s delivered %3d / %3d, duplicates %d" % (cls, c[1], c[0], c[2]))
    log("  paths of first copies: %s" % ", ".join("%s %d" % kv for kv in sorted(paths.items())))
    log("  first-delivery latency ms: p50 %.1f p99 %.1f max %.1f (n=%d)"
        % (pct(lat, .5), pct(lat, .99), max(lat) if lat else float("nan"), len(lat)))
    log("  first-delivery latency ms, recipient running when sent: p50 %.1f p99 %.1f (n=%d)"
        % (pct(lat_up, .5), pct(lat_up, .99), len(lat_up)))
    for h in sorted(lat_hops):
        v = lat_hops[h]
        log("    %d hop%s: p50 %.1f p99 %.1f (n=%d)" % (h, "" if h == 1 else "s", pct(v, .5), pct(v, .99), len(v)))
    log("broadcast: %d sent, shown %d / %d expected, duplicates %d, first-sight latency ms p50 %.1f p99 %.1f"
        % (len(bsent), bgot, bexp, bdup, pct(blat, .5), pct(blat, .99)))
    cq = [ctl[n] for n in lab.qpc]
    cs = [ctl[n] for n in lab.servers]
    log("control traffic (idle %.0f s, bytes sent on all interfaces): qpc per node mean %.0f B/s = %.0f B/min, "
        "max %.0f B/s (%s); qpc-server mean %.0f B/s"
        % (idle_s, statistics.mean(cq), 60 * statistics.mean(cq), max(cq), max(lab.qpc, key=lambda n: ctl[n]),
           statistics.mean(cs) if cs else 0))
    ce = [ctl_end[n] for n in lab.qpc]
    log("control traffic at the end (idle %.0f s): qpc per node mean %.0f B/s = %.0f B/min, max %.0f B/s (%s); "
        "qpc-server mean %.0f B/s"
        % (end_s, statistics.mean(ce), 60 * statistics.mean(ce), max(ce), max(lab.qpc, key=lambda n: ctl_end[n]),
           statistics.mean([ctl_end[n] for n in lab.servers]) if lab.servers else 0))
    rq = [rss[n] for n in lab.qpc if rss[n]]
    rs_ = [rss[n] for n in lab.servers if rss[n]]
    log("RSS KiB: qpc median %d max %d (%s); qpc-server median %d max %d"
        % (statistics.median(rq), max(rq), max((n for n in lab.qpc if rss[n]), key=lambda n: rss[n]),
           statistics.median(rs_) if rs_ else 0, max(rs_) if rs_ else 0))
    far = [d for h, v in lat_hops.items() if h >= 5 for d in v]
    log("goals (issue 11): all delivered exactly once: %s (%d / %d, %d duplicates); "
        "first delivery across 5+ hops under 50 ms: %s (p50 %.1f ms, n=%d); control under 1 KB/s per node: %s (max %.0f B/s)"
        % ("holds" if delivered == len(sent) and not dups and not stray else "fails", delivered, len(sent), dups + stray,
           "holds" if far and pct(far, .5) < 50 else ("fails" if far else "not measured"), pct(far, .5), len(far),
           "holds" if max(cq + ce) < 1024 else "fails", max(cq + ce)))
    missing = [(tag, src, dst, cls) for tag, src, dst, _, cls in sent if (tag, dst) not in first]
    for m in missing[:20]:
        log("  not delivered: %s %s -> %s (%s)" % m)
    bmiss = [(tag, r) for tag, _, _, rs in bsent for r in rs if (tag, r) not in first]
    for m in bmiss[:10]:
        log("  broadcast not shown: %s at %s" % m)
    log("mesh_lab: total %.0f s" % (time.time() - t0))

    rc = 0
    if a.check:
        want = set(a.check.split(","))
        if dups or bdup or stray:
            log("FAIL: messages shown more than once (direct %d, broadcast %d, stray %d)" % (dups, bdup, stray))
            rc = 1
        for cls in want:
            c = by_class.get(cls, [0, 0, 0])
            if c[1] != c[0]:
                log("FAIL: class %s: %d of %d delivered" % (cls, c[1], c[0]))
                rc = 1
        if "broadcast" in want and bgot != bexp:
            log("FAIL: broadcasts shown %d of %d" % (bgot, bexp))
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
