#!/usr/bin/env bash
# it_server_mdns_netns.sh: the real qpc-server announces itself with mDNS, in network
# namespaces joined by a veth pair (no traffic leaves them).
#
#   1. Node A runs in namespace A. python3-zeroconf (an independent mDNS implementation)
#      in namespace B resolves _quicprochat._udp.local. with TXT ver=1,
#      server=10.202.0.1:<port> and domain=nodeA.mesh.local.
#   2. Node B runs in namespace B with federation on and NO static peers: it learns node A
#      from A's TXT domain=, and an envelope a client of B sends to bob@nodeA.mesh.local
#      is relayed to A over mTLS, where Bob fetches it.
#   3. SIGTERM to A: it exits 0 and B sees the announcement withdrawn.
# Needs root (ip netns), python3-zeroconf and certtool. Env: QPC_BUILD, QPC_SRC.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRC=${QPC_SRC:?set QPC_SRC to the source directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
PY=/usr/bin/python3
NS_A=qpc-srv-a-$$
NS_B=qpc-srv-b-$$
VETH_A=qsA$$
VETH_B=qsB$$
TMP=$(mktemp -d)
A_PID=
B_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $A_PID $B_PID ${ZC_PID:-}
    it_netns_del "$NS_A" "$NS_B"
    [ $rc -eq 0 ] || it_dump_logs 25 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

it_require_netns
$PY -c 'import zeroconf' || fail "python3-zeroconf is not installed for $PY"
it_make_pki "$TMP/pki" || fail "cannot make the test PKI"
P=$TMP/pki

it_veth_pair "$NS_A" "$NS_B" "$VETH_A" "$VETH_B" 10.202.0.1/24 10.202.0.2/24

# --- 1. node A, seen by python3-zeroconf ----------------------------------------------------
ip netns exec "$NS_A" env HOME="$TMP" "$SRV" --data-dir="$TMP/a" --listen=0.0.0.0:7000 \
    --mdns-interfaces="$VETH_A" --federation-enabled --federation-domain=nodeA.mesh.local \
    --federation-listen=0.0.0.0:7001 --federation-cert="$P/node-a.der" \
    --federation-key="$P/node-a.key.der" --federation-ca="$P/ca.der" --metrics-listen= \
    >"$TMP/a.out" 2>"$TMP/a.err" &
A_PID=$!
it_wait_for "$TMP/a.out" '^connect: *qpc --server 10\.202\.0\.1:7000$' 20 || fail "node A did not start"
it_wait_for "$TMP/a.err" 'mdns: established: nodeA\._quicprochat' 30 || fail "node A's announcement not established"
echo "ok: node A runs in $NS_A and announces"

cat >"$TMP/zc_browse.py" <<'PYEOF'
import sys, threading
from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

TYPE = "_quicprochat._udp.local."
done = threading.Event()

def on_change(zeroconf, service_type, name, state_change):
    if state_change is not ServiceStateChange.Added:
        return
    info = zeroconf.get_service_info(service_type, name, timeout=5000)
    if info is None:
        return
    print("name", name)
    print("port", info.port)
    for key, value in info.properties.items():
        print("TXT %s=%s" % (key.decode(), (value or b"").decode()))
    sys.stdout.flush()
    done.set()

zc = Zeroconf()
try:
    ServiceBrowser(zc, TYPE, handlers=[on_change])
    found = done.wait(20)
finally:
    zc.close()
sys.exit(0 if found else 1)
PYEOF
timeout 40 ip netns exec "$NS_B" $PY "$TMP/zc_browse.py" >"$TMP/zeroconf.out" 2>"$TMP/zeroconf.err" \
    || fail "python3-zeroconf did not resolve the service"
for want in '^name nodeA\._quicprochat\._udp\.local\.$' '^port 7000$' '^TXT ver=1$' \
            '^TXT server=10\.202\.0\.1:7000$' '^TXT domain=nodeA\.mesh\.local$'; do
    grep -qE "$want" "$TMP/zeroconf.out" || fail "python3-zeroconf output lacks /$want/"
done
echo "ok: python3-zeroconf in $NS_B found nodeA with ver=1, server=10.202.0.1:7000, domain=nodeA.mesh.local"

# --- 2. node B learns A from mDNS and federates to it ------------------------------------------
ip netns exec "$NS_B" env HOME="$TMP" "$SRV" --data-dir="$TMP/b" --listen=0.0.0.0:7000 \
    --mdns-interfaces="$VETH_B" --federation-enabled --federation-domain=nodeB.mesh.local \
    --federation-listen=0.0.0.0:7001 --federation-cert="$P/node-b.der" \
    --federation-key="$P/node-b.key.der" --federation-ca="$P/ca.der" --metrics-listen= \
    >"$TMP/b.out" 2>"$TMP/b.err" &
B_PID=$!
it_wait_for "$TMP/b.out" '^connect: ' 20 || fail "node B did not start"
it_wait_for "$TMP/b.err" 'learned node nodeA\.mesh\.local at 10\.202\.0\.1:7001' 30 \
    || fail "node B did not learn node A from mDNS"
