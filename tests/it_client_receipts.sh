#!/usr/bin/env bash
# it_client_receipts.sh: end-to-end receipts on loopback, with real qpc and qpc-server.
#   1. Through one server, recipient online: qpc send KEY@DOMAIN exits 0 on the
#      recipient's verified receipt ("delivered ... via server ...").
#   2. Recipient offline: the send exits 3 after --receipt-wait; the recipient starts,
#      takes the message from the server, and its receipt waits at the server for the
#      sender, whose next run shows "delivered" for that id. And a recipient that comes
#      back while the sender still waits: exit 0.
#   3. Through two federated nodes (sender on a.mesh.test, recipient on b.mesh.test, CA
#      trust): the receipt goes back through federation to the domain the message named;
#      and through three nodes in a line (A - B - C, pinned keys, A and C not federated):
#      the receipt takes the domain route back, however many hops it has; a message
#      sent while A has no route to C yet is held at A and goes once the route is
#      learned (not refused UNKNOWN_DOMAIN). The
#      recipient's outbox row for its receipt ("p2p@a.mesh.test") ends when its node
#      takes the receipt (a receipt is never answered by a receipt), not at its TTL.
#   4. Forged receipts: a genuine-looking receipt from another key, one that claims the
#      recipient's key but is signed by another, and one naming an id never sent: none
#      makes the sender say "delivered"; then the real recipient's receipt does.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
SRC=${QPC_SRC:?}
T=$(mktemp -d /tmp/it_client_receipts.XXXXXX)
BASE=$(it_port_base 12)
PA=$BASE; FA=$((BASE + 1)); PB=$((BASE + 2)); FB=$((BASE + 3)); PS=$((BASE + 4))
PC=$((BASE + 7)); FC=$((BASE + 8)); PA2=$((BASE + 9)); PB2=$((BASE + 10))   # new nodes, new addresses:
# a client pins the key of the node at an address on first use
PIDS=()
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
Q="--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 500"

# start_server NAME PORT DOMAIN [FLAGS...]: a node with its own data dir.
start_server() {
    local n=$1 port=$2 dom=$3
    shift 3
    HOME=$T $B/qpc-server --data-dir "$T/$n" --listen 127.0.0.1:$port --mdns-enabled=false \
        --metrics-listen= --federation-domain "$dom" "$@" >"$T/$n.out" 2>"$T/$n.err" &
    PIDS+=($!)
    eval "${n}PID=$!"
    it_wait_for "$T/$n.out" '^connect: ' 20 || fail "server $n did not start"
}
# listen NAME SERVER_PORT [FLAGS...]: a qpc listen --json in the background.
listen() {
    local n=$1 port=$2
    shift 2
    rm -f "$T/$n.out"
    $B/qpc --data-dir "$T/$n" $Q --server 127.0.0.1:$port "$@" listen --json >"$T/$n.out" 2>"$T/$n.err" &
    PIDS+=($!)
    eval "${n}PID=$!"
    it_wait_lines "$T/$n.out" '"connected to server' 1 || fail "$n did not connect"
}
stop() { local p; p=$(eval echo "\$${1}PID"); kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }

AK=$($B/qpc --data-dir "$T/alice" identity)
RK=$($B/qpc --data-dir "$T/rob" identity)

# --- 1. one server, recipient online ------------------------------------------------------
start_server s $PS s.mesh.test
listen rob $PS
rc=0; $B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PS send "$RK@s.mesh.test" "through the node" \
    >"$T/send1.out" 2>"$T/send1.err" || rc=$?
[ $rc -eq 0 ] || fail "send through the server: exit $rc, want 0: $(cat "$T/send1.out")"
grep -Eq "^held [0-9a-f]{12} for ${RK:0:12} by 127.0.0.1:$PS$" "$T/send1.out" || fail "no 'held by server'"
grep -Eq "^delivered [0-9a-f]{12} to ${RK:0:12} \(1 hop, via server 127.0.0.1:$PS, [0-9]+ ms\)$" "$T/send1.out" \
    || fail "no receipt via the server: $(cat "$T/send1.out")"
it_wait_lines "$T/rob.out" '"text":"through the node","path":"server"' 1 || fail "rob did not get it from the server"
echo "ok 1 through one server: $(grep '^delivered' "$T/send1.out")"

# --- 2. recipient offline, then back ------------------------------------------------------
stop rob
rc=0; $B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PS --receipt-wait 1 --json \
    send "$RK@s.mesh.test" "while you were away" >"$T/send2.out" 2>"$T/send2.err" || rc=$?
[ $rc -eq 3 ] || fail "recipient offline: exit $rc, want 3"
ID2=$(sed -n 's/.*"event":"held".*"id":"\([0-9a-f]*\)".*/\1/p' "$T/send2.out" | head -1)
[ -n "$ID2" ] || fail "no held event: $(cat "$T/send2.out")"
grep -q '"event":"delivered"' "$T/send2.out" && fail "delivered without a recipient"
listen rob $PS
it_wait_lines "$T/rob.out" '"text":"while you were away","path":"server"' 1 || fail "rob did not get the held message"
sleep 3   # rob's receipt: alice is offline, so after the ladder it is held by the server
$B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PS listen --json --timeout 8 >"$T/alice2.out" 2>"$T/alice2.err" || true
grep -q "\"event\":\"delivered\",\"to\":\"$RK\",\"id\":\"$ID2\",\"path\":\"server\"" "$T/alice2.out" \
    || fail "the receipt that waited at the server was not shown: $(cat "$T/alice2.out")"
