#!/usr/bin/env bash
# it_client_hostile.sh: what a hostile peer or a careless setup does to the client.
#   1. A peer writes 1,000 garbage frames in one burst on a P2P link: the client logs
#      a bounded number of lines (not one per frame), closes that link, and stays up
#      (a valid envelope on a new link is still acked OK).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_hostile.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; it_dump_logs 60 "$T"/*.out "$T"/*.err; exit 1; }
PORT=$(it_port_base 2)

# --- 1. garbage frames ----------------------------------------------------------------
CK=$($B/qpc --data-dir "$T/c" identity)
$B/qpc --data-dir "$T/c" --listen 127.0.0.1:$PORT --no-mdns listen --json >"$T/c.out" 2>"$T/c.err" &
CPID=$!; PIDS+=($CPID)
it_wait_for "$T/c.out" '"event":"listening"' 15 || fail "client did not listen"
rc=0; $B/qpc_p2p_inject 127.0.0.1:$PORT "$CK" garbage=1000 >"$T/g.out" 2>"$T/g.err" || rc=$?
[ $rc -eq 0 ] || fail "garbage: injector exit $rc (want 0: closed by the client)"
grep -q '^closed by peer: too many malformed frames$' "$T/g.out" || fail "link not closed for garbage"
sleep 0.5
lines=$(grep -c 'malformed' "$T/c.err" || true)
echo "garbage: 1000 frames sent, $lines log lines about them"
[ "$lines" -ge 1 ] || fail "garbage not logged at all"
[ "$lines" -le 3 ] || fail "$lines log lines for one peer's garbage (want at most 3)"
grep -q 'malformed frames within 60 s; closing it' "$T/c.err" || fail "no line says the link was closed"
kill -0 $CPID 2>/dev/null || fail "client died"
$B/qpc_p2p_inject 127.0.0.1:$PORT "$CK" valid >"$T/v.out" 2>"$T/v.err" || fail "valid after garbage"
grep -q '^ack valid 0$' "$T/v.out" || fail "valid envelope after garbage not acked OK"
echo "ok 1 garbage frames: bounded log, link closed, client up"