BOB=$("$TC" -i "$TMP/bob.json" id)
timeout 30 ip netns exec "$NS_B" "$TC" -S 127.0.0.1:7000 -i "$TMP/alice.json" send "$BOB@nodeA.mesh.local" 1 \
    >"$TMP/send.out" || fail "send via node B"
grep -q "summary sent=1 DEFERRED=1$" "$TMP/send.out" || fail "want DEFERRED: $(tail -1 "$TMP/send.out")"
ID=$(awk '/^ok /{print $3}' "$TMP/send.out")
for ((i = 0; i < 20; i++)); do
    timeout 30 ip netns exec "$NS_A" "$TC" -S 127.0.0.1:7000 -i "$TMP/bob.json" fetch >"$TMP/fetch.out" || true
    grep -q "^msg [0-9]* $ID " "$TMP/fetch.out" && break
    sleep 1
done
grep -q "^msg [0-9]* $ID " "$TMP/fetch.out" || fail "Bob did not receive the envelope relayed via mDNS-learned route"
echo "ok: node B learned nodeA.mesh.local from mDNS; a message relayed B -> A reached Bob"

# --- 3. withdrawal ------------------------------------------------------------------------------
kill -TERM "$A_PID"
rc=0; wait "$A_PID" || rc=$?
A_PID=
[ $rc -eq 0 ] || fail "node A exited with $rc after SIGTERM"
grep -q 'announcement withdrawn' "$TMP/a.err" || fail "node A did not withdraw"
it_wait_for "$TMP/b.err" 'node nodeA\.mesh\.local left' 20 || fail "node B did not see the withdrawal"
echo "ok: SIGTERM: node A withdrew its announcement (seen by B) and exited 0"
# --- 4. another node of the same CA announces nodeA's domain ------------------------------------
# Node M (certificate of the same CA, for nodeC.mesh.local) listens where A was, and an
# announcer on that host says domain=nodeA.mesh.local. B learns the address and dials it,
# but M's certificate does not name nodeA.mesh.local: nothing for that domain leaves.
ip netns exec "$NS_A" env HOME="$TMP" "$SRV" --data-dir="$TMP/m" --listen=0.0.0.0:7000 \
    --mdns-enabled=false --federation-enabled --federation-domain=nodeC.mesh.local \
    --federation-listen=0.0.0.0:7001 --federation-cert="$P/node-c.der" \
    --federation-key="$P/node-c.key.der" --federation-ca="$P/ca.der" --metrics-listen= \
    --log-level=debug >"$TMP/m.out" 2>"$TMP/m.err" &
A_PID=$!
it_wait_for "$TMP/m.out" '^connect: ' 20 || fail "node M did not start"
cat >"$TMP/zc_announce.py" <<'PYEOF'
import socket, sys, time
from zeroconf import ServiceInfo, Zeroconf
ip, seconds = sys.argv[1], float(sys.argv[2])
info = ServiceInfo("_quicprochat._udp.local.", "nodeA._quicprochat._udp.local.",
                   addresses=[socket.inet_aton(ip)], port=7000, server="impostor.local.",
                   properties={"ver": "1", "server": ip + ":7000", "domain": "nodeA.mesh.local"})
zc = Zeroconf(interfaces=[ip])
zc.register_service(info)
time.sleep(seconds)
zc.close()
PYEOF
ip netns exec "$NS_A" $PY "$TMP/zc_announce.py" 10.202.0.1 40 >"$TMP/zc_announce.out" 2>&1 &
ZC_PID=$!
it_wait_lines "$TMP/b.err" 'learned node nodeA\.mesh\.local at 10\.202\.0\.1:7001' 2 30 \
    || { kill $ZC_PID; fail "node B did not learn the impostor's announcement"; }
timeout 30 ip netns exec "$NS_B" "$TC" -S 127.0.0.1:7000 -i "$TMP/alice.json" send "$BOB@nodeA.mesh.local" 2 -b 2 \
    >"$TMP/send2.out" || { kill $ZC_PID; fail "send via node B"; }
grep -q "DEFERRED=2" "$TMP/send2.out" || { kill $ZC_PID; fail "B did not take the envelopes"; }
it_wait_for "$TMP/b.err" "node nodeA.mesh.local: .*certificate is not for that domain.*2 envelope.s. stay in the outbox" 30 \
    || { kill $ZC_PID; fail "B did not refuse the node that does not prove nodeA.mesh.local"; }
kill $ZC_PID 2>/dev/null || true; wait $ZC_PID 2>/dev/null || true
grep -q "item(s) from" "$TMP/m.err" && fail "node M received envelopes for nodeA.mesh.local"
echo "ok: a node of the same CA behind an announcement of nodeA.mesh.local gets nothing: $(grep -m1 'certificate is not for that domain' "$TMP/b.err" | sed 's/.*warn //')"
kill -TERM "$A_PID"; wait "$A_PID" || fail "node M did not exit 0"; A_PID=

kill -TERM "$B_PID"; wait "$B_PID" || fail "node B did not exit 0"; B_PID=
echo PASS
