#!/usr/bin/env bash
# it_mesh_seqreq.sh: a route heals through a longer way at once when a link is cut, by a
# seqno request, not at the origin's next periodic announce.
#
#   A - B - C - D - E - A, a ring of five namespaces, one veth subnet per edge, no IP
#   forwarding, no server, no mDNS, static peers along the ring, announce interval 120 s.
#   1. A's route to C is 2 hops through B (E joins last, and the A-E edge comes up only
#      once E has C's announce: the copy E then gives A is 3 hops and loses to B's).
#   2. The A-B veth goes down. Once A has retracted its route to C (its link to B timed
#      out), the only other way, through E (3 hops), is unfeasible at the seqno A has,
#      so without a seqno request A would wait up to 120 s for C's next announce. With
#      it (A asks E, E asks D, D asks C, C announces anew), A's route to C goes through
#      E within HEAL_S = 20 s of the retraction being seen (routes.db is written at most
#      every 5 s); the time is printed. A message from A to C then arrives.
# Everything made here (namespaces, processes) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_seqreq.XXXXXX)
P=qs$$
PIDS=()
N=(a b c d e)
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${P}a" "${P}b" "${P}c" "${P}d" "${P}e"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    [ -n "${QPC_KEEP:-}" ] || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

it_ring_make "$P" 10.216 "${N[@]}"

PORT=$(it_port_base 1)
INTERVAL=120
HEAL_S=20
Q="--no-mdns --log-level info --announce-interval-s $INTERVAL"
declare -A KEY
for n in "${N[@]}"; do KEY[$n]=$($B/qpc --data-dir "$T/$n" identity); done
start() { # name static-peers
    ip netns exec "$P$1" $B/qpc --data-dir "$T/$1" --listen "0.0.0.0:$PORT" $Q --peers "$2" \
        listen --json >>"$T/$1.out" 2>>"$T/$1.err" &
    PIDS+=($!)
}
# E starts last and dials A and D: A's route to C is then the 2-hop one through B.
start a "10.216.1.2:$PORT"
start b "10.216.2.2:$PORT"
start c "10.216.3.2:$PORT"
start d ""

via=""
for ((i = 0; i < 300; i++)); do via=$(it_via_of a "${KEY[c]}" 2); [ "$via" = "${KEY[b]}" ] && break; sleep 0.2; done
[ "$via" = "${KEY[b]}" ] || fail "A has no 2-hop announced route to C through B: '$(it_route_of a "${KEY[c]}")'"
# ... and the A-E edge comes up only once E's route to C is the 2-hop one through D, so
# that a request from A finds at E a way on that is not back through A.
ip -n "${P}a" link set vae down; ip -n "${P}e" link set vea down
start e "10.216.4.1:$PORT,10.216.5.2:$PORT"
for ((i = 0; i < 300; i++)); do [ "$(it_via_of e "${KEY[c]}" 2)" = "${KEY[d]}" ] && break; sleep 0.2; done
[ "$(it_via_of e "${KEY[c]}" 2)" = "${KEY[d]}" ] || fail "E has no 2-hop route to C through D: '$(it_route_of e "${KEY[c]}")'"
ip -n "${P}a" link set vae up; ip -n "${P}e" link set vea up
up=""
for ((i = 0; i < 300; i++)); do
    up=$(it_route_of a "${KEY[e]}" | awk '$4 == "1" && NF == 7 {print "y"}'); [ -n "$up" ] && break; sleep 0.2
done
[ -n "$up" ] || fail "A has no link to E: '$(it_route_of a "${KEY[e]}")'"
[ "$(it_via_of a "${KEY[c]}" 2)" = "${KEY[b]}" ] || fail "A's route to C moved off B: '$(it_route_of a "${KEY[c]}")'"
echo "ok 1 A's route to C: 2 hops through B; E joined the ring"

ip -n "${P}a" link set vab down
t0=$(date +%s%N)
gone=""
for ((i = 0; i < 900; i++)); do
    [ "$(it_via_of a "${KEY[c]}" 2)" = "${KEY[b]}" ] || { gone=1; break; }
    sleep 0.1
done
[ -n "$gone" ] || fail "A still routes to C through B 90 s after the A-B link went down"
t1=$(date +%s%N)
now=""
for ((i = 0; i < HEAL_S * 10; i++)); do now=$(it_via_of a "${KEY[c]}" 3); [ "$now" = "${KEY[e]}" ] && break; sleep 0.1; done
t2=$(date +%s%N)
[ "$now" = "${KEY[e]}" ] || fail "A's route to C did not move to E within $HEAL_S s (interval $INTERVAL s): '$(it_route_of a "${KEY[c]}")'"
echo "# A-B down: route through B left after $(( (t1 - t0) / 1000000 )) ms, route through E (3 hops)" \
     "$(( (t2 - t1) / 1000000 )) ms later (announce interval $INTERVAL s)"
echo "ok 2 the A-B link went down: A's route to C goes through E (3 hops) within $HEAL_S s"
rc=0
ip netns exec "${P}a" $B/qpc --data-dir "$T/a" --listen "0.0.0.0:0" --no-mdns \
    --peers "10.216.5.1:$PORT" --timeout 20 send "${KEY[c]}" "the other way round" \
    >"$T/a_send.out" 2>"$T/a_send.err" || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "A's send: exit $rc: $(cat "$T/a_send.out" "$T/a_send.err")"
it_wait_lines "$T/c.out" '"text":"the other way round"' 1 20 || fail "C did not get A's message"
echo "ok 3 a message from A reaches C the other way (send exit $rc)"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_seqreq"
