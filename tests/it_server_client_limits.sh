#!/usr/bin/env bash
# it_server_client_limits.sh: limits that belong to a client key, not to a connection.
#
#   - one key may hold 16 connections at once; the 17th is closed at once with the
#     reason "too many connections for this key", counted in
#     qpc_connections_refused_total{reason="per_key"} and logged; other keys still get in;
#   - with relay_rate_limit=5, two connections of one key sending 200 relay datagrams
#     each get no more through than one connection would (the bucket is the key's);
#   - the caps are settings: with max_connections_per_client=2 the third connection of a
#     key is refused; with quic_retry_threshold=0 every client first answers a QUIC Retry
#     (qpc_quic_retries_total counts them) and still gets in.
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
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

metric() {   # metric NAME: its value on the node's metrics endpoint (0 when absent)
    curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'
}

HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$MPORT --relay-rate-limit=5 >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"
tc() { timeout 60 "$TC" -S 127.0.0.1:$PORT "$@"; }

# --- connections per key ---------------------------------------------------------------------
tc -i "$TMP/alice.json" hold 16 >"$TMP/hold.out" || fail "hold"
grep -q '^admitted 15$' "$TMP/hold.out" \
    || fail "one key did not get exactly 16 connections (the first + $(cat "$TMP/hold.out"))"
[ "$(grep -c '^refused too many connections for this key$' "$TMP/hold.out")" -eq 1 ] \
    || fail "the 17th connection of one key was not refused with a reason"
[ "$(metric 'qpc_connections_refused_total{reason="per_key"}')" = 1 ] || fail "refusal not counted"
grep -q 'refused: too many connections for this key' "$TMP/server.err" || fail "refusal not logged"
tc -i "$TMP/bob.json" hold 3 >"$TMP/hold2.out" || fail "hold"
grep -q '^admitted 3$' "$TMP/hold2.out" || fail "another key was refused"
echo "ok: a key gets 16 connections, the 17th is refused with a reason, counted and logged"

# --- one relay budget per key ---------------------------------------------------------------
BOB=$("$TC" -i "$TMP/bob.json" id)
timeout 60 "$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" recv 1000 -T 4 >"$TMP/recv.out" 2>"$TMP/recv.err" &
RECV_PID=$!
it_wait_for "$TMP/recv.out" '^ready$' 20 || fail "receiver not ready"
tc -i "$TMP/alice.json" relay "$BOB" 200 >/dev/null &
A1=$!
tc -i "$TMP/alice.json" relay "$BOB" 200 >/dev/null &
A2=$!
wait "$A1" || fail "relay burst 1"
wait "$A2" || fail "relay burst 2"
rc=0; wait "$RECV_PID" || rc=$?
RECV_PID=
[ $rc -eq 4 ] || fail "receiver ended with $rc"
GOT=$(grep -c '^dgram ' "$TMP/recv.out" || true)
# One bucket of 5 (burst 5, 5/s) over the few seconds both bursts take: well under what
# two buckets would let through (each starts full).
[ "$GOT" -ge 1 ] && [ "$GOT" -le 20 ] || fail "two connections of one key relayed $GOT of 400"
echo "ok: two connections of one key share one relay budget ($GOT of 400 relayed)"

kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server did not exit 0"; SERVER_PID=

# --- the caps and address validation as settings ----------------------------------------------
PORT=$((PORT + 2)); MPORT=$((PORT + 1))
HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$MPORT --max-connections-per-client=2 --max-client-connections=3 \
    --quic-retry-threshold=0 >"$TMP/server2.out" 2>"$TMP/server2.err" &
SERVER_PID=$!
it_wait_for "$TMP/server2.out" '^connect: ' 20 || fail "server 2 did not start"
tc -i "$TMP/alice.json" hold 2 >"$TMP/hold3.out" || fail "hold"
grep -q '^admitted 1$' "$TMP/hold3.out" && grep -q '^refused too many connections for this key$' "$TMP/hold3.out" \
    || fail "max_connections_per_client=2 not applied: $(cat "$TMP/hold3.out")"
RETRIES=$(metric 'qpc_quic_retries_total{service="client"}')
[ "$RETRIES" -ge 3 ] || fail "quic_retry_threshold=0: $RETRIES Retry packets for 3 clients"
echo "ok: max_connections_per_client=2 refuses the third; with quic_retry_threshold=0 all 3 connections came through a Retry ($RETRIES sent)"

kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server 2 did not exit 0"; SERVER_PID=
echo PASS
