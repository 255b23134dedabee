#!/usr/bin/env bash
# it_server_federation.sh: two nodes federated over CA-verified mutual TLS on loopback.
#
#   1. A client of node A sends to bob@b.mesh.test: A answers DEFERRED (the envelope is in
#      A's durable outbox), relays it (relay_enqueue) and Bob, a client of node B, fetches it.
#   2. Node B is stopped; Alice sends 300 more: they wait in A's outbox (metrics show the
#      depth); the failed attempt puts them back in one transaction, not one each
#      (qpc_queue_transactions_total). B starts again: A's retry delivers them, the outbox empties.
#   3. A node whose certificate is signed by another CA cannot deliver to B.
#   4. A node of the same CA reaching a node whose certificate names another domain than
#      the one it dialled refuses it (subjectAltName dNSName = domain).
# Node A takes its federation settings from QPC_* environment variables, node B from flags.
# Test PKI: tests/data/make_fed_certs.sh (certtool). mDNS is off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRC=${QPC_SRC:?set QPC_SRC to the source directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
BASE=$(it_port_base 10)
PA=$BASE; FA=$((BASE + 1)); MA=$((BASE + 2))
PB=$((BASE + 3)); FB=$((BASE + 4))
PR=$((BASE + 5)); FR=$((BASE + 6)); MR=$((BASE + 7))
A_PID=
B_PID=
R_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $A_PID $B_PID $R_PID
    [ $rc -eq 0 ] || it_dump_logs 25 "$TMP"/*.err "$TMP"/*.out
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

it_make_pki "$TMP/pki" || fail "cannot make the test PKI"
P=$TMP/pki

start_a() {
    QPC_FEDERATION_ENABLED=true QPC_LOCAL_DOMAIN=a.mesh.test QPC_FEDERATION_LISTEN=127.0.0.1:$FA \
    QPC_FEDERATION_CERT=$P/node-a.der QPC_FEDERATION_KEY=$P/node-a.key.der QPC_FEDERATION_CA=$P/ca.der \
    QPC_FEDERATION_PEERS="b.mesh.test=127.0.0.1:$FB" HOME=$TMP \
        "$SRV" --data-dir="$TMP/a" --listen=127.0.0.1:$PA --mdns-enabled=false \
        --metrics-listen=127.0.0.1:$MA --idle-timeout-ms=5000 --log-level=debug \
        >"$TMP/a.out" 2>>"$TMP/a.err" &
    A_PID=$!
    it_wait_for "$TMP/a.out" '^connect: ' 20 || fail "node A did not start"
}

start_b() {
    : >"$TMP/b.out"
    HOME=$TMP "$SRV" --data-dir="$TMP/b" --listen=127.0.0.1:$PB --mdns-enabled=false --metrics-listen= \
        --federation-enabled --federation-domain=b.mesh.test --federation-listen=127.0.0.1:$FB \
        --federation-cert=$P/node-b.der --federation-key=$P/node-b.key.der --federation-ca=$P/ca.der \
        --federation-peers="a.mesh.test=127.0.0.1:$FA" --idle-timeout-ms=5000 --log-level=debug \
        >"$TMP/b.out" 2>>"$TMP/b.err" &
    B_PID=$!
    it_wait_for "$TMP/b.out" '^connect: ' 20 || fail "node B did not start"
}

# fetch_until ID COUNT SECONDS: Bob fetches (and acks) until COUNT items arrived in total.
fetch_until() {
    local i got=0
    for ((i = 0; i < $3; i++)); do
        timeout 30 "$TC" -S 127.0.0.1:$PB -i "$TMP/bob.json" fetch -a >>"$TMP/bob.out" 2>>"$TMP/bob.err" || true
        got=$(grep -c '^msg ' "$TMP/bob.out" || true)
        [ "$got" -ge "$2" ] && return 0
        sleep 1
    done
    return 1
}

metric() { curl -sf "http://127.0.0.1:$MA/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

start_a
start_b
grep -q '^federation: 127.0.0.1:'$FA "$TMP/a.out" || fail "A did not take QPC_FEDERATION_LISTEN"
grep -q '^domain: *a.mesh.test$' "$TMP/a.out" || fail "A did not take QPC_LOCAL_DOMAIN"
BOB=$("$TC" -i "$TMP/bob.json" id)

# --- 1. relay ---------------------------------------------------------------------------
timeout 30 "$TC" -S 127.0.0.1:$PA -i "$TMP/alice.json" send "$BOB@b.mesh.test" 1 >"$TMP/send1.out" \
    || fail "send to remote domain"
grep -q "summary sent=1 DEFERRED=1$" "$TMP/send1.out" || fail "want DEFERRED: $(tail -1 "$TMP/send1.out")"
ID1=$(awk '/^ok /{print $3}' "$TMP/send1.out")
fetch_until "$BOB" 1 20 || fail "Bob did not receive the federated envelope"
grep -q "^msg [0-9]* $ID1 " "$TMP/bob.out" || fail "Bob got something else"
echo "ok: client of A sent to key@b.mesh.test, client of B received it"

# --- 2. B down, then up ---------------------------------------------------------------------
kill -TERM "$B_PID"; wait "$B_PID" || fail "B did not exit 0"; B_PID=
timeout 30 "$TC" -S 127.0.0.1:$PA -i "$TMP/alice.json" send "$BOB@b.mesh.test" 300 -b 300 >"$TMP/send2.out" \
    || fail "send while B is down"
grep -q "summary sent=300 DEFERRED=300$" "$TMP/send2.out" || fail "want 300 DEFERRED: $(tail -1 "$TMP/send2.out")"
for ((i = 0; i < 200; i++)); do
    [ "$(metric qpc_outbox_depth)" = "300" ] && break
    sleep 0.1
done
[ "$(metric qpc_outbox_depth)" = "300" ] || fail "outbox depth is not 300 while B is down"
TX0=$(metric qpc_queue_transactions_total)
it_wait_for "$TMP/a.err" "node b.mesh.test: .*300 envelope.s. stay in the outbox" 30 || fail "A did not report the failed attempt"
TX1=$(metric qpc_queue_transactions_total)
# The 300 rows go back in one transaction; the other transactions of the window are the
# pumps' leases and the expiry timer (a few a second). One per row would be 300 more.
[ $((TX1 - TX0)) -lt 150 ] || fail "the failed link cost $((TX1 - TX0)) transactions for 300 rows"
[ "$(metric qpc_outbox_depth)" = "300" ] || fail "outbox depth changed after the failed attempt"
echo "ok: B down: 300 envelopes wait in A's durable outbox; the failed attempt cost $((TX1 - TX0)) transactions in all"
start_b
fetch_until "$BOB" 301 90 || fail "the outbox was not delivered after B came back"
for id in $(awk '/^ok /{print $3}' "$TMP/send2.out"); do
    grep -q "^msg [0-9]* $id " "$TMP/bob.out" || fail "missing $id after retry"
done
[ "$(awk '/^msg /{print $3}' "$TMP/bob.out" | sort | uniq -d | wc -l)" -eq 0 ] || fail "duplicates delivered"
for ((i = 0; i < 100; i++)); do
    [ "$(metric qpc_outbox_depth)" = "0" ] && break
    sleep 0.1
done
[ "$(metric qpc_outbox_depth)" = "0" ] || fail "A's outbox did not empty"
[ "$(metric qpc_federated_total)" = "301" ] || fail "federated_total is $(metric qpc_federated_total)"
echo "ok: B back up: the retry delivered all 300, A's outbox is empty"

# --- 3. a node of another CA is refused ---------------------------------------------------
HOME=$TMP "$SRV" --data-dir="$TMP/r" --listen=127.0.0.1:$PR --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$MR --federation-enabled --federation-domain=r.mesh.test \
    --federation-listen=127.0.0.1:$FR --federation-cert=$P/rogue.der --federation-key=$P/rogue.key.der \
    --federation-ca=$P/other-ca.der --federation-peers="b.mesh.test=127.0.0.1:$FB" --idle-timeout-ms=5000 \
    >"$TMP/r.out" 2>"$TMP/r.err" &
R_PID=$!
it_wait_for "$TMP/r.out" '^connect: ' 20 || fail "rogue node did not start"
timeout 30 "$TC" -S 127.0.0.1:$PR -i "$TMP/mallory.json" send "$BOB@b.mesh.test" 1 >"$TMP/send3.out" \
    || fail "send via rogue"
grep -q "DEFERRED=1" "$TMP/send3.out" || fail "rogue node did not take the envelope"
it_wait_for "$TMP/r.err" "node b.mesh.test: .*stay in the outbox" 30 || fail "rogue node was not refused"
timeout 30 "$TC" -S 127.0.0.1:$PB -i "$TMP/bob.json" fetch >"$TMP/bob_after.out"
grep -q "^fetched 0$" "$TMP/bob_after.out" || fail "B accepted an envelope from a node of another CA"
echo "ok: a node with a certificate from another CA cannot deliver: $(grep -m1 "stay in the outbox" "$TMP/r.err" | sed "s/.*warn //")"

# --- 4. the CA's certificate binds the domain ---------------------------------------------
# Node C (same CA) has b.mesh.test written at A's address: A's certificate names
# a.mesh.test, so C refuses it and nothing for b.mesh.test leaves towards A.
kill -TERM "$R_PID"; wait "$R_PID" || fail "rogue node did not exit 0"; R_PID=
HOME=$TMP "$SRV" --data-dir="$TMP/c" --listen=127.0.0.1:$PR --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$MR --federation-enabled --federation-domain=c.mesh.test \
    --federation-listen=127.0.0.1:$FR --federation-cert=$P/node-c.der --federation-key=$P/node-c.key.der \
    --federation-ca=$P/ca.der --federation-peers="b.mesh.test=127.0.0.1:$FA" --idle-timeout-ms=5000 \
    >"$TMP/c.out" 2>"$TMP/c.err" &
R_PID=$!
it_wait_for "$TMP/c.out" '^connect: ' 20 || fail "node C did not start"
grep -q "CA: certificates name the domain" "$TMP/c.out" || fail "C's banner does not say CA mode"
RECV_A=$(metric qpc_federated_received_total)
timeout 30 "$TC" -S 127.0.0.1:$PR -i "$TMP/carol.json" send "$BOB@b.mesh.test" 1 >"$TMP/send4.out" \
    || fail "send via C"
it_wait_for "$TMP/c.err" "node b.mesh.test: .*certificate is not for that domain.*stay in the outbox" 30 \
    || fail "C did not refuse a certificate that does not name b.mesh.test"
[ "$(metric qpc_federated_received_total)" = "$RECV_A" ] || fail "A received what was meant for b.mesh.test"
echo "ok: a node of the same CA whose certificate names another domain gets nothing for b.mesh.test"

for pid in $A_PID $B_PID $R_PID; do kill -TERM "$pid"; done
for pid in $A_PID $B_PID $R_PID; do wait "$pid" || fail "a node did not exit 0"; done
A_PID= B_PID= R_PID=
echo PASS
