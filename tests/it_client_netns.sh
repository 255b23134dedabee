#!/usr/bin/env bash
# it_client_netns.sh: clients on one LAN made of network namespaces on a bridge.
#
#   srv (10.211.0.1) runs qpc-server with mDNS on; a, c and the mesh nodes are clients.
#   1. /mesh peers in a's REPL (real terminal, tmux) shows the server found by mDNS with
#      its TXT fields.
#   2. a sends to c knowing only c's key: the server tells a where c is; direct delivery.
#   3. c offline, a sends (held in a's outbox and by the server), c starts: exactly once.
#   4. direct UDP between a and c blocked with iptables (inside a's namespace only): the
#      message goes through the server's relay and a's screen says "relayed"; the rule is
#      lifted: a direct path comes up, the relay is left, the next message goes direct.
#   5. a broadcast in a 6-node mesh (cycle included) reaches each of the 5 subscribers
#      exactly once; the non-subscriber in the middle relays it but cannot read it.
# Everything made here (namespaces, processes, tmux session) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_netns.XXXXXX)
it_tmux_private "$T"
P=qc$$
BR=${P}br
TS=qpc_netns_$$
NODES=()
PIDS=()
cleanup() {
    local rc=$?
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    it_netns_del "${NODES[@]/#/$P}" "$BR"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tmux capture-pane -p -t "$TS" -S -100 2>/dev/null | grep -v '^$' || true; exit 1; }
it_require_netns

# --- the LAN ---------------------------------------------------------------------------
it_bridge_add "$BR"
add_node() { # name index: namespace $P<name> at 10.211.0.<index> on the bridge
    NODES+=("$1")   # before it exists: cleanup deletes it even if making it fails
    it_bridge_node "$BR" "$P$1" "v$2" "10.211.0.$2/24"
}
add_node srv 1; add_node a 2; add_node c 3
for i in 1 2 3 4 5 6; do add_node m$i $((10 + i)); done
add_node pub 20
X() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
Q="--no-mdns --direct-timeout-ms 1000"
screen() { tmux capture-pane -p -t "$TS" -S -300; }
wait_screen() {
    local i
    for ((i = 0; i < ${2:-15} * 10; i++)); do screen | grep -Eq -- "$1" && return 0; sleep 0.1; done
    fail "screen never showed: $1"
}
run() { tmux send-keys -t "$TS" -l -- "$1"; tmux send-keys -t "$TS" Enter; }

# --- server ----------------------------------------------------------------------------
ip netns exec "${P}srv" $B/qpc-server --listen 10.211.0.1:7000 --data-dir "$T/srv" --mdns-enabled=true \
    --mdns-interfaces eth0 --metrics-listen= --federation-domain node1.mesh.local \
    >"$T/srv.out" 2>"$T/srv.err" &
PIDS+=($!)
SRV=10.211.0.1:7000
AK=$(X a $B/qpc --data-dir "$T/a" identity)
CK=$(X c $B/qpc --data-dir "$T/c" identity)
sleep 1

# --- 1. a's REPL: /mesh peers shows the server from mDNS -------------------------------
tmux new-session -d -s "$TS" -x 220 -y 60 \
    "ip netns exec $P""a $B/qpc --data-dir $T/a --listen 10.211.0.2:7100 --mdns-interfaces eth0 --direct-timeout-ms 1000 --server $SRV 2>$T/a.err"
wait_screen "connected to server $SRV"
for i in $(seq 30); do
    run "/mesh peers"
    sleep 0.5
    screen | grep -Eq "node .* 10.211.0.1:7000 +ver=1 server=10.211.0.1:7000 domain=node1.mesh.local" && break
done
wait_screen "node .* 10.211.0.1:7000 +ver=1 server=10.211.0.1:7000 domain=node1.mesh.local" 1
echo "ok 1 /mesh peers shows the mDNS node"

# --- 2. direct, address learned from the server ------------------------------------------
ip netns exec "${P}c" $B/qpc --data-dir "$T/c" --listen 10.211.0.3:7100 $Q --server $SRV listen --json >"$T/c.out" 2>"$T/c.err" &
CP=$!; PIDS+=($CP)
it_wait_lines "$T/c.out" '"connected to server' 1 || fail "c did not connect"
run "/mesh send $CK hello over the lan"
wait_screen "delivered [0-9a-f]{12} to ${CK:0:12} \(1 hop, via direct link, [0-9]+ ms\)"
it_wait_lines "$T/c.out" '"text":"hello over the lan","path":"direct"' 1 || fail "c did not get it"
# /send goes through the server (not P2P): the node stores it, c gets it pushed
run "/send ${CK:0:10} through the node"
wait_screen "held [0-9a-f]{12} for ${CK:0:12} by $SRV"
it_wait_lines "$T/c.out" '"text":"through the node","path":"server"' 1 || fail "c did not get /send"
wait_screen "delivered [0-9a-f]{12} to ${CK:0:12} \(1 hop, via server $SRV, [0-9]+ ms\)" 20
echo "ok 2 direct via address from the server; /send via the server"

