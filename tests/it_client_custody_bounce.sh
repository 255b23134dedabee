#!/usr/bin/env bash
# it_client_custody_bounce.sh: a forwarded message that comes back to the node that
# handed it on is held again, never dropped by everyone (docs/client.md, forwarding
# custody; docs/mesh_lab.md, the y3/y4 finding).
#
#   J1, J2: qpc_p2p_inject peers of node B (loopback); R: a peer that is not running yet.
#   1. J1 sends B a message signed by R (hop0-from): B learns "R via J1".
#   2. J2 sends B a message for R: B holds it, acks J2 DEFERRED (J2 forgets it) and
#      hands it to J1, its route toward R. J1 acks DEFERRED (a hand-over: B forgets its
#      copy) and sends the very envelope back to B, as a neighbour whose route to R leads
#      back through B would. J1 then goes away.
#   3. R starts and links to B: R must show the message. Before this rule B acked the
#      copy that came back DEFERRED without holding it ("seen"), so no one held it any
#      more and R never got it.
# Everything made here is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_custody_bounce.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; it_dump_logs 40 "$T"/*.out "$T"/*.err; exit 1; }
PORT=$(it_port_base 2)
PB=$PORT; PR=$((PORT + 1))

BK=$($B/qpc --data-dir "$T/b" identity)
RK=$($B/qpc --data-dir "$T/r" identity)
$B/qpc --data-dir "$T/b" --listen 127.0.0.1:$PB --no-mdns --log-level debug listen --json >"$T/b.out" 2>"$T/b.err" &
PIDS+=($!)
it_wait_for "$T/b.out" '"event":"listening"' 15 || fail "B did not listen"

# 1 and 2: J1 is B's way to R, and bounces what B hands it.
$B/qpc_p2p_inject 127.0.0.1:$PB "$BK" "hop0-from=$T/r/identity.json" bounce >"$T/j1.out" 2>"$T/j1.err" &
J1=$!; PIDS+=($J1)
it_wait_for "$T/j1.out" '^ack hop0-from' 15 || fail "J1's message from R not acked"
rc=0; $B/qpc_p2p_inject 127.0.0.1:$PB "$BK" "for=$T/r/identity.json" >"$T/j2.out" 2>"$T/j2.err" || rc=$?
[ $rc -eq 0 ] || fail "J2: injector exit $rc"
echo "J2's message for R: $(cat "$T/j2.out")"
rc=0; wait $J1 || rc=$?
[ $rc -eq 0 ] || fail "J1: injector exit $rc (B never handed it the message, or no ack for the copy sent back)"
grep -q '^bounced ' "$T/j1.out" || fail "J1 got nothing to send back"
echo "J1: $(tr '\n' ' ' <"$T/j1.out")"

# 3: the one copy left must be B's.
$B/qpc --data-dir "$T/r" --listen 127.0.0.1:$PR --no-mdns --peers 127.0.0.1:$PB --timeout 20 \
    listen --json --count 1 >"$T/r.out" 2>"$T/r.err" || true
grep -q 'inject for' "$T/r.out" || fail "R never got the message: the copy J1 sent back to B was dropped by everyone"
echo "R got the message that came back to B"
