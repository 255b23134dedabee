#!/usr/bin/env bash
# it_mesh_announce_server.sh: the client's announces through its server.
#
#   A (10.213.1.2) -- S (qpc-server, 10.213.1.1 | 10.213.2.1) -- C (10.213.2.2); S does
#   not forward IP, so A and C share no link and reach each other only through S.
#   1. Each client's announce goes to S (ClientRequest.announce) and S passes it on to
#      the other (ServerMessage.announce): A lists a route to C through the server,
#      learned from C's announce (2 hops: C -> S -> A), and C one to A.
#   2. A resolves C by a 16-digit id prefix its routing table alone knows, and the
#      message arrives.
# Everything made here (namespaces, processes) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_announce_server.XXXXXX)
P=qs$$
PIDS=()
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${P}a" "${P}s" "${P}c"
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

it_veth_pair "${P}a" "${P}s" eth0 sa0 10.213.1.2/24 10.213.1.1/24
it_veth_extend "${P}s" "${P}c" sc0 eth0 10.213.2.1/24 10.213.2.2/24
ip netns exec "${P}s" sysctl -qw net.ipv4.ip_forward=0

PORT=$(it_port_base 1)
ip netns exec "${P}s" $B/qpc-server --listen "0.0.0.0:$PORT" --data-dir "$T/s" --mdns-enabled=false \
    --metrics-listen= --federation-domain s.mesh.test >"$T/s.out" 2>"$T/s.err" &
PIDS+=($!)
it_wait_for "$T/s.out" '^connect: ' 20 || fail "the server did not start"

for n in a c; do $B/qpc --data-dir "$T/$n" identity >/dev/null; done
AK=$($B/qpc --data-dir "$T/a" identity)
CK=$($B/qpc --data-dir "$T/c" identity)
Q="--no-mdns --log-level info --announce-interval-s 5"
ip netns exec "${P}a" $B/qpc --data-dir "$T/a" --listen "0.0.0.0:$PORT" --server "10.213.1.1:$PORT" $Q \
    listen --json >"$T/a.out" 2>"$T/a.err" &
PIDS+=($!)
ip netns exec "${P}c" $B/qpc --data-dir "$T/c" --listen "0.0.0.0:$PORT" --server "10.213.2.1:$PORT" $Q \
    listen --json >"$T/c.out" 2>"$T/c.err" &
PIDS+=($!)

want=" server 10.213.1.1:$PORT 2 announce "
for ((i = 0; i < 150; i++)); do it_route_of a "$CK" | grep -q -- "$want" && break; sleep 0.2; done
it_route_of a "$CK" | grep -q -- "$want" || fail "A has no route to C through the server: '$(it_route_of a "$CK")'"
for ((i = 0; i < 100; i++)); do it_route_of c "$AK" | grep -q " server 10.213.2.1:$PORT 2 announce " && break; sleep 0.2; done
it_route_of c "$AK" | grep -q " server 10.213.2.1:$PORT 2 announce " || fail "C has no route to A through the server"
$B/qpc --data-dir "$T/a" peer list | grep -q "^$CK " && fail "C is in A's directory: the route would not be needed"
echo "ok 1 announces through the server: routes both ways, 2 hops, source announce"

rc=0
ip netns exec "${P}a" $B/qpc --data-dir "$T/a" --server "10.213.1.1:$PORT" --no-mdns --timeout 20 \
    send "${CK:0:16}" "to c by prefix" >"$T/a_send.out" 2>"$T/a_send.err" || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "send by prefix: exit $rc: $(cat "$T/a_send.out" "$T/a_send.err")"
it_wait_lines "$T/c.out" '"text":"to c by prefix"' 1 20 || fail "C did not get the message sent by prefix"
echo "ok 2 A sends to C by an id prefix only its routing table knows (exit $rc)"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_announce_server"
