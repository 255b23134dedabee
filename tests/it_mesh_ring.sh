#!/usr/bin/env bash
# it_mesh_ring.sh: announced routes on a ring of four namespaces, and what happens when a
# node of it leaves.
#
#   A - B - C - D - A, one veth subnet per edge, no IP forwarding, no server, no mDNS:
#   every pair of neighbours is linked by static peers; A and C share no link.
#   1. A's route to C is 2 hops, through B or D, learned from C's announces (the
#      feasibility condition lets either in; the first kept stays while it is fresh).
#   2. The neighbour A goes through leaves: A's route to C moves to the other neighbour
#      (2 hops still, not retracted) once C's next announce comes round that way; the
#      time it took is printed, not asserted. A message from A to C then arrives.
# Everything made here (namespaces, processes) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_ring.XXXXXX)
P=qr$$
PIDS=()
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${P}a" "${P}b" "${P}c" "${P}d"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

it_ring_make "$P" 10.214 a b c d

PORT=$(it_port_base 1)
Q="--no-mdns --log-level info --announce-interval-s 2"
declare -A KEY
for n in a b c d; do KEY[$n]=$($B/qpc --data-dir "$T/$n" identity); done
start() { # name static-peers
    ip netns exec "$P$1" $B/qpc --data-dir "$T/$1" --listen "0.0.0.0:$PORT" $Q --peers "$2" \
        listen --json >>"$T/$1.out" 2>>"$T/$1.err" &
    PIDS+=($!)
    eval "PID_$1=$!"
}
start a "10.214.1.2:$PORT,10.214.4.1:$PORT"
start b "10.214.2.2:$PORT"
start c "10.214.3.2:$PORT"
start d ""

via=""
for ((i = 0; i < 150; i++)); do via=$(it_via_of a "${KEY[c]}" 2); [ -n "$via" ] && break; sleep 0.2; done
[ -n "$via" ] || fail "A has no 2-hop announced route to C: '$(it_route_of a "${KEY[c]}")'"
if [ "$via" = "${KEY[b]}" ]; then gone=b; other=d; else gone=d; other=b; fi
[ "$via" = "${KEY[$gone]}" ] || fail "A's route to C goes through neither neighbour: $via"
echo "ok 1 A's route to C: 2 hops through ${gone^^}"

v="PID_$gone"
kill -TERM "${!v}"; wait "${!v}" 2>/dev/null || true
t0=$(date +%s%N)
now=""
for ((i = 0; i < 300; i++)); do now=$(it_via_of a "${KEY[c]}" 2); [ "$now" = "${KEY[$other]}" ] && break; sleep 0.1; done
t1=$(date +%s%N)
[ "$now" = "${KEY[$other]}" ] || fail "A's route to C did not move to ${other^^}: '$(it_route_of a "${KEY[c]}")'"
echo "# route to C moved from ${gone^^} to ${other^^} within $(( (t1 - t0) / 1000000 )) ms of ${gone^^} stopping" \
     "(announce interval 2 s, routes.db written at most every 5 s)"
rc=0
ip netns exec "${P}a" $B/qpc --data-dir "$T/a" --listen "0.0.0.0:0" --no-mdns \
    --peers "10.214.1.2:$PORT,10.214.4.1:$PORT" --timeout 20 send "${KEY[c]}" "around the ring" \
    >"$T/a_send.out" 2>"$T/a_send.err" || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "A's send: exit $rc: $(cat "$T/a_send.out" "$T/a_send.err")"
it_wait_lines "$T/c.out" '"text":"around the ring"' 1 20 || fail "C did not get A's message"
echo "ok 2 ${gone^^} left: A's route to C goes through ${other^^}; a message arrives (send exit $rc)"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_ring"
