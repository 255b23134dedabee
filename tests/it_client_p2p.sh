#!/usr/bin/env bash
# it_client_p2p.sh: the non-interactive client on loopback.
#   1. A sends to C directly: exit 0 on C's verified receipt, C shows it once.
#   2. C offline: A's send exits 3 (kept in its outbox); A and C restart: delivered
#      exactly once, and never again after another restart of both.
#   3. forged, impostor, expired, future and replayed envelopes are refused.
#   4. corrupt identity.json / subscriptions.json / outbox.db are reported (exit 5) and
#      left byte for byte as they were.
#   5. exit codes for usage errors and unknown peers.
#   6. with a qpc-server: a message for an offline peer is held by the server and
#      fetched by the peer when it starts (path "server"); a server that answers
#      "queue full" leaves the message queued (exit 3, not "failed"), and the outbox
#      delivers it later, once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_p2p.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; it_dump_logs all "$T"/*.out "$T"/*.err; exit 1; }
Q="--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 600"
listen_addr() {
    local i
    for ((i = 0; i < 150; i++)); do grep -q '"listening".*}$' "$1" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/.*"event":"listening".*"address":"\([^"]*\)"}$/\1/p' "$1" | head -1
}
start_listen() { # name extra-args... ; prints nothing, sets ${name}ADDR via file
    local n=$1; shift
    rm -f "$T/$n.out"
    $B/qpc --data-dir "$T/$n" $Q "$@" listen --json >"$T/$n.out" 2>"$T/$n.err" &
    PIDS+=($!)
    eval "${n}PID=$!"
}

AK=$($B/qpc --data-dir "$T/a" identity)
CK=$($B/qpc --data-dir "$T/c" identity)

# --- 1. direct ---------------------------------------------------------------------
start_listen c
CADDR=$(listen_addr "$T/c.out")
$B/qpc --data-dir "$T/a" peer add "$CK" "$CADDR" carol
rc=0; $B/qpc --data-dir "$T/a" $Q send "${CK:0:10}" "hello direct" >"$T/send1.out" || rc=$?
[ $rc -eq 0 ] || fail "direct send exit $rc"
grep -Eq "delivered .* \(1 hop, via direct link, [0-9]+ ms\)" "$T/send1.out" || fail "no delivery receipt: $(cat "$T/send1.out")"
it_wait_lines "$T/c.out" '"text":"hello direct","path":"direct"' 1 || fail "C did not show it"
kill $cPID; wait $cPID 2>/dev/null || true
echo "ok 1 direct"

# --- 2. store-and-forward across restarts ----------------------------------------------
rc=0; $B/qpc --data-dir "$T/a" $Q --receipt-wait 1 send "$CK" "while you were away" >"$T/send2.out" || rc=$?
[ $rc -eq 3 ] || fail "send to offline peer: exit $rc, want 3"
grep -q "queued .* kept in outbox" "$T/send2.out" || fail "no 'queued' line"
# C comes back on the same address; A runs as a node and forwards from its outbox.
$B/qpc --data-dir "$T/c" --listen "$CADDR" --no-mdns listen --json >"$T/c2.out" 2>"$T/c2.err" &
C2=$!; PIDS+=($C2)
listen_addr "$T/c2.out" >/dev/null
$B/qpc --data-dir "$T/a" $Q listen --json >"$T/a2.out" 2>"$T/a2.err" &
A2=$!; PIDS+=($A2)
it_wait_lines "$T/a2.out" '"event":"delivered"' 1 || fail "A never saw the delivery"
it_wait_lines "$T/c2.out" '"text":"while you were away"' 1 || fail "C never got the stored message"
sleep 1
kill $A2 $C2; wait $A2 $C2 2>/dev/null || true
# both again: nothing is delivered a second time
$B/qpc --data-dir "$T/c" --listen "$CADDR" --no-mdns listen --json >"$T/c3.out" 2>&1 &
C3=$!; PIDS+=($C3)
listen_addr "$T/c3.out" >/dev/null
$B/qpc --data-dir "$T/a" $Q listen --json --timeout 3 >"$T/a3.out" 2>&1 || true
kill $C3; wait $C3 2>/dev/null || true
n=$(cat "$T/c2.out" "$T/c3.out" | grep -c '"text":"while you were away"' || true)
[ "$n" -eq 1 ] || fail "stored message shown $n times, want 1"
grep -q '"event":"delivered"' "$T/a3.out" && fail "A delivered again after restart"
echo "ok 2 store-and-forward, exactly once"

# --- 3. forged, expired, replayed --------------------------------------------------------
start_listen c
CADDR=$(listen_addr "$T/c.out")
$B/qpc_p2p_inject "$CADDR" "$CK" valid replay forged impostor expired future >"$T/inj.out" \
    || fail "injector failed"
