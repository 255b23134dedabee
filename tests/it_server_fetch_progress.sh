#!/usr/bin/env bash
# it_server_fetch_progress.sh: a fetch always makes progress, whatever the envelope size.
#
#   - settings that let an envelope fill a whole frame (max_envelope_size too close to
#     max_frame_size) are refused with exit 2 and a message naming both keys;
#   - an envelope of exactly max_envelope_size, above the old page budget, is fetched
#     in a page of its own, and the messages behind it follow (it used to be answered
#     "no items, more" for ever);
#   - an envelope queued while max_frame_size was larger, which no frame can carry
#     now, is skipped with an error line and does not hold up the messages behind it.
# Loopback only; mDNS off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
PORT=$(it_port_base 4)
SERVER_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $SERVER_PID
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

start_server() {   # start_server EXTRA-FLAGS...
    : >"$TMP/server.out"
    HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
        --metrics-listen= "$@" >"$TMP/server.out" 2>>"$TMP/server.err" &
    SERVER_PID=$!
    it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || fail "server did not exit 0 after SIGTERM"
    SERVER_PID=
}

tc() { timeout 60 "$TC" -S 127.0.0.1:$PORT "$@"; }

# --- the settings ---------------------------------------------------------------------
rc=0
"$SRV" --data-dir="$TMP/data" --max-frame-size=1048576 --max-envelope-size=1048576 \
    --check-config >/dev/null 2>"$TMP/check.err" || rc=$?
[ $rc -eq 2 ] || fail "max_envelope_size = max_frame_size accepted (exit $rc)"
grep -q "max_envelope_size (1048576) must be at least 1024 bytes below max_frame_size (1048576)" \
    "$TMP/check.err" || fail "the refusal does not name both keys: $(cat "$TMP/check.err")"
"$SRV" --data-dir="$TMP/data" --max-frame-size=1048576 --max-envelope-size=1047552 \
    --check-config >/dev/null 2>&1 || fail "max_envelope_size 1024 below the frame refused"
echo "ok: an envelope size that would fill a frame is refused, naming both keys"

# --- the largest envelope accepted is fetched -------------------------------------------
start_server --max-frame-size=1048576 --max-envelope-size=1047552
BOB=$("$TC" -i "$TMP/bob.json" id)
tc -i "$TMP/alice.json" send "$BOB" 1 -Z 1047552 >"$TMP/big.out" || fail "big send"
grep -q '^ok 0 [0-9a-f]* OK$' "$TMP/big.out" || fail "envelope of max_envelope_size not accepted"
BIG_ID=$(awk '/^ok 0/ {print $3}' "$TMP/big.out")
tc -i "$TMP/alice.json" send "$BOB" 2 >"$TMP/small.out" || fail "small send"
tc -i "$TMP/bob.json" fetch -a >"$TMP/fetch1.out" || fail "fetch did not complete (livelock?)"
grep -q "^msg [0-9]* $BIG_ID m0xxx" "$TMP/fetch1.out" || fail "the big envelope was not fetched"
grep -q '^fetched 3$' "$TMP/fetch1.out" || fail "the messages behind it were not fetched"
echo "ok: an envelope of max_envelope_size is fetched in a page of its own, the rest follow"

# --- an envelope no frame can carry any more ---------------------------------------------
tc -i "$TMP/alice.json" send "$BOB" 1 -Z 1047552 >"$TMP/big2.out" || fail "big send"
tc -i "$TMP/alice.json" send "$BOB" 1 >"$TMP/small2.out" || fail "small send"
SMALL_ID=$(awk '/^ok 0/ {print $3}' "$TMP/small2.out")
stop_server
start_server --max-frame-size=524288 --max-envelope-size=523264
tc -i "$TMP/bob.json" fetch >"$TMP/fetch2.out" || fail "fetch did not complete"
grep -q "^msg [0-9]* $SMALL_ID " "$TMP/fetch2.out" || fail "the message behind the big one was held up"
grep -q '^fetched 1$' "$TMP/fetch2.out" || fail "fetch returned something else"
it_wait_for "$TMP/server.err" 'larger than a frame can carry' 5 \
    || fail "no error line for the envelope that cannot be carried"
echo "ok: an envelope too big for the current frame is skipped with an error line"

stop_server
echo PASS
