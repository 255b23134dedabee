#!/usr/bin/env bash
# it_paths_bounds.sh: what strangers can make a node do with punch notices (loopback).
#
#   40 clients with fresh keys each register 8 candidates pointing at a victim's ports
#   and ask the node to punch b. b answers a stranger's punch only within its budget
#   (src/client/punch.h: 4 at once and 2 a second for strangers, at most 4 targets each,
#   at most 32 stranger peer states), so the victim sees a few hundred packets at most
#   instead of thousands; b writes at most one line about it; none of the strangers ends
#   up in b's saved peer directory; and a real contact still reaches b at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
SRC=$(dirname "${BASH_SOURCE[0]}")
T=$(mktemp -d /tmp/it_paths_bounds.XXXXXX)
PORT=$(it_port_base 110)   # the node's port, and the victim's 8 at +100
VP=$((PORT + 100))
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

$B/qpc-server --data-dir "$T/srv" --listen 127.0.0.1:$PORT --mdns-enabled=false --metrics-listen= \
    >"$T/srv.out" 2>"$T/srv.err" &
PIDS+=($!)
it_wait_for "$T/srv.out" '^connect: ' 20 || fail "server did not start"
BK=$($B/qpc --data-dir "$T/b" identity)
$B/qpc --data-dir "$T/b" --listen 127.0.0.1:0 --no-mdns --server 127.0.0.1:$PORT --log-level info \
    listen --json >"$T/b.out" 2>"$T/b.err" &
BPID=$!
PIDS+=($BPID)
it_wait_lines "$T/b.out" '"connected to server' 1 || fail "b did not connect"

# the victim: 8 ports that count what arrives for 4 seconds
victims=()
for i in 0 1 2 3 4 5 6 7; do victims+=("127.0.0.1:$((VP + i))"); done
python3 "$SRC/lib/lab_udp.py" count 127.0.0.1 $(seq $VP $((VP + 7))) 4 >"$T/victim.out" &
VPID=$!
PIDS+=($VPID)
sleep 0.2
for i in $(seq 40); do
    timeout 10 $B/qpc_testclient -i "$T/stranger$i.json" -S 127.0.0.1:$PORT punch "$BK" "${victims[@]}" \
        >"$T/stranger$i.out" 2>&1 || fail "stranger $i: testclient failed"
done
grep -q '^status OK' "$T/stranger1.out" || fail "the node refused a first punch request"
wait $VPID || true
got=$(cat "$T/victim.out")
# allowed: (4 + 2/s * 4 s) attempts, 3 victim targets each (the first is the stranger's own
# address), an Initial and its retransmissions (7 at most in 4 s) per target
[ "$got" -le $(((4 + 2 * 4) * 3 * 7)) ] || fail "the victim got $got packets"
lines=$(grep -c "refused by the punch limits" "$T/b.err" || true)
[ "$lines" -le 1 ] || fail "b logged $lines lines about refused punches"
echo "ok 1 40 strangers' punch notices: $got packets to the victim, $lines log line"

# a real contact is not crowded out: a direct send to b goes through at once
AK=$($B/qpc --data-dir "$T/a" identity)
out=$($B/qpc --data-dir "$T/a" --listen 127.0.0.1:0 --no-mdns --server 127.0.0.1:$PORT send "$BK" "still here" 2>"$T/a.err") ||
    fail "a's send: $out"
echo "$out" | grep -q "delivered [0-9a-f]\{12\} to ${BK:0:12} (1 hop, via direct link," || fail "a's send: $out"
echo "ok 2 a contact still reaches b direct"

kill $BPID; wait $BPID 2>/dev/null || true
n=$($B/qpc --data-dir "$T/b" peer list | grep -vc "^$AK " || true)
[ "$n" -eq 0 ] || fail "$n strangers were saved in b's peer directory"
echo "ok 3 no stranger in b's saved peer directory"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_paths_bounds"