grep -q '^ack valid 0$' "$T/inj.out" || fail "valid not acked OK"
grep -q '^ack forged 1$' "$T/inj.out" || fail "forged not refused INVALID"
grep -q '^ack impostor 1$' "$T/inj.out" || fail "impostor not refused"
grep -q '^ack expired 5$' "$T/inj.out" || fail "expired not refused EXPIRED"
grep -q '^ack future 1$' "$T/inj.out" || fail "future not refused"
it_wait_lines "$T/c.out" '"event":"refused"' 5 || fail "refusals not reported"
[ "$(grep -c '"text":"inject valid 0"' "$T/c.out")" -eq 1 ] || fail "replayed envelope shown twice"
grep -q '"error":"duplicate"' "$T/c.out" || fail "replay not refused as duplicate"
grep -q '"error":"bad signature"' "$T/c.out" || fail "forgery not reported"
grep -q '"error":"expired"' "$T/c.out" || fail "expiry not reported"
grep -q 'inject forged\|inject impostor\|inject expired\|inject future' "$T/c.out" && fail "refused text shown"
kill $cPID; wait $cPID 2>/dev/null || true
echo "ok 3 forged/expired/replayed refused"

# --- 4. corrupt state files are reported, not overwritten ------------------------------
for f in identity.json subscriptions.json outbox.db; do
    cp -a "$T/a" "$T/x"
    printf '{"version": 1, "garbage' >"$T/x/$f"
    cp "$T/x/$f" "$T/x.orig"
    rc=0; $B/qpc --data-dir "$T/x" $Q send "$CK" "nope" >"$T/x.out" 2>"$T/x.err" || rc=$?
    [ $rc -eq 5 ] || fail "corrupt $f: exit $rc, want 5"
    grep -q "$f" "$T/x.err" || fail "corrupt $f: message does not name the file: $(cat "$T/x.err")"
    cmp -s "$T/x/$f" "$T/x.orig" || fail "corrupt $f was modified"
    rm -rf "$T/x" "$T/x.orig"
done
echo "ok 4 corrupt state reported, untouched"

# --- 5. exit codes -------------------------------------------------------------------------
rc=0; $B/qpc --data-dir "$T/a" send >/dev/null 2>&1 || rc=$?; [ $rc -eq 2 ] || fail "usage: exit $rc"
rc=0; $B/qpc --data-dir "$T/a" frobnicate >/dev/null 2>&1 || rc=$?; [ $rc -eq 2 ] || fail "unknown sub: $rc"
rc=0; $B/qpc --data-dir "$T/a" $Q send ffffee "x" >/dev/null 2>&1 || rc=$?; [ $rc -eq 4 ] || fail "unknown peer: $rc"
rc=0; $B/qpc --data-dir "$T/a" --max-hops 0 identity >/dev/null 2>&1 || rc=$?; [ $rc -eq 2 ] || fail "bad flag: $rc"
echo "ok 5 exit codes"

