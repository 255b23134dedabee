#!/usr/bin/env bash
# it_server_announce_line.sh: real qpc clients learn each other from announces carried
# through three federated nodes in a line.
#
#   alice - A - B - C - carol, pinned keys, A and C not federated (they know only B).
#   1. Each client's announce goes to its node, which passes it to B, which passes it to
#      the other end: alice lists a route to carol through her server learned from
#      carol's announce (4 hops: carol -> C -> B -> A -> alice), and carol one to alice.
#      Neither is in the other's directory, so only the announces can have told them.
#      Each also notes the other's home node from the announce (`qpc route`: home DOMAIN).
#   2. alice sends to carol by a 16-digit id prefix only her routing table knows, with no
#      @domain: her client addresses it to carol's home node (c.mesh.test, from carol's
#      signed announce), A federates it over B to C, and alice's send exits 0 on carol's
#      verified receipt, which came back by the server. The clients' P2P traffic is
#      dropped (iptables between their UDP ports), so no direct path can carry it.
#   3. Through a server only where it can deliver: an announce naming no home node gives
#      alice no route through her server; an envelope naming no domain for carol, handed
#      to A, goes to carol's home node (from her signed announce), not A's own queue.
# All on loopback, inside one network namespace of its own (for the iptables rule; without
# namespaces part 1 runs on the host's loopback and part 2 is skipped). mDNS is off.
# (Receipts along the same line with a typed @domain: tests/it_client_receipts.sh, 3b.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?set QPC_BUILD to the build directory}
T=$(mktemp -d /tmp/it_server_announce_line.XXXXXX)
BASE=$(it_port_base 9)
PA=$BASE; FA=$((BASE + 1)); PB=$((BASE + 2)); FB=$((BASE + 3)); PC=$((BASE + 4)); FC=$((BASE + 5))
PAL=$((BASE + 6)); PCL=$((BASE + 7)); PAS=$((BASE + 8))   # alice listening, carol, alice's send
PIDS=()
NS=""
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    [ $rc -eq 0 ] || [ $rc -eq 77 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    [ -z "$NS" ] || it_netns_del "$NS"
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A namespace of our own when we may make one: its loopback is ours, and so are its rules.
if [ "$(id -u)" -eq 0 ] && ip netns add "qpc-annline-$$" 2>/dev/null; then
    NS="qpc-annline-$$"
    ip -n "$NS" link set lo up
fi
X() { if [ -n "$NS" ]; then ip netns exec "$NS" "$@"; else "$@"; fi; }
if [ -n "$NS" ]; then
    # No P2P between the clients: every UDP datagram from one client port to another is
    # dropped (servers and federation are untouched), counted for the report below.
    X iptables -A OUTPUT -p udp -m multiport --sports $PAL,$PCL,$PAS -m multiport --dports $PAL,$PCL,$PAS -j DROP \
        || fail "cannot add the iptables rule in the namespace"
fi

node() {   # node NAME DOMAIN CLIENT_PORT FED_PORT FED_PEERS
    X env HOME="$T" $B/qpc-server --data-dir "$T/$1" --listen 127.0.0.1:$3 --mdns-enabled=false \
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
Q="--no-mdns --announce-interval-s 5"
X $B/qpc --data-dir "$T/alice" --listen 127.0.0.1:$PAL $Q --server 127.0.0.1:$PA listen --json \
    >"$T/alice.out" 2>"$T/alice.err" &
PIDS+=($!)
X $B/qpc --data-dir "$T/carol" --listen 127.0.0.1:$PCL $Q --server 127.0.0.1:$PC listen --json \
    >"$T/carol.out" 2>"$T/carol.err" &
PIDS+=($!)

# Each listener has its state open before `qpc route` reads it (a reader at its start
# would find routes.db locked).
it_wait_lines "$T/alice.out" '"connected to server' 1 30 || fail "alice did not connect"
it_wait_lines "$T/carol.out" '"connected to server' 1 30 || fail "carol did not connect"

# --- 1. routes from announces, four hops ----------------------------------------------------
want() { echo " server 127.0.0.1:$1 4 announce "; }
for ((i = 0; i < 120; i++)); do it_route_of alice "$CK" | grep -q -- "$(want $PA)" && break; sleep 0.5; done
it_route_of alice "$CK" | grep -q -- "$(want $PA)" || fail "alice has no 4-hop route to carol: '$(it_route_of alice "$CK")'"
for ((i = 0; i < 60; i++)); do it_route_of carol "$AK" | grep -q -- "$(want $PC)" && break; sleep 0.5; done
it_route_of carol "$AK" | grep -q -- "$(want $PC)" || fail "carol has no 4-hop route to alice: '$(it_route_of carol "$AK")'"
$B/qpc --data-dir "$T/alice" peer list | grep -q "^$CK " && fail "carol is in alice's directory"
# The home node rides in the signed announce (the one made once the node named its
# domain), saved with the route.
for ((i = 0; i < 60; i++)); do it_route_of alice "$CK" | grep -q " home c.mesh.test$" && break; sleep 0.5; done
it_route_of alice "$CK" | grep -q " home c.mesh.test$" || fail "alice has no home for carol: '$(it_route_of alice "$CK")'"
for ((i = 0; i < 60; i++)); do it_route_of carol "$AK" | grep -q " home a.mesh.test$" && break; sleep 0.5; done
it_route_of carol "$AK" | grep -q " home a.mesh.test$" || fail "carol has no home for alice: '$(it_route_of carol "$AK")'"
echo "ok 1: announces along A - B - C: alice and carol each route to the other through their server, 4 hops, and know each other's node"

# --- 3. a route through a server only where the server can deliver -------------------------
# (a) An announce of a peer that is no node's client (no home in it), passed to A by a
#     client relaying it: alice must not route to that peer through her server (A would
#     only queue it for a fetch that never comes; the route would hide a mesh way).
TC=$B/qpc_testclient
ANN=$B/qpc_mesh_announce
X $ANN -i "$T/obs.json" -S 127.0.0.1:$PA listen 0 -T 60 >"$T/obs.out" 2>"$T/obs.err" &
OBS=$!; PIDS+=($OBS)
it_wait_lines "$T/obs.out" '^ready' 1 20 || fail "the observer did not start"
X $ANN -i "$T/tom.json" -S 127.0.0.1:$PA send relayed 1 >"$T/tom.out" 2>"$T/tom.err" || fail "tom's announce"
HK=$(awk '/^origin /{print $2}' "$T/tom.out")
it_wait_lines "$T/obs.out" "^announce $HK " 1 20 || fail "A did not pass the homeless announce on: $(cat "$T/obs.out")"
kill $OBS 2>/dev/null || true
# A pushed it to alice's session in the same turn as to the observer's; routes.db is
# written every ROUTE_STATE_SAVE_MS (5 s): a route taken from it shows within two saves.
for ((i = 0; i < 24; i++)); do
    [ -z "$(it_route_of alice "$HK")" ] || fail "alice routes a homeless peer through her server: '$(it_route_of alice "$HK")'"
    sleep 0.5
done
echo "ok 3a: an announce naming no home gives no route through the server"
# (b) An envelope naming no domain (an older client's, or one that does not know the
#     home) for carol, handed to A: A sends it to carol's home node from carol's signed
#     announce (DEFERRED: held for a remote node), instead of queueing it for a client
#     that never comes to A (OK).
it_wait_for "$T/na.err" 'route to c.mesh.test via b.mesh.test' 30 || fail "A learned no route to c.mesh.test"
X timeout 60 $TC -i "$T/tom.json" -S 127.0.0.1:$PA send "$CK" 1 >"$T/tsend.out" 2>"$T/tsend.err" || true
grep -q "summary sent=1 DEFERRED=1$" "$T/tsend.out" || fail "A did not send it to carol's home: $(tail -1 "$T/tsend.out")"
TID=$(awk '/^ok 0 /{print $3}' "$T/tsend.out")
# carol's qpc gets it (and refuses it: the test tool's payload is no sealed box).
it_wait_lines "$T/carol.out" "\"event\":\"refused\",.*\"id\":\"$TID\"" 1 30 \
    || fail "carol never got the envelope A sent to her home: $(tail -3 "$T/carol.out")"
echo "ok 3b: an envelope naming no domain for a client of C goes to C (its announce's home), not A's queue"

# --- 2. a first message by prefix, with its receipt, through the federation ------------------
[ -n "$NS" ] || it_skip "part 1 passed; part 2 needs a network namespace (for the iptables rule)"
# The nodes' domain routes (B tells each end of the other): until then A has no way to
# c.mesh.test and would refuse the message as for an unknown domain.
it_wait_for "$T/na.err" 'route to c.mesh.test via b.mesh.test' 30 || fail "A learned no route to c.mesh.test"
it_wait_for "$T/nc.err" 'route to a.mesh.test via b.mesh.test' 30 || fail "C learned no route to a.mesh.test"
# alice's listener stays connected beside her `qpc send`: A pushes to every session of a key.
rc=0
X $B/qpc --data-dir "$T/alice" --listen 127.0.0.1:$PAS $Q --server 127.0.0.1:$PA --receipt-wait 60 \
    send "${CK:0:16}" "along the line" >"$T/send.out" 2>"$T/send.err" || rc=$?
[ $rc -eq 0 ] || fail "send by prefix: exit $rc, want 0 (a verified receipt): $(cat "$T/send.out")"
grep -q "^delivered .* to ${CK:0:12} (.* via server " "$T/send.out" || fail "no delivered line via the server: $(cat "$T/send.out")"
# carol has no session but C's, and A and C are not federated: C had it from B.
it_wait_lines "$T/carol.out" "\"text\":\"along the line\",\"path\":\"server\",\"hops\":1,\"via\":\"127.0.0.1:$PC\"" 1 20 \
    || fail "carol did not get it through her server: $(grep along "$T/carol.out")"
grep -q "held .* by 127.0.0.1:$PA" "$T/send.out" || fail "A did not hold it: $(cat "$T/send.out")"
DROPPED=$(X iptables -L OUTPUT -nvx | awk '/multiport/ { print $1; exit }')
echo "ok 2: alice -> carol by an id prefix only announces taught her, to carol's home node: $(grep '^delivered' "$T/send.out") (client-to-client datagrams dropped: ${DROPPED:-?})"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_server_announce_line"
