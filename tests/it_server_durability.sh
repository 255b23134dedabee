#!/usr/bin/env bash
# it_server_durability.sh: kill -9 of the node in the middle of a 10,000-message enqueue
# load, then restart: every enqueue the node acknowledged is fetched, and no envelope is
# fetched twice.
#
# The sender prints "ok INDEX ID STATUS" for each answer the moment it arrives, so the
# file holds exactly what the node acknowledged before it died. Items in flight at the
# kill may or may not be stored (their answer was lost): they may appear in the fetch,
# but only once, and only envelopes that were sent (a client that retries them sends
# the same envelope id; the node stores it once and the recipient dedups by id).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
PORT=$(it_port_base 4)
SERVER_PID=
SENDER_PID=
TOTAL=10000

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $SERVER_PID $SENDER_PID
    [ $rc -eq 0 ] || it_dump_logs 20 "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

start_server() {
    # emptied here, not by the background redirection: that runs later, so a wait could
    # still see the previous start's "connect:" line
    : >"$TMP/server.out"
    HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
        --metrics-listen= --queue-quota=100000 >"$TMP/server.out" 2>>"$TMP/server.err" &
    SERVER_PID=$!
    it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"
}

start_server
BOB=$("$TC" -i "$TMP/bob.json" id)

# Single enqueues, a window of 4 in flight: many small group commits, so the kill lands
# between commits, inside one, or between a commit and its answers.
timeout 120 "$TC" -S 127.0.0.1:$PORT -i "$TMP/alice.json" send "$BOB" $TOTAL -w 4 \
    >"$TMP/send.out" 2>"$TMP/send.err" &
SENDER_PID=$!
for ((i = 0; i < 3000; i++)); do
    n=$(grep -c '^ok ' "$TMP/send.out" 2>/dev/null || true)
    [ "${n:-0}" -ge 2500 ] && break
    sleep 0.01
done
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
# The sender would wait for answers that never come; its output is flushed per answer.
it_kill_all KILL "$SENDER_PID"
SENDER_PID=
ACKED=$(grep -c ' OK$' "$TMP/send.out" || true)
grep -q '^summary' "$TMP/send.out" && fail "the load finished before the kill: nothing was tested"
[ "$ACKED" -ge 1 ] && [ "$ACKED" -lt $TOTAL ] || fail "unexpected acked count $ACKED"
echo "ok: node killed with -9 after $ACKED of $TOTAL enqueues were acknowledged"

start_server
timeout 120 "$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" fetch -p 1000 >"$TMP/fetch.out" 2>"$TMP/fetch.err" \
    || fail "fetch after restart failed"
awk '/ OK$/{print $3}' "$TMP/send.out" | sort >"$TMP/acked.ids"
awk '/^ok /{print $3}' "$TMP/send.out" | sort >"$TMP/answered.ids"
awk '/^msg /{print $3}' "$TMP/fetch.out" | sort >"$TMP/fetched.ids"
FETCHED=$(wc -l <"$TMP/fetched.ids")
MISSING=$(comm -23 "$TMP/acked.ids" "$TMP/fetched.ids" | wc -l)
DUPS=$(uniq -d "$TMP/fetched.ids" | wc -l)
[ "$MISSING" -eq 0 ] || fail "$MISSING acknowledged envelope(s) lost"
[ "$DUPS" -eq 0 ] || fail "$DUPS envelope(s) fetched twice"
# Whatever else came back was in flight at the kill: committed, answer lost. At most the
# window (4) of them.
EXTRA=$((FETCHED - ACKED))
[ "$EXTRA" -ge 0 ] && [ "$EXTRA" -le 4 ] || fail "$EXTRA unacknowledged envelopes stored (window is 4)"
echo "ok: after restart all $ACKED acknowledged envelopes are fetched once ($EXTRA in flight at the kill also stored), none twice"

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "server did not exit 0"
SERVER_PID=
echo PASS
