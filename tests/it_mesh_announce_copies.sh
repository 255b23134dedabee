#!/usr/bin/env bash
# it_mesh_announce_copies.sh: the first copy of an announce is not the best one, and the
# mesh's own way, a moment later, is learned and passed on.
#
#   O - N1 - N2 - H - D, a chain of veths (one /24 each, no IP forwarding), and a
#   qpc-server S with a veth to N1 and one to H: N1 and H are S's clients, O, N2 and D
#   are no node's clients. Static peers along the chain, no mDNS.
#   O starts last. Its announce reaches H twice: through S at once (N1 passes it to S
#   at its tick, S passes it on as it comes) and through N2 at N2's next tick, up to a
#   second later. The server's copy teaches H nothing (a peer of no node cannot be
#   reached through my node's queue) and, for the same reason, does not go on to D.
#   1. H's route to O is the one through N2 (3 hops), from the later copy; with only the
#      first copy taught, H had none.
#   2. D's route to O goes through H (4 hops): H passed on the later copy; before, D
#      either had no route or one through H, who had none (a black hole).
#   3. A message from D reaches O.
# Everything made here (namespaces, processes) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_announce_copies.XXXXXX)
P=qc$$
PIDS=()
N=(o n1 n2 h d s)
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${N[@]/#/$P}"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    [ -n "${QPC_KEEP:-}" ] || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

it_netns_make "$P" "${N[@]}"
it_veth_link "${P}o" "${P}n1" von1 vn1o 10.217.1.1/24 10.217.1.2/24
it_veth_link "${P}n1" "${P}n2" vn1n2 vn2n1 10.217.2.1/24 10.217.2.2/24
it_veth_link "${P}n2" "${P}h" vn2h vhn2 10.217.3.1/24 10.217.3.2/24
it_veth_link "${P}h" "${P}d" vhd vdh 10.217.4.1/24 10.217.4.2/24
it_veth_link "${P}s" "${P}n1" vsn1 vn1s 10.217.5.1/24 10.217.5.2/24
it_veth_link "${P}s" "${P}h" vsh vhs 10.217.6.1/24 10.217.6.2/24

PORT=$(it_port_base 1)
ip netns exec "${P}s" $B/qpc-server --listen "0.0.0.0:$PORT" --data-dir "$T/s" --mdns-enabled=false \
    --metrics-listen= --federation-domain s.mesh.test >"$T/s.out" 2>"$T/s.err" &
PIDS+=($!)
it_wait_for "$T/s.out" '^connect: ' 20 || fail "the server did not start"

declare -A KEY
for n in o n1 n2 h d; do KEY[$n]=$($B/qpc --data-dir "$T/$n" identity); done
# A long interval: no periodic announce during the test, so what H and D know of O comes
# from the one announce O makes when its link comes up.
Q="--no-mdns --log-level info --announce-interval-s 300"
start() { # name static-peers [server]
    ip netns exec "$P$1" $B/qpc --data-dir "$T/$1" --listen "0.0.0.0:$PORT" $Q --peers "$2" \
        ${3:+--server "$3"} listen --json >>"$T/$1.out" 2>>"$T/$1.err" &
    PIDS+=($!)
}
wait_via() { # node dest hops via seconds
    for ((i = 0; i < $5 * 5; i++)); do [ "$(it_via_of "$1" "$2" "$3")" = "$4" ] && return 0; sleep 0.2; done
    return 1
}

start n1 "10.217.2.2:$PORT" "10.217.5.1:$PORT"
start n2 "10.217.3.2:$PORT"
start h "10.217.4.2:$PORT" "10.217.6.1:$PORT"
start d ""
# The chain and both sessions up before O comes: D's route to N2 is 2 hops through H, and
# N1 and H have each other through the server.
wait_via d "${KEY[n2]}" 2 "${KEY[h]}" 60 || fail "D has no route to N2 through H: '$(it_route_of d "${KEY[n2]}")'"
for ((i = 0; i < 300; i++)); do it_route_of h "${KEY[n1]}" | grep -q " server " && break; sleep 0.2; done
it_route_of h "${KEY[n1]}" | grep -q " server \| peer " || fail "H has no route to N1: '$(it_route_of h "${KEY[n1]}")'"
start o "10.217.1.2:$PORT"

wait_via h "${KEY[o]}" 3 "${KEY[n2]}" 30 ||
    fail "H has no 3-hop announced route to O through N2: '$(it_route_of h "${KEY[o]}")'"
echo "ok 1 H's route to O goes through N2 (3 hops), learned from a later copy of O's announce"
wait_via d "${KEY[o]}" 4 "${KEY[h]}" 30 ||
    fail "D has no 4-hop announced route to O through H: '$(it_route_of d "${KEY[o]}")'"
echo "ok 2 D's route to O goes through H (4 hops): H passed the later copy on"

rc=0
ip netns exec "${P}d" $B/qpc --data-dir "$T/d" --listen "0.0.0.0:0" --no-mdns \
    --peers "10.217.4.1:$PORT" --timeout 20 send "${KEY[o]}" "down the chain" \
    >"$T/d_send.out" 2>"$T/d_send.err" || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "D's send: exit $rc: $(cat "$T/d_send.out" "$T/d_send.err")"
it_wait_lines "$T/o.out" '"text":"down the chain"' 1 20 || fail "O did not get D's message"
echo "ok 3 a message from D reaches O (send exit $rc)"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_announce_copies"
