#!/usr/bin/env bash
# it_mesh_bcast_copies.sh: a broadcast whose first copy came the long way round and
# stopped at its hop limit still reaches the nodes beyond, by a later, shorter copy.
#
#   S - L1 - L2 - A - B - C, a chain of veths (one /24 each, no IP forwarding), and a
#   qpc-server V with a veth to A and one to W: A and W are V's clients, W has no link.
#   M, started later, has a veth to S and one to A: the short way. Static peers, no mDNS.
#   S broadcasts with max_hops 3 before M is there: the copy reaches A at hop 2, B at hop
#   3 (its limit), and V at hop 3 from A (its limit too). C and W do not get it.
#   1. A and B show it; C and W, a while later, still have not.
#   2. M comes: S hands it its live broadcast (hop 0), M passes it to A (hop 1). A had it
#      at hop 2, so this copy goes on, to B (hop 2, which had it at 3: on to C) and to V
#      (hop 2, which had it at 3: on to W). C and W show it. Before, every later copy was
#      a duplicate and C and W never got it.
#   3. Each of A, B, C, M and W showed it exactly once; V counted one later copy.
# Everything made here (namespaces, processes) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_bcast_copies.XXXXXX)
P=qb$$
PIDS=()
N=(s l1 l2 a b c m v w)
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
it_veth_link "${P}s" "${P}l1" vsl1 vl1s 10.218.1.1/24 10.218.1.2/24
it_veth_link "${P}l1" "${P}l2" vl1l2 vl2l1 10.218.2.1/24 10.218.2.2/24
it_veth_link "${P}l2" "${P}a" vl2a val2 10.218.3.1/24 10.218.3.2/24
it_veth_link "${P}a" "${P}b" vab vba 10.218.4.1/24 10.218.4.2/24
it_veth_link "${P}b" "${P}c" vbc vcb 10.218.5.1/24 10.218.5.2/24
it_veth_link "${P}m" "${P}s" vms vsm 10.218.6.1/24 10.218.6.2/24
it_veth_link "${P}m" "${P}a" vma vam 10.218.7.1/24 10.218.7.2/24
it_veth_link "${P}v" "${P}a" vva vav 10.218.8.1/24 10.218.8.2/24
it_veth_link "${P}v" "${P}w" vvw vwv 10.218.9.1/24 10.218.9.2/24

PORT=$(it_port_base 2)
MPORT=$((PORT + 1))
ip netns exec "${P}v" $B/qpc-server --listen "0.0.0.0:$PORT" --data-dir "$T/v" --mdns-enabled=false \
    --metrics-listen="127.0.0.1:$MPORT" --federation-domain v.mesh.test >"$T/v.out" 2>"$T/v.err" &
PIDS+=($!)
it_wait_for "$T/v.out" '^connect: ' 20 || fail "the server did not start"

declare -A KEY
for n in s l1 l2 a b c m w; do
    KEY[$n]=$($B/qpc --data-dir "$T/$n" identity)
    [ $n = s ] || $B/qpc --data-dir "$T/$n" subscribe news >/dev/null
done
Q="--no-mdns --log-level info"
start() { # name static-peers [server]
    ip netns exec "$P$1" $B/qpc --data-dir "$T/$1" --listen "0.0.0.0:$PORT" $Q --peers "$2" \
        ${3:+--server "$3"} listen --json >>"$T/$1.out" 2>>"$T/$1.err" &
    PIDS+=($!)
}
shown() { grep -c '"text":"one for all"' "$T/$1.out" 2>/dev/null || true; }
metric() { ip netns exec "${P}v" curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# S: the REPL reading the pipe $T/s.in (held open on fd 7: the REPL ends only at /quit).
mkfifo "$T/s.in"
ip netns exec "${P}s" $B/qpc --data-dir "$T/s" --listen "0.0.0.0:$PORT" $Q --max-hops 3 \
    --peers "10.218.1.2:$PORT" repl <"$T/s.in" >>"$T/s.out" 2>>"$T/s.err" &
PIDS+=($!)
exec 7>"$T/s.in"
start l1 "10.218.2.2:$PORT"
start l2 "10.218.3.2:$PORT"
start a "10.218.4.2:$PORT" "10.218.8.1:$PORT"
start b "10.218.5.2:$PORT"
start c ""
start w "" "10.218.9.1:$PORT"
it_wait_for "$T/a.out" 'connected to server' 20 || fail "A did not connect to V"
it_wait_for "$T/w.out" 'connected to server' 20 || fail "W did not connect to V"
# The chain up end to end: S has an announced route to C, 5 hops.
for ((i = 0; i < 300; i++)); do [ -n "$(it_via_of s "${KEY[c]}" 5)" ] && break; sleep 0.2; done
[ -n "$(it_via_of s "${KEY[c]}" 5)" ] || fail "S has no 5-hop route to C: '$(it_route_of s "${KEY[c]}")'"

echo "/mesh broadcast news one for all" >&7
it_wait_lines "$T/b.out" '"text":"one for all"' 1 20 || fail "B did not show the broadcast"
[ "$(shown a)" -eq 1 ] || fail "A showed it $(shown a) times"
sleep 3   # what could still come to C and W comes at once: nothing is held back for them
[ "$(shown c)" -eq 0 ] || fail "C showed it: the first copy did not stop at its limit at B"
[ "$(shown w)" -eq 0 ] || fail "W showed it: the first copy did not stop at its limit at V"
echo "ok 1 the first copy stopped at its hop limit: A and B show it, C and W do not"

start m "10.218.6.2:$PORT,10.218.7.2:$PORT"
it_wait_lines "$T/c.out" '"text":"one for all"' 1 30 || fail "C did not get the shorter copy"
it_wait_lines "$T/w.out" '"text":"one for all"' 1 30 || fail "W did not get the shorter copy through V"
echo "ok 2 M came: the shorter copy went on from A, to C (through B) and to W (through V)"

sleep 2   # any copy still on its way
for n in a b c m w; do [ "$(shown $n)" -eq 1 ] || fail "${n^^} showed it $(shown $n) times"; done
later=$(metric qpc_broadcasts_later_copies_total)
[ "${later:-0}" -ge 1 ] || fail "V counted no later copy: '$later'"
echo "ok 3 each node showed it once; V passed on $later later copy"

echo "/quit" >&7
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_bcast_copies"
