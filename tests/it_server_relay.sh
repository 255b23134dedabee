#!/usr/bin/env bash
# it_server_relay.sh: peer_info, hole-punch notices and the DATAGRAM relay of a node.
#
#   - Alice asks for Bob's address (peer_info): online, one address; Bob is sent a
#     PunchNotice with Alice's address.
#   - Alice sends relay datagrams 0x01||Bob||ping-N: Bob receives them as 0x01||Alice||ping-N
#     (the node puts the sender's authenticated key in the header).
#   - With relay_rate_limit=5, a burst of 200 datagrams is cut down by the token bucket
#     and the drops are counted in the metrics.
#   - A datagram for a key that is not connected is dropped.
# Loopback only; mDNS off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
PORT=$(it_port_base 4)
MPORT=$((PORT + 1))
SERVER_PID=
RECV_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $SERVER_PID $RECV_PID
    [ $rc -eq 0 ] || it_dump_logs 20 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$MPORT --relay-rate-limit=5 >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"

ALICE=$("$TC" -i "$TMP/alice.json" id)
BOB=$("$TC" -i "$TMP/bob.json" id)
tc() { timeout 60 "$TC" -S 127.0.0.1:$PORT "$@"; }

tc -i "$TMP/alice.json" peer "$BOB" >"$TMP/peer0.out" || fail "peer_info"
grep -q '^online 0$' "$TMP/peer0.out" || fail "Bob reported online before connecting"

timeout 60 "$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" recv 3 -T 30 >"$TMP/recv.out" 2>"$TMP/recv.err" &
RECV_PID=$!
it_wait_for "$TMP/recv.out" '^ready$' 20 || fail "receiver not ready"

tc -i "$TMP/alice.json" peer "$BOB" >"$TMP/peer1.out" || fail "peer_info"
grep -q '^online 1$' "$TMP/peer1.out" || fail "Bob not reported online"
grep -qE '^address 127\.0\.0\.1:[0-9]+$' "$TMP/peer1.out" || fail "no address for Bob"
it_wait_for "$TMP/recv.out" "^punch $ALICE 127\\.0\\.0\\.1:[0-9]+$" 10 || fail "Bob got no PunchNotice"
echo "ok: peer_info gives Bob's address, Bob is told Alice's (hole punching)"

tc -i "$TMP/alice.json" relay "$BOB" 3 >/dev/null || fail "relay send"
wait "$RECV_PID" || fail "Bob did not receive 3 relayed datagrams"
RECV_PID=
for i in 0 1 2; do
    grep -q "^dgram $ALICE ping-$i$" "$TMP/recv.out" || fail "missing ping-$i from Alice"
done
echo "ok: relay datagrams arrive with the sender's authenticated key"

timeout 60 "$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" recv 1000 -T 3 >"$TMP/recv2.out" 2>"$TMP/recv2.err" &
RECV_PID=$!
it_wait_for "$TMP/recv2.out" '^ready$' 20 || fail "receiver not ready"
tc -i "$TMP/alice.json" relay "$BOB" 200 >/dev/null || fail "relay burst"
rc=0; wait "$RECV_PID" || rc=$?
RECV_PID=
[ $rc -eq 4 ] || fail "receiver ended with $rc"
GOT=$(grep -c '^dgram ' "$TMP/recv2.out" || true)
[ "$GOT" -ge 1 ] && [ "$GOT" -le 20 ] || fail "rate limit 5/s let $GOT of 200 through"
DROPPED=$(curl -sf "http://127.0.0.1:$MPORT/metrics" | awk '$1 == "qpc_errors_total{kind=\"relay_dropped\"}" {print $2}')
[ "${DROPPED:-0}" -ge 150 ] || fail "relay_dropped metric is ${DROPPED:-none}"
echo "ok: rate limit: $GOT of 200 relayed, $DROPPED dropped and counted"

EVE=$("$TC" -i "$TMP/eve.json" id)
sleep 1.2   # a fresh connection has a full bucket anyway; this keeps the figures apart
BEFORE=$(curl -sf "http://127.0.0.1:$MPORT/metrics" | awk '$1 == "qpc_errors_total{kind=\"relay_dropped\"}" {print $2}')
tc -i "$TMP/alice.json" relay "$EVE" 1 >/dev/null || fail "relay to absent key"
AFTER=$(curl -sf "http://127.0.0.1:$MPORT/metrics" | awk '$1 == "qpc_errors_total{kind=\"relay_dropped\"}" {print $2}')
[ "$AFTER" -gt "$BEFORE" ] || fail "datagram to an absent peer not dropped"
echo "ok: datagrams for a key that is not connected are dropped"

kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server did not exit 0"; SERVER_PID=
echo PASS
