#!/usr/bin/env bash
# it_server_damaged_queue.sh: a node does not start on a queue database it cannot trust.
#
#   - queue.db of 0 bytes (it lost whatever it held): refused with exit 1 and a message
#     naming the file, not taken for a new, empty queue;
#   - queue.db with damaged pages: the integrity check at start refuses it with exit 1,
#     a message naming the file and saying how to recover it; the file is left as it was.
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

run_server() {   # run_server: start; 0 once it serves, else its exit status
    : >"$TMP/server.out"
    HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
        --metrics-listen= >"$TMP/server.out" 2>"$TMP/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        grep -q '^connect: ' "$TMP/server.out" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    return $rc
}

# --- a 0-byte database --------------------------------------------------------------------
mkdir -p "$TMP/data" && chmod 700 "$TMP/data"
: >"$TMP/data/queue.db"
rc=0; run_server || rc=$?
[ $rc -eq 1 ] || fail "the node started on an empty queue.db (exit $rc)"
grep -q "$TMP/data/queue.db: the file is empty (0 bytes)" "$TMP/server.err" \
    || fail "no message naming the empty file: $(cat "$TMP/server.err")"
[ ! -s "$TMP/data/queue.db" ] || fail "the empty file was turned into a database"
echo "ok: a 0-byte queue.db is refused, naming the file"

# --- damaged pages ---------------------------------------------------------------------------
rm -f "$TMP/data/queue.db"
run_server || fail "server did not start on a fresh queue"
BOB=$("$TC" -i "$TMP/bob.json" id)
timeout 60 "$TC" -S 127.0.0.1:$PORT -i "$TMP/alice.json" send "$BOB" 300 -b 100 -z 3000 \
    >"$TMP/send.out" || fail "send"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server did not exit 0"; SERVER_PID=
SIZE=$(stat -c %s "$TMP/data/queue.db")
PAGES=$((SIZE / 4096))
[ "$PAGES" -gt 64 ] || fail "queue.db has only $PAGES pages"
head -c $((PAGES / 5 * 4096)) /dev/zero | tr '\0' '\245' | \
    dd of="$TMP/data/queue.db" bs=4096 seek=$((PAGES * 2 / 5)) conv=notrunc status=none
SUM=$(sha256sum <"$TMP/data/queue.db")
rc=0; run_server || rc=$?
[ $rc -eq 1 ] || fail "the node started on a damaged queue.db (exit $rc)"
grep -q "$TMP/data/queue.db: the database is damaged" "$TMP/server.err" \
    || fail "no message naming the damaged file: $(cat "$TMP/server.err")"
grep -q 'recover' "$TMP/server.err" || fail "the message does not say what to do"
[ "$(sha256sum <"$TMP/data/queue.db")" = "$SUM" ] || fail "the damaged file was changed"
echo "ok: a queue.db with damaged pages is refused at start, naming the file and the way out"
echo PASS
