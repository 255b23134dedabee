#!/usr/bin/env bash
# it_server_announce_line.sh: real qpc clients learn each other from announces carried
# through three federated nodes in a line.
#
#   alice - A - B - C - carol, pinned keys, A and C not federated (they know only B).
#   1. Each client's announce goes to its node, which passes it to B, which passes it to
#      the other end: alice lists a route to carol through her server learned from
#      carol's announce (4 hops: carol -> C -> B -> A -> alice), and carol one to alice.
#      Neither is in the other's directory, so only the announces can have told them.
# (Receipts along the same line: tests/it_client_receipts.sh, case 3b.)
# All on loopback; mDNS is off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?set QPC_BUILD to the build directory}
T=$(mktemp -d /tmp/it_server_announce_line.XXXXXX)
BASE=$(it_port_base 6)
PA=$BASE; FA=$((BASE + 1)); PB=$((BASE + 2)); FB=$((BASE + 3)); PC=$((BASE + 4)); FC=$((BASE + 5))
PIDS=()
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

node() {   # node NAME DOMAIN CLIENT_PORT FED_PORT FED_PEERS
    HOME=$T $B/qpc-server --data-dir "$T/$1" --listen 127.0.0.1:$3 --mdns-enabled=false \
        --metrics-listen= --federation-enabled --federation-domain "$2" \
        --federation-listen 127.0.0.1:$4 --federation-peers "$5" >"$T/$1.out" 2>"$T/$1.err" &
    PIDS+=($!)
    it_wait_for "$T/$1.out" '^connect: ' 20 || fail "node $1 did not start"
}
KA=$(HOME=$T $B/qpc-server --data-dir="$T/na" --print-federation-key 2>/dev/null)
KB=$(HOME=$T $B/qpc-server --data-dir="$T/nb" --print-federation-key 2>/dev/null)
KC=$(HOME=$T $B/qpc-server --data-dir="$T/nc" --print-federation-key 2>/dev/null)
node na a.mesh.test $PA $FA "b.mesh.test=127.0.0.1:$FB $KB"
node nb b.mesh.test $PB $FB "a.mesh.test=127.0.0.1:$FA $KA,c.mesh.test=127.0.0.1:$FC $KC"
node nc c.mesh.test $PC $FC "b.mesh.test=127.0.0.1:$FB $KB"

AK=$($B/qpc --data-dir "$T/alice" identity)
CK=$($B/qpc --data-dir "$T/carol" identity)
Q="--listen 127.0.0.1:0 --no-mdns --announce-interval-s 5"
$B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PA listen --json >"$T/alice.out" 2>"$T/alice.err" &
PIDS+=($!)
$B/qpc --data-dir "$T/carol" $Q --server 127.0.0.1:$PC listen --json >"$T/carol.out" 2>"$T/carol.err" &
PIDS+=($!)

# Each listener has its state open before `qpc route` reads it (a reader at its start
# would find routes.db locked).
it_wait_lines "$T/alice.out" '"connected to server' 1 30 || fail "alice did not connect"
it_wait_lines "$T/carol.out" '"connected to server' 1 30 || fail "carol did not connect"

# --- 1. routes from announces, four hops ----------------------------------------------------
route_of() { $B/qpc --data-dir "$T/$1" route | grep "^$2 " || true; }
want() { echo " server 127.0.0.1:$1 4 announce "; }
for ((i = 0; i < 120; i++)); do route_of alice "$CK" | grep -q -- "$(want $PA)" && break; sleep 0.5; done
route_of alice "$CK" | grep -q -- "$(want $PA)" || fail "alice has no 4-hop route to carol: '$(route_of alice "$CK")'"
for ((i = 0; i < 60; i++)); do route_of carol "$AK" | grep -q -- "$(want $PC)" && break; sleep 0.5; done
route_of carol "$AK" | grep -q -- "$(want $PC)" || fail "carol has no 4-hop route to alice: '$(route_of carol "$AK")'"
$B/qpc --data-dir "$T/alice" peer list | grep -q "^$CK " && fail "carol is in alice's directory"
echo "ok 1: announces along A - B - C: alice and carol each route to the other through their server, 4 hops"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_server_announce_line"