# --- 3. c offline: held, delivered exactly once when it starts ----------------------------
kill $CP; wait $CP 2>/dev/null || true
run "/mesh send ${CK:0:8} are you there"
wait_screen "held [0-9a-f]{12} for ${CK:0:12} by $SRV" 20
ip netns exec "${P}c" $B/qpc --data-dir "$T/c" --listen 10.211.0.3:7100 $Q --server $SRV listen --json >"$T/c2.out" 2>"$T/c2.err" &
CP=$!; PIDS+=($CP)
it_wait_lines "$T/c2.out" '"text":"are you there"' 1 || fail "c never got the held message"
# c's receipt for whichever copy it took first (the server's or a's outbox copy)
wait_screen "delivered [0-9a-f]{12} to ${CK:0:12} \(1 hop, via (server $SRV|direct link), [0-9]+ ms\)" 40
sleep 2
[ "$(grep -c '"text":"are you there"' "$T/c2.out")" -eq 1 ] || fail "held message shown more than once"
echo "ok 3 offline peer: exactly once"

# --- 4. relay fallback and back to direct -------------------------------------------------
kill $CP; wait $CP 2>/dev/null || true
run "/quit"
sleep 1
tmux kill-session -t "$TS" 2>/dev/null || true
X a iptables -A OUTPUT -p udp -d 10.211.0.3 -j DROP
X a iptables -A INPUT -p udp -s 10.211.0.3 -j DROP
ip netns exec "${P}c" $B/qpc --data-dir "$T/c" --listen 10.211.0.3:7100 $Q --server $SRV listen --json >"$T/c3.out" 2>"$T/c3.err" &
CP=$!; PIDS+=($CP)
it_wait_lines "$T/c3.out" '"connected to server' 1 || fail "c did not connect"
tmux new-session -d -s "$TS" -x 220 -y 60 \
    "ip netns exec $P""a $B/qpc --data-dir $T/a --listen 10.211.0.2:7100 $Q 2>$T/a2.err"
wait_screen "^qpc>"
run "/connect $SRV"
wait_screen "connected to server $SRV"
run "/mesh send $CK through the relay"
wait_screen "delivered [0-9a-f]{12} to ${CK:0:12} \(1 hop, via relay $SRV, [0-9]+ ms\)" 30
it_wait_lines "$T/c3.out" '"text":"through the relay","path":"relayed"' 1 || fail "c: not relayed"
X a iptables -F
wait_screen "${CK:0:12}: direct path works" 60
run "/mesh send $CK direct again"
wait_screen "delivered [0-9a-f]{12} to ${CK:0:12} \(1 hop, via direct link, [0-9]+ ms\)" 20
it_wait_lines "$T/c3.out" '"text":"direct again","path":"direct"' 1 || fail "c: second message not direct"
run "/mesh route"
wait_screen "${CK:0:12} +- +direct +10.211.0.3:7100 +1 "
run "/quit"
echo "ok 4 relay fallback, then direct"

# --- 5. broadcast over a 6-node mesh -------------------------------------------------------
#   m1 - m2 - m3(no subscription) - m4
#         \                        |
#          m5 ------------------- m6        and the publisher pub dials m1
declare -A K
for i in 1 2 3 4 5 6; do K[m$i]=$(X m$i $B/qpc --data-dir "$T/m$i" identity); done
PK=$(X pub $B/qpc --data-dir "$T/pub" identity)
link() { X "$1" $B/qpc --data-dir "$T/$1" peer add "${K[$2]}" "10.211.0.$3:7100"; }
link m2 m1 11; link m3 m2 12; link m4 m3 13; link m5 m2 12; link m6 m5 15; link m6 m4 14
X pub $B/qpc --data-dir "$T/pub" peer add "${K[m1]}" 10.211.0.11:7100
for i in 1 2 4 5 6; do X m$i $B/qpc --data-dir "$T/m$i" subscribe townhall; done
for i in 1 2 3 4 5 6; do
    ip netns exec "${P}m$i" $B/qpc --data-dir "$T/m$i" --listen 10.211.0.$((10 + i)):7100 $Q listen --json \
        >"$T/m$i.out" 2>"$T/m$i.err" &
    PIDS+=($!)
done
# every mesh link up: m6 has two, the others dial theirs
for i in 1 2 3 4 5 6; do it_wait_lines "$T/m$i.out" '"listening"' 1 || fail "m$i did not start"; done
sleep 3
X pub $B/qpc --data-dir "$T/pub" --listen 10.211.0.20:7100 $Q broadcast townhall "meeting at eight" \
    >"$T/pub.out" 2>"$T/pub.err" || fail "publisher failed"
for i in 1 2 4 5 6; do
    it_wait_lines "$T/m$i.out" '"event":"broadcast".*"text":"meeting at eight"' 1 || fail "m$i did not get it"
done
sleep 2
for i in 1 2 4 5 6; do
    n=$(grep -c '"text":"meeting at eight"' "$T/m$i.out" || true)
    [ "$n" -eq 1 ] || fail "m$i showed the broadcast $n times"
done
grep -q 'meeting at eight' "$T/m3.out" && fail "the non-subscriber could read it"
grep -q '"event":"broadcast"' "$T/m3.out" && fail "the non-subscriber showed a broadcast"
echo "ok 5 broadcast: 5 subscribers once each, relay m3 cannot read"

# --- 6. no server saved: a node mDNS finds is offered ------------------------------------
tmux kill-session -t "$TS" 2>/dev/null || true
tmux new-session -d -s "$TS" -x 220 -y 60 \
    "ip netns exec $P""a $B/qpc --data-dir $T/h --listen 10.211.0.2:7102 --mdns-interfaces eth0 2>$T/h.err"
wait_screen "found a node on the link: .* at $SRV; /connect $SRV uses it"
run "/connect"
wait_screen "connected to server $SRV"
echo "ok 6 without a saved server the REPL names the node mDNS found, and /connect uses it"
# under -DQPC_SANITIZE=ON every report (leaks at exit included) fails the test
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_netns"