echo "ok 2a offline recipient: exit 3, and the receipt reached the sender's next run"
stop rob
$B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PS --receipt-wait 30 send "$RK@s.mesh.test" "come back" \
    >"$T/send3.out" 2>"$T/send3.err" &
SP=$!; PIDS+=($SP)
it_wait_lines "$T/send3.out" '^held ' 1 || fail "not held"
sleep 1
listen rob $PS
rc=0; wait $SP || rc=$?
[ $rc -eq 0 ] || fail "recipient back within the wait: exit $rc, want 0: $(cat "$T/send3.out")"
grep -q "^delivered .* via server 127.0.0.1:$PS" "$T/send3.out" || fail "no receipt: $(cat "$T/send3.out")"
stop rob
stop s
echo "ok 2b recipient back while the sender waits: exit 0"

# --- 3. two federated nodes --------------------------------------------------------------
it_make_pki "$T/pki" >/dev/null 2>&1 || fail "cannot make the test PKI"
P=$T/pki
start_server na $PA a.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FA \
    --federation-cert=$P/node-a.der --federation-key=$P/node-a.key.der --federation-ca=$P/ca.der \
    --federation-peers="b.mesh.test=127.0.0.1:$FB"
start_server nb $PB b.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FB \
    --federation-cert=$P/node-b.der --federation-key=$P/node-b.key.der --federation-ca=$P/ca.der \
    --federation-peers="a.mesh.test=127.0.0.1:$FA"
listen rob $PB
rc=0; $B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PA --receipt-wait 20 --json \
    send "$RK@b.mesh.test" "across two nodes" >"$T/send4.out" 2>"$T/send4.err" || rc=$?
[ $rc -eq 0 ] || fail "federated send: exit $rc, want 0: $(cat "$T/send4.out")"
grep -q "\"event\":\"delivered\",\"to\":\"$RK\".*\"path\":\"server\",\"hops\":1,\"via\":\"127.0.0.1:$PB\"" "$T/send4.out" \
    || fail "no receipt through federation: $(cat "$T/send4.out")"
it_wait_lines "$T/rob.out" '"text":"across two nodes","path":"server"' 1 || fail "rob did not get it"
stop rob
# rob's receipt went to its node (DEFERRED: held for a.mesh.test), which took custody:
# no row of rob's outbox may still hold an envelope for another node.
ROWS=$(python3 - "$T/rob/outbox.db" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM outbox WHERE domain LIKE 'p2p@%'").fetchone()[0])
PYEOF
)
[ "$ROWS" = 0 ] || fail "rob's outbox still holds $ROWS p2p@DOMAIN row(s) after its node took the receipt"
stop na
stop nb
echo "ok 3a through two federated nodes: the receipt came back by federation, its row ended at the node"

# A - B - C: pinned federation keys, no CA; A and C know only B, which routes between them.
rm -rf "$T/na" "$T/nb"
KA=$(HOME=$T $B/qpc-server --data-dir="$T/la" --print-federation-key 2>/dev/null)
KB=$(HOME=$T $B/qpc-server --data-dir="$T/lb" --print-federation-key 2>/dev/null)
KC=$(HOME=$T $B/qpc-server --data-dir="$T/lc" --print-federation-key 2>/dev/null)
start_server la $PA2 a.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FA \
    --federation-peers="b.mesh.test=127.0.0.1:$FB $KB"
start_server lb $PB2 b.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FB \
    --federation-peers="a.mesh.test=127.0.0.1:$FA $KA,c.mesh.test=127.0.0.1:$FC $KC"
start_server lc $PC c.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FC \
    --federation-peers="b.mesh.test=127.0.0.1:$FB $KB"
listen rob $PC
# the domain routes: B tells each side of the other (at once, then every 10 s)
it_wait_for "$T/la.err" 'route to c.mesh.test via b.mesh.test' 30 || fail "A learned no route to c.mesh.test"
it_wait_for "$T/lc.err" 'route to a.mesh.test via b.mesh.test' 30 || fail "C learned no route to a.mesh.test"
rc=0; $B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PA2 --receipt-wait 40 --json \
    send "$RK@c.mesh.test" "two nodes away" >"$T/send4b.out" 2>"$T/send4b.err" || rc=$?
[ $rc -eq 0 ] || fail "send along A - B - C: exit $rc, want 0: $(cat "$T/send4b.out")"
grep -q "\"event\":\"delivered\",\"to\":\"$RK\".*\"path\":\"server\",\"hops\":1,\"via\":\"127.0.0.1:$PC\"" "$T/send4b.out" \
    || fail "no receipt along the line: $(cat "$T/send4b.out")"