# --- 6. held by a server ---------------------------------------------------------------
if [ -x "$B/qpc-server" ]; then
    $B/qpc-server --listen 127.0.0.1:0 --data-dir "$T/srv" --mdns-enabled=false --metrics-listen= \
        >"$T/srv.out" 2>"$T/srv.err" &
    SP=$!; PIDS+=($SP)
    for i in $(seq 100); do grep -q 'connect: *qpc --server' "$T/srv.out" "$T/srv.err" 2>/dev/null && break; sleep 0.1; done
    SADDR=$(sed -n 's/.*connect: *qpc --server \([^ ]*\).*/\1/p' "$T/srv.out" "$T/srv.err" | head -1)
    [ -n "$SADDR" ] || fail "server did not start"
    DK=$($B/qpc --data-dir "$T/d" identity)
    rc=0; $B/qpc --data-dir "$T/a" $Q --server "$SADDR" --receipt-wait 1 send "$DK" "kept by the node" >"$T/send6.out" || rc=$?
    [ $rc -eq 3 ] || fail "send via server: exit $rc, want 3"
    grep -q "held .* by $SADDR" "$T/send6.out" || fail "no 'held by server' line"
    $B/qpc --data-dir "$T/d" $Q --server "$SADDR" listen --json --count 1 --timeout 20 >"$T/d.out" 2>"$T/d.err" \
        || fail "D did not receive from the server"
    grep -q '"text":"kept by the node","path":"server"' "$T/d.out" || fail "D: wrong path"
    echo "ok 6 held by server"

    $B/qpc-server --listen 127.0.0.1:0 --data-dir "$T/srv2" --mdns-enabled=false --metrics-listen= \
        --queue-quota 1 >"$T/srv2.out" 2>"$T/srv2.err" &
    PIDS+=($!)
    for i in $(seq 100); do grep -q 'connect: *qpc --server' "$T/srv2.out" "$T/srv2.err" 2>/dev/null && break; sleep 0.1; done
    S2ADDR=$(sed -n 's/.*connect: *qpc --server \([^ ]*\).*/\1/p' "$T/srv2.out" "$T/srv2.err" | head -1)
    GK=$($B/qpc --data-dir "$T/g" identity)
    GPORT=$(it_port_base 1)   # below the ephemeral range: no other test's client takes it meanwhile
    $B/qpc --data-dir "$T/f" peer add "$GK" "127.0.0.1:$GPORT" gina
    rc=0; $B/qpc --data-dir "$T/f" $Q --server "$S2ADDR" send gina "first" >"$T/send6b1.out" || rc=$?
    [ $rc -eq 3 ] || fail "first send via the server: exit $rc, want 3"
    rc=0; $B/qpc --data-dir "$T/f" $Q --server "$S2ADDR" send gina "second" >"$T/send6b2.out" 2>&1 || rc=$?
    [ $rc -eq 3 ] || fail "the node's queue full: exit $rc, want 3 (queued): $(cat "$T/send6b2.out")"
    grep -q "queued .* did not take it (recipient's queue full); kept in outbox" "$T/send6b2.out" ||
        fail "no 'queued ... kept in outbox' line: $(cat "$T/send6b2.out")"
    grep -q "failed" "$T/send6b2.out" && fail "'failed' for a message that is kept"
    $B/qpc --data-dir "$T/g" --listen "127.0.0.1:$GPORT" --no-mdns listen --json --count 2 --timeout 20 \
        >"$T/g.out" 2>"$T/g.err" &
    GPID=$!; PIDS+=($GPID)
    sleep 0.5
    $B/qpc --data-dir "$T/f" $Q listen --timeout 6 >"$T/f.out" 2>"$T/f.err" || true
    wait "$GPID" || fail "G did not get both messages: $(cat "$T/g.out" "$T/g.err")"
    [ "$(grep -c '"text":"second"' "$T/g.out")" -eq 1 ] || fail "the queued message not delivered once"
    echo "ok 6b queue full at the node: queued, delivered later once"
else
    echo "skip 6: no qpc-server"
fi
# --- 7. forwarding through a neighbour ----------------------------------------------------
# b is a relay peer; a and c know only b. c's broadcast, kept by b, tells a that c is
# reachable through b (route from an envelope); a's message to c goes to b, which holds
# it (ack "deferred": a shows "held by b"), bumps hop_count and delivers it to c; c's
# receipt comes back the same way and a says "delivered (2 hops, via neighbour ...)".
BK=$($B/qpc --data-dir "$T/b" identity)
start_listen b
BADDR=$(listen_addr "$T/b.out")
E=$(mktemp -d "$T/e.XXXX")
$B/qpc --data-dir "$E/a" identity >/dev/null
for n in "$E/a" "$E/c"; do $B/qpc --data-dir "$n" peer add "$BK" "$BADDR"; done
ECK=$($B/qpc --data-dir "$E/c" identity)
$B/qpc --data-dir "$E/c" $Q broadcast lobby "c is here" >"$T/ebc.out" 2>"$T/ebc.err" || fail "broadcast via b"
$B/qpc --data-dir "$E/c" $Q listen --json >"$T/ec.out" 2>"$T/ec.err" &
ECP=$!; PIDS+=($ECP)
listen_addr "$T/ec.out" >/dev/null
sleep 1
rc=0; $B/qpc --data-dir "$E/a" $Q send "$ECK" "through b" >"$T/ea.out" 2>"$T/ea.err" || rc=$?
[ $rc -eq 0 ] || fail "send through b: exit $rc, want 0 (c's receipt through b): $(cat "$T/ea.out")"
grep -q "held .* by ${BK:0:12}" "$T/ea.out" || fail "a does not say b holds it: $(cat "$T/ea.out" "$T/ec.out" "$T/ebc.out")"
grep -Eq "delivered .* \(2 hops, via neighbour ${BK:0:12}, [0-9]+ ms\)" "$T/ea.out" || fail "no receipt through b: $(cat "$T/ea.out")"
it_wait_lines "$T/ec.out" '"text":"through b","path":"direct","hops":2' 1 || fail "c did not get it over 2 hops"
kill $ECP $bPID; wait $ECP $bPID 2>/dev/null || true
echo "ok 7 forwarded by a neighbour, hop_count incremented, receipt back through it"

# under -DQPC_SANITIZE=ON every report (leaks at exit included) fails the test
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_p2p"
