#!/usr/bin/env bash
# it_server_federation_line.sh: federation beyond one hop, three nodes in a line.
#
#   A - B - C with pinned keys: A and C are not federated (neither has the other in
#   [federation_peers]). B tells A it reaches c.mesh.test (DomainRouteUpdate), so a
#   client of A sends to carol@c.mesh.test: A hands the envelope to B, B carries it on to
#   C, Carol fetches it. Then C stops: B's metrics say so (link state per peer domain,
#   failures counting up, the federation connection count dropping) and A's route to C
#   goes away.
# All on loopback; mDNS is off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
BASE=$(it_port_base 10)
PA=$BASE; FA=$((BASE + 1)); MA=$((BASE + 2))
PB=$((BASE + 3)); FB=$((BASE + 4)); MB=$((BASE + 5))
PC=$((BASE + 6)); FC=$((BASE + 7)); MC=$((BASE + 8))
PIDS=()
C_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL "${PIDS[@]}" $C_PID
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.err "$TMP"/*.out
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

node() {   # node NAME DOMAIN CLIENT_PORT FED_PORT METRICS_PORT PEERS
    HOME=$TMP "$SRV" --data-dir="$TMP/$1" --listen=127.0.0.1:$3 --mdns-enabled=false \
        --metrics-listen=127.0.0.1:$5 --federation-enabled --federation-domain="$2" \
        --federation-listen=127.0.0.1:$4 --federation-peers="$6" --idle-timeout-ms=5000 \
        --log-level=debug >"$TMP/$1.out" 2>>"$TMP/$1.err" &
    LAST=$!
    it_wait_for "$TMP/$1.out" '^connect: ' 20 || fail "node $1 did not start"
}
metrics() { curl -sf "http://127.0.0.1:$1/metrics"; }
metric() { metrics "$1" | awk -v m="$2" '$1 == m {print $2}'; }
# wait_metric PORT LINE SECONDS: until the metrics hold LINE exactly.
wait_metric() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [[ $'\n'$(metrics "$1")$'\n' == *$'\n'"$2"$'\n'* ]] && return 0
        sleep 0.1
    done
    return 1
}

KA=$(HOME=$TMP "$SRV" --data-dir="$TMP/a" --print-federation-key 2>/dev/null)
KB=$(HOME=$TMP "$SRV" --data-dir="$TMP/b" --print-federation-key 2>/dev/null)
KC=$(HOME=$TMP "$SRV" --data-dir="$TMP/c" --print-federation-key 2>/dev/null)
node a a.mesh.test $PA $FA $MA "b.mesh.test=127.0.0.1:$FB $KB"; PIDS+=($LAST)
node b b.mesh.test $PB $FB $MB "a.mesh.test=127.0.0.1:$FA $KA,c.mesh.test=127.0.0.1:$FC $KC"; PIDS+=($LAST)
node c c.mesh.test $PC $FC $MC "b.mesh.test=127.0.0.1:$FB $KB"; C_PID=$LAST
CAROL=$("$TC" -i "$TMP/carol.json" id)

# --- routes -------------------------------------------------------------------------------
wait_metric $MA 'qpc_federation_route_hops{domain="c.mesh.test",via="b.mesh.test"} 2' 30 \
    || fail "A did not learn a route to c.mesh.test through B: $(metrics $MA | grep federation)"
wait_metric $MC 'qpc_federation_route_hops{domain="a.mesh.test",via="b.mesh.test"} 2' 30 \
    || fail "C did not learn a route to a.mesh.test through B"
metrics $MA | grep 'qpc_federation_peer_up{domain="c.mesh.test"}' >/dev/null && fail "A has a link to C"
echo "ok: A learned c.mesh.test via b.mesh.test (2 hops), C learned a.mesh.test; A has no link to C"

# --- a message two hops away -----------------------------------------------------------------
timeout 30 "$TC" -S 127.0.0.1:$PA -i "$TMP/alice.json" send "$CAROL@c.mesh.test" 3 -b 3 >"$TMP/send.out" \
    || fail "send via A"
grep -q "summary sent=3 DEFERRED=3$" "$TMP/send.out" || fail "want DEFERRED: $(tail -1 "$TMP/send.out")"
for ((i = 0; i < 30; i++)); do
    timeout 30 "$TC" -S 127.0.0.1:$PC -i "$TMP/carol.json" fetch -a >>"$TMP/carol.out" 2>>"$TMP/carol.err" || true
    [ "$(grep -c '^msg ' "$TMP/carol.out")" -ge 3 ] && break
    sleep 1
done
for id in $(awk '/^ok /{print $3}' "$TMP/send.out"); do
    grep -q "^msg [0-9]* $id " "$TMP/carol.out" || fail "Carol is missing $id"
done
[ "$(grep -c '^msg ' "$TMP/carol.out")" = 3 ] || fail "Carol got $(grep -c '^msg ' "$TMP/carol.out") messages"
wait_metric $MA 'qpc_outbox_depth 0' 10 || fail "A's outbox did not empty"
wait_metric $MB 'qpc_outbox_depth 0' 10 || fail "B's outbox did not empty"
[ "$(metric $MB qpc_federated_received_total)" = 3 ] || fail "B did not take the 3 from A"
[ "$(metric $MB qpc_federated_total)" = 3 ] || fail "B did not hand the 3 to C"
echo "ok: a client of A sent to carol@c.mesh.test; B carried the envelopes on; Carol received all 3 once"

# --- C down: the metrics say so --------------------------------------------------------------
[ "$(metric $MB 'qpc_federation_peer_up{domain="c.mesh.test"}')" = 1 ] || fail "B does not show C up"
kill -TERM "$C_PID"; wait "$C_PID" || fail "C did not exit 0"; C_PID=
wait_metric $MB 'qpc_federation_peer_up{domain="c.mesh.test"} 0' 30 || fail "B still shows C up"
# B keeps redialling C (each attempt ends at the handshake timeout, 5 s here).
F1=$(metric $MB 'qpc_federation_peer_failures_total{domain="c.mesh.test"}')
for ((i = 0; i < 300; i++)); do
    F2=$(metric $MB 'qpc_federation_peer_failures_total{domain="c.mesh.test"}')
    [ "$F2" -gt "$F1" ] && break
    sleep 0.1
done
[ "$F2" -gt "$F1" ] || fail "failures towards C do not count up while it is down ($F1, $F2)"
[ "$(metric $MB 'qpc_errors_total{kind="federation_unreachable"}')" -gt 0 ] || fail "federation_unreachable is 0 while C is down"
metrics $MB | grep '^qpc_federation_peer_last_success_seconds{domain="c.mesh.test"} [0-9]' >/dev/null \
    || fail "no last success time for C"
metrics $MB | grep '^# HELP qpc_federation_peer_up ' >/dev/null || fail "no HELP for qpc_federation_peer_up"
CONN=$(metrics $MB | awk '$1 == "qpc_connections{service=\"federation\"}" {print $2}')
[ "$CONN" -le 2 ] || fail "B counts $CONN federation connections with C down (A in and out is 2)"
wait_metric $MA 'qpc_outbox_depth 0' 1 || true
for ((i = 0; i < 400; i++)); do
    metrics $MA | grep 'qpc_federation_route_hops{domain="c.mesh.test"' >/dev/null || break
    sleep 0.1
done
metrics $MA | grep 'qpc_federation_route_hops{domain="c.mesh.test"' >/dev/null && fail "A kept its route to C"
echo "ok: C down: B shows peer_up 0, failures $F1 -> $F2, unreachable counted, $CONN federation connection(s); A dropped its route"
metrics $MB | grep -E '^qpc_federation|^qpc_connections\{service="federation|unreachable' | sed 's/^/    /'

for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${PIDS[@]}"; do wait "$pid" || fail "a node did not exit 0"; done
PIDS=()
echo PASS
