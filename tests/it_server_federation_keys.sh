#!/usr/bin/env bash
# it_server_federation_keys.sh: federation by pinned Ed25519 keys, no CA, no files.
#
#   1. Nodes A and B exchange their federation keys (qpc-server --print-federation-key)
#      and write each other as "host:port KEY" in [federation_peers]: a client of A sends
#      to bob@b.mesh.test and Bob, a client of B, receives it.
#   2. Node W has the wrong key written for b.mesh.test: the handshake fails on the key,
#      nothing leaves W's outbox and Bob receives nothing.
#   3. Node M has B's right key but says it is a.mesh.test (whose key B has pinned): B
#      refuses its requests and closes; nothing reaches Bob.
# All on loopback; mDNS is off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
BASE=$(it_port_base 12)
PA=$BASE; FA=$((BASE + 1)); MA=$((BASE + 2))
PB=$((BASE + 3)); FB=$((BASE + 4)); MB=$((BASE + 5))
PW=$((BASE + 6)); FW=$((BASE + 7)); MW=$((BASE + 8))
PM=$((BASE + 9)); FM=$((BASE + 10)); MM=$((BASE + 11))
PIDS=()

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 25 "$TMP"/*.err "$TMP"/*.out
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

# node NAME DOMAIN CLIENT_PORT FED_PORT METRICS_PORT PEERS: starts a node in key mode.
node() {
    HOME=$TMP "$SRV" --data-dir="$TMP/$1" --listen=127.0.0.1:$3 --mdns-enabled=false \
        --metrics-listen=127.0.0.1:$5 --federation-enabled --federation-domain="$2" \
        --federation-listen=127.0.0.1:$4 --federation-peers="$6" --idle-timeout-ms=5000 \
        --log-level=debug >"$TMP/$1.out" 2>"$TMP/$1.err" &
    PIDS+=($!)
    it_wait_for "$TMP/$1.out" '^connect: ' 20 || fail "node $1 did not start"
}
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
bob_fetch() { timeout 30 "$TC" -S 127.0.0.1:$PB -i "$TMP/bob.json" fetch -a >>"$TMP/bob.out" 2>>"$TMP/bob.err" || true; }

# Keys exchanged offline: each node prints its own, made on first use at mode 0600.
KA=$(HOME=$TMP "$SRV" --data-dir="$TMP/a" --print-federation-key 2>/dev/null)
KB=$(HOME=$TMP "$SRV" --data-dir="$TMP/b" --print-federation-key 2>/dev/null)
KW=$(HOME=$TMP "$SRV" --data-dir="$TMP/w" --print-federation-key 2>/dev/null)
[[ $KA =~ ^[0-9a-f]{64}$ && $KB =~ ^[0-9a-f]{64}$ ]] || fail "--print-federation-key printed '$KA' '$KB'"
[ "$(stat -c %a "$TMP/a/identity.json")" = 600 ] || fail "identity.json is not mode 0600"
[ "$(HOME=$TMP "$SRV" --data-dir="$TMP/a" --print-federation-key 2>/dev/null)" = "$KA" ] \
    || fail "the key changed between two calls"

node a a.mesh.test $PA $FA $MA "b.mesh.test=127.0.0.1:$FB $KB"
node b b.mesh.test $PB $FB $MB "a.mesh.test=127.0.0.1:$FA $KA"
grep -q "^federation key: $KA$" "$TMP/a.out" || fail "A's banner does not print its federation key"
grep -q "pinned keys" "$TMP/a.out" || fail "A's banner does not say pinned keys"
BOB=$("$TC" -i "$TMP/bob.json" id)

# --- 1. pinned keys -----------------------------------------------------------------------
timeout 30 "$TC" -S 127.0.0.1:$PA -i "$TMP/alice.json" send "$BOB@b.mesh.test" 1 >"$TMP/send1.out" \
    || fail "send via A"
grep -q "summary sent=1 DEFERRED=1$" "$TMP/send1.out" || fail "want DEFERRED: $(tail -1 "$TMP/send1.out")"
ID1=$(awk '/^ok /{print $3}' "$TMP/send1.out")
for ((i = 0; i < 20; i++)); do
    bob_fetch
    grep -q "^msg [0-9]* $ID1 " "$TMP/bob.out" && break
    sleep 1
done
grep -q "^msg [0-9]* $ID1 " "$TMP/bob.out" || fail "Bob did not receive the envelope through pinned-key federation"
echo "ok: A and B federate with keys exchanged offline (no CA, no certificate files)"

# --- 2. the wrong key for b.mesh.test -------------------------------------------------------
node w w.mesh.test $PW $FW $MW "b.mesh.test=127.0.0.1:$FB $KW"
timeout 30 "$TC" -S 127.0.0.1:$PW -i "$TMP/walt.json" send "$BOB@b.mesh.test" 2 -b 2 >"$TMP/send2.out" \
    || fail "send via W"
grep -q "DEFERRED=2" "$TMP/send2.out" || fail "W did not take the envelopes"
it_wait_for "$TMP/w.err" "node b.mesh.test: .*peer key mismatch.*2 envelope.s. stay in the outbox" 30 \
    || fail "W did not refuse B's key"
[ "$(metric $MW qpc_outbox_depth)" = "2" ] || fail "W's outbox depth is $(metric $MW qpc_outbox_depth)"
[ "$(metric $MW qpc_federated_total)" = "0" ] || fail "W delivered to a node that did not prove its key"
echo "ok: a node with another key for b.mesh.test sends nothing there: $(grep -m1 'peer key mismatch' "$TMP/w.err" | sed 's/.*warn //')"

# --- 3. a node that claims A's domain -------------------------------------------------------
node m a.mesh.test $PM $FM $MM "b.mesh.test=127.0.0.1:$FB $KB"
timeout 30 "$TC" -S 127.0.0.1:$PM -i "$TMP/mallory.json" send "$BOB@b.mesh.test" 1 >"$TMP/send3.out" \
    || fail "send via M"
it_wait_for "$TMP/b.err" "says it is a.mesh.test but does not prove it" 30 || fail "B did not refuse M"
[ "$(metric $MM qpc_outbox_depth)" = "1" ] || fail "M's outbox depth is $(metric $MM qpc_outbox_depth)"
bob_fetch
[ "$(grep -c '^msg ' "$TMP/bob.out")" = 1 ] || fail "Bob received what M sent"
echo "ok: B refuses a node that names a domain pinned to another key"

for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${PIDS[@]}"; do wait "$pid" || fail "a node did not exit 0"; done
PIDS=()
echo PASS
