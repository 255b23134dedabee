#!/usr/bin/env bash
# it_server_push_before_sync.sh: a push does not wait for the disk, a sender's answer
# does, and a crash between the two loses nothing that was acknowledged.
#
# The node runs with tests/preload/hold_sync.so: while $HOLD exists, every fsync of its
# WAL waits. So the test holds a commit between "written" and "durable" as long as it
# needs, with no timing in it:
#   1. hold on, alice sends m1: bob (listening for pushes) gets m1's push while the
#      fsync is still held, and alice has no answer yet; hold off: alice gets OK.
#   2. hold on, alice sends m2: bob gets m2's push, alice no answer; kill -9 of the node
#      with the fsync still held; restart: m1 (acknowledged) is queued, nothing is queued
#      twice, and every copy bob has seen of a message carries that message's envelope
#      id, so the client's dedup set (ids, docs/client.md) shows each one once. m2 was
#      never acknowledged: whether it was kept or not, its sender still has it to resend.
#   3. the WAL's fsync fails (EIO from the shim): alice is answered INTERNAL, not OK, and
#      the node refuses writes from then on (a failed fsync may have dropped pages).
# With the fsync in the commit on the node's loop (before this change) the push of step
# 1 never comes while the fsync is held, and the test fails there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
SHIM=$BUILD/hold_sync.so
TMP=$(mktemp -d)
PORT=$(it_port_base 4)
HOLD=$TMP/hold
SERVER_PID=
BOB_PID=
SEND_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    rm -f "$HOLD"
    it_kill_all KILL $SERVER_PID $BOB_PID $SEND_PID
    [ $rc -eq 0 ] || it_dump_logs 20 "$TMP"/*.err "$TMP"/*.out
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

[ -f "$SHIM" ] || fail "$SHIM not built"

start_server() {
    : >"$TMP/server.out"
    # An ASan build's runtime is not first in the list when the shim is preloaded.
    HOME=$TMP LD_PRELOAD=$SHIM QPC_HOLD_SYNC=$HOLD \
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
        --metrics-listen= >"$TMP/server.out" 2>>"$TMP/server.err" &
    SERVER_PID=$!
    it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"
}

# wait_file PATH: up to 30 s for PATH to exist (the shim makes $HOLD.held when it holds).
wait_file() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# send NAME: alice sends one envelope to bob in the background, answers in NAME.out.
send() {
    "$TC" -S 127.0.0.1:$PORT -i "$TMP/alice.json" send "$BOB" 1 \
        >"$TMP/$1.out" 2>"$TMP/$1.err" &
    SEND_PID=$!
}

start_server
BOB=$("$TC" -i "$TMP/bob.json" id)
"$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" listen 2 -T 120 >"$TMP/bob.out" 2>"$TMP/bob.err" &
BOB_PID=$!
it_wait_for "$TMP/bob.out" '^ready' 20 || fail "bob could not listen"

# --- 1. the push comes while the fsync is held; the answer only after it ------------------
touch "$HOLD"
send m1
it_wait_for "$TMP/bob.out" '^push ' 30 ||
    fail "no push while the fsync of its commit was held: the push waited for the disk"
wait_file "$HOLD.held" || fail "no fsync of the WAL was held (is the shim preloaded?)"
grep -q '^ok ' "$TMP/m1.out" && fail "alice was answered before m1 was durable: $(cat "$TMP/m1.out")"
M1=$(awk '/^push /{print $3; exit}' "$TMP/bob.out")
rm -f "$HOLD" "$HOLD.held"
it_wait_for "$TMP/m1.out" '^ok 0 [0-9a-f]+ OK$' 30 || fail "no OK for m1 once its fsync was done"
[ "$(awk '/^ok /{print $3}' "$TMP/m1.out")" = "$M1" ] || fail "pushed id is not m1's"
wait "$SEND_PID" || fail "alice's first send failed"
SEND_PID=

# --- 2. kill -9 between the push and the fsync -------------------------------------------
touch "$HOLD"
send m2
for ((i = 0; i < 300; i++)); do
    [ "$(grep -c '^push ' "$TMP/bob.out")" -ge 2 ] && break
    sleep 0.1
done
[ "$(grep -c '^push ' "$TMP/bob.out")" -ge 2 ] || fail "no push of m2 while its fsync was held"
wait_file "$HOLD.held" || fail "m2's fsync was not held"
grep -q '^ok ' "$TMP/m2.out" && fail "alice was answered before m2 was durable"
M2=$(awk '/^push /{n++; if (n == 2) print $3}' "$TMP/bob.out")
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
grep -q '^ok ' "$TMP/m2.out" && fail "alice got an answer for m2 although its fsync never ended"
it_kill_all KILL $SEND_PID   # it would wait for an answer that cannot come now
SEND_PID=
wait "$BOB_PID" 2>/dev/null || true
BOB_PID=
rm -f "$HOLD" "$HOLD.held"

start_server
"$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" fetch >"$TMP/fetch.out" 2>"$TMP/fetch.err" ||
    fail "fetch after the restart failed"
grep -q "^msg [0-9]* $M1 " "$TMP/fetch.out" || fail "acknowledged m1 lost in the crash"
DUP=$(awk '/^msg /{print $3}' "$TMP/fetch.out" | sort | uniq -d)
[ -z "$DUP" ] || fail "queued twice after the crash: $DUP"
# What bob was given, pushed before the crash or fetched after it: two messages, and each
# copy names its message's id, which is what the client's dedup set drops copies by.
SEEN=$(awk '/^(push|msg) /{print $3}' "$TMP/bob.out" "$TMP/fetch.out" | sort -u)
[ "$(echo "$SEEN" | wc -l)" -eq 2 ] && echo "$SEEN" | grep -qx "$M1" && echo "$SEEN" | grep -qx "$M2" ||
    fail "bob saw other messages than m1 and m2: $SEEN"

# --- 3. an fsync of the WAL that fails: no OK for what it was to cover, no writes after --
touch "$HOLD.fail"
send m3
wait "$SEND_PID" || true
SEND_PID=
grep -Eq '^ok 0 [0-9a-f]+ INTERNAL$' "$TMP/m3.out" ||
    fail "m3's fsync failed but alice was told: $(cat "$TMP/m3.out")"
rm -f "$HOLD.fail"
# The kernel may have dropped the pages it could not write: nothing is vouched for now.
send m4
wait "$SEND_PID" || true
SEND_PID=
grep -Eq '^ok 0 [0-9a-f]+ INTERNAL$' "$TMP/m4.out" ||
    fail "the node took a write after a failed fsync: $(cat "$TMP/m4.out")"
grep -q 'fdatasync of .*-wal failed' "$TMP/server.err" || fail "the failed fsync was not logged"

echo "PASS: pushes went out with their fsyncs held, answers after them; kill -9 in between" \
     "lost nothing acknowledged ($(grep -c '^msg ' "$TMP/fetch.out") queued after the restart);" \
     "a failed fsync answered INTERNAL and stopped the writes"