it_wait_lines "$T/rob.out" '"text":"two nodes away","path":"server"' 1 || fail "rob did not get it"
stop rob
stop la
stop lb
stop lc
echo "ok 3b along three federated nodes in a line (A - B - C): the receipt came back over B"

# A message for a domain A cannot route yet (B and C are down, so no domain route) is held
# at A, not refused UNKNOWN_DOMAIN, and goes as soon as the route is learned.
start_server la $PA2 a.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FA \
    --federation-peers="b.mesh.test=127.0.0.1:$FB $KB"
$B/qpc --data-dir "$T/alice" $Q --server 127.0.0.1:$PA2 --receipt-wait 60 --json \
    send "$RK@c.mesh.test" "routed later" >"$T/send4c.out" 2>"$T/send4c.err" &
SP=$!; PIDS+=($SP)
it_wait_lines "$T/send4c.out" '"event":"\(held\|failed\)"' 1 || fail "no answer from A: $(cat "$T/send4c.out")"
grep -q '"event":"held"' "$T/send4c.out" || fail "A did not hold a message for a domain it cannot route yet: $(cat "$T/send4c.out")"
start_server lb $PB2 b.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FB \
    --federation-peers="a.mesh.test=127.0.0.1:$FA $KA,c.mesh.test=127.0.0.1:$FC $KC"
start_server lc $PC c.mesh.test --federation-enabled --federation-listen=127.0.0.1:$FC \
    --federation-peers="b.mesh.test=127.0.0.1:$FB $KB"
listen rob $PC
rc=0; wait $SP || rc=$?
[ $rc -eq 0 ] || fail "held for a route learned later: exit $rc, want 0: $(cat "$T/send4c.out")"
grep -q "\"event\":\"delivered\",\"to\":\"$RK\".*\"path\":\"server\"" "$T/send4c.out" \
    || fail "no receipt for the message routed later: $(cat "$T/send4c.out")"
it_wait_lines "$T/rob.out" '"text":"routed later","path":"server"' 1 || fail "rob did not get it"
grep -q 'a way to c.mesh.test opened: 1 envelope(s) held for it go now' "$T/la.err" \
    || echo "note: A's row went by its own retry, not woken by the route"
stop rob
stop la
stop lb
stop lc
echo "ok 3c a message for a domain not routable yet is held at A and goes once the route is learned"

# --- 4. forged receipts ------------------------------------------------------------------
# alice waits for a receipt from rob (offline, no server); the injector tries three fakes.
ROBPORT=$((BASE + 5))   # alice listens on BASE + 6
$B/qpc --data-dir "$T/alice" peer add "$RK" 127.0.0.1:$ROBPORT rob >/dev/null
$B/qpc --data-dir "$T/alice" --listen 127.0.0.1:$((BASE + 6)) --no-mdns --direct-timeout-ms 500 --json \
    --receipt-wait 40 send "$RK" "prove it" >"$T/send5.out" 2>"$T/send5.err" &
SP=$!; PIDS+=($SP)
it_wait_lines "$T/send5.out" '"event":"queued"' 1 || fail "not queued: $(cat "$T/send5.out")"
ID5=$(sed -n 's/.*"event":"queued".*"id":"\([0-9a-f]*\)".*/\1/p' "$T/send5.out" | head -1)
UNKNOWN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
$B/qpc_p2p_inject 127.0.0.1:$((BASE + 6)) "$AK" "receipt=$ID5" "impostor-receipt=$ID5=$RK" \
    "receipt=$UNKNOWN" >"$T/inj.out" 2>"$T/inj.err" || fail "injector: $(cat "$T/inj.err")"
grep -q "^ack receipt=$ID5 0$" "$T/inj.out" || fail "a receipt from another key was not taken as an envelope"
grep -q "^ack impostor-receipt=.* 1$" "$T/inj.out" || fail "a receipt with the recipient's key but another signature was not refused"
grep -q "^ack receipt=$UNKNOWN 0$" "$T/inj.out" || fail "receipt for an unknown id"
sleep 0.5
grep -q '"event":"delivered"' "$T/send5.out" && fail "a forged receipt made alice say delivered"
grep -q '"event":"refused".*"error":"bad signature"' "$T/send5.out" || fail "the impostor was not reported"
grep -q "names an id I do not wait for .*: ignored" "$T/send5.err" || fail "refused receipts not logged"
# now the real rob
$B/qpc --data-dir "$T/rob" --listen 127.0.0.1:$ROBPORT --no-mdns listen --json >"$T/rob5.out" 2>"$T/rob5.err" &
PIDS+=($!)
rc=0; wait $SP || rc=$?
[ $rc -eq 0 ] || fail "the real receipt: exit $rc, want 0: $(cat "$T/send5.out")"
grep -q "\"event\":\"delivered\",\"to\":\"$RK\",\"id\":\"$ID5\",\"path\":\"direct\"" "$T/send5.out" \
    || fail "no delivered from rob's receipt: $(cat "$T/send5.out")"
echo "ok 4 forged receipts refused; the recipient's own counted"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_receipts"
