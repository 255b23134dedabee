#!/usr/bin/env bash
# it_server_request_limits.sh: what one request of a client may ask of the node.
#
#   - a batch above REQUEST_BATCH_MAX items and an ack above REQUEST_ACK_SEQS_MAX seqs
#     are refused with TOO_LARGE and a detail naming the count and the cap, before any
#     item is looked at (nothing is stored); a batch at the cap is served;
#   - a client that sends frames the node cannot decode gets an error answer for the
#     first 10 and is then closed ("too many malformed requests"); the log gets one
#     line per kind of refusal per 10 s however many clients send garbage, and a good
#     client is served throughout.
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

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $SERVER_PID
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

metric() {   # metric NAME: its value on the node's metrics endpoint (0 when absent)
    curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'
}

HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$MPORT >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"
tc() { timeout 60 "$TC" -S 127.0.0.1:$PORT "$@"; }
BOB=$("$TC" -i "$TMP/bob.json" id)

# --- caps on the repeated fields of one request -------------------------------------------
rc=0
tc -i "$TMP/alice.json" send "$BOB" 1001 -b 1001 >"$TMP/batch.out" 2>"$TMP/batch.err" || rc=$?
grep -q "^error TOO_LARGE batch of 1001 items is above this node's limit of 1000 per request$" \
    "$TMP/batch.out" || fail "a batch of 1001 items was not refused with its count and the cap"
grep -q '^ok ' "$TMP/batch.out" && fail "items of a refused batch were answered one by one"
[ "$(metric qpc_queued_messages)" = 0 ] || fail "items of the refused batch were stored"
tc -i "$TMP/alice.json" send "$BOB" 1000 -b 1000 >"$TMP/batch2.out" || fail "a batch of 1000"
grep -q '^summary sent=1000 OK=1000$' "$TMP/batch2.out" || fail "a batch at the cap was not served"
echo "ok: a batch above 1000 items is refused (TOO_LARGE, count and cap); 1000 are served"

tc -i "$TMP/bob.json" ack $(seq 1 10001) >"$TMP/ack.out" 2>&1 || true
grep -q "^error TOO_LARGE ack of 10001 seqs is above this node's limit of 10000 per request$" \
    "$TMP/ack.out" || fail "an ack of 10001 seqs was not refused"
[ "$(metric qpc_queued_messages)" = 1000 ] || fail "the refused ack deleted something"
tc -i "$TMP/bob.json" ack $(seq 1 10000) >"$TMP/ack2.out" || fail "an ack of 10000 seqs"
grep -q '^deleted 1000$' "$TMP/ack2.out" || fail "an ack at the cap was not served"
echo "ok: an ack above 10000 seqs is refused; 10000 are served"

# --- garbage -------------------------------------------------------------------------------
PROTO_BEFORE=$(metric 'qpc_errors_total{kind="protocol"}')
rc=0; tc -i "$TMP/clumsy.json" garbage 5 -T 2 >"$TMP/clumsy.out" || rc=$?
[ $rc -eq 4 ] || fail "a client with 5 bad frames was closed (exit $rc)"
grep -q '^answers 5$' "$TMP/clumsy.out" || fail "5 bad frames did not get 5 error answers"
rc=0; tc -i "$TMP/newer.json" garbage 200 -U -T 2 >"$TMP/newer.out" || rc=$?
[ $rc -eq 4 ] || fail "a client sending 200 requests of a kind this node does not know was closed (exit $rc)"
ANSWERS=$(awk '/^answers/ {print $2}' "$TMP/newer.out")
[ "$ANSWERS" -ge 1 ] && [ "$ANSWERS" -le 10 ] || fail "$ANSWERS answers to unknown kinds (1 to 10 expected)"
echo "ok: requests of an unknown kind (a newer client) are answered within the budget, never closed"
tc -i "$TMP/mallory.json" garbage 1000 -T 20 >"$TMP/garbage.out" || fail "the garbage sender was not closed"
grep -q '^closed too many malformed requests$' "$TMP/garbage.out" || fail "no close with a reason"
ANSWERS=$(awk '/^answers/ {print $2}' "$TMP/garbage.out")
[ "$ANSWERS" -le 10 ] || fail "$ANSWERS answers to garbage (at most 10 expected)"
PIDS=
for i in 1 2 3 4 5; do
    tc -i "$TMP/mallory$i.json" garbage 200 -T 20 >"$TMP/garbage$i.out" &
    PIDS="$PIDS $!"
done
for p in $PIDS; do wait "$p" || true; done
for i in 1 2 3 4 5; do
    grep -q '^closed too many malformed requests$' "$TMP/garbage$i.out" || fail "garbage sender $i not closed"
done
LINES=$(grep -c 'client .* at 127\.0\.0\.1:' "$TMP/server.err" || true)
[ "$LINES" -le 4 ] || fail "$LINES log lines for six garbage senders (rate limit: one per kind per 10 s)"
PROTO=$(metric 'qpc_errors_total{kind="protocol"}')
[ $((PROTO - PROTO_BEFORE)) -ge 71 ] || fail "protocol errors counted: $((PROTO - PROTO_BEFORE))"
tc -i "$TMP/alice.json" send "$BOB" 1 >"$TMP/good.out" || fail "a good client was not served"
grep -q '^summary sent=1 OK=1$' "$TMP/good.out" || fail "a good client was not served"
echo "ok: 5 bad frames get 5 answers; 1000 get $ANSWERS, then a close; $LINES log lines for six senders; good client served"

kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server did not exit 0"; SERVER_PID=
echo PASS
