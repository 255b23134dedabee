#!/usr/bin/env bash
# it_mesh_announce.sh: routes from signed announces on a chain A - B - C of namespaces.
#
#   A (10.212.1.1) -- B (10.212.1.2 | 10.212.2.2) -- C (10.212.2.3); B does not forward
#   IP, so A and C share no link; no server, no mDNS. A and C know B only as a static
#   peer (peers = ["host:port"]).
#   1. A's very first message to C (a fresh `qpc send`, nothing ever sent before) is
#      delivered: A prints the receipt line "delivered ... hops ..." (the time taken is
#      printed, not asserted).
#   2. C replies to A by a 16-digit id prefix that only its routing table knows (A is in
#      no directory of C's), from the routes C saved when it stopped.
#   3. A neighbour that forwards C's traffic to A with hop_count reset to 0
#      (qpc_p2p_inject hop0-from=) does not change A's route to C: still through B, 2
#      hops, learned from C's announces.
#   4. After stopping and restarting all three, the routes are still listed (qpc route).
# Everything made here (namespaces, processes) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_announce.XXXXXX)
P=qa$$
PIDS=()
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${P}a" "${P}b" "${P}c"
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

# --- the chain ------------------------------------------------------------------------
it_veth_pair "${P}a" "${P}b" eth0 ab0 10.212.1.1/24 10.212.1.2/24
it_veth_extend "${P}b" "${P}c" bc0 eth0 10.212.2.2/24 10.212.2.3/24
ip netns exec "${P}b" sysctl -qw net.ipv4.ip_forward=0
X() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
X a ping -c1 -W1 10.212.2.3 >/dev/null 2>&1 && fail "A reaches C's address: the chain is not a chain"

PORT=$(it_port_base 1)
Q="--no-mdns --log-level info --announce-interval-s 5"
for n in a b c; do $B/qpc --data-dir "$T/$n" identity >/dev/null; done
AK=$($B/qpc --data-dir "$T/a" identity)
BK=$($B/qpc --data-dir "$T/b" identity)
CK=$($B/qpc --data-dir "$T/c" identity)
start() { # name extra-args...: qpc listen in its namespace, output in $T/name.out
    local n=$1; shift
    # ip netns exec itself, not the X function: $! must be qpc, not a subshell
    ip netns exec "$P$n" $B/qpc --data-dir "$T/$n" --listen "0.0.0.0:$PORT" $Q "$@" listen --json \
        >>"$T/$n.out" 2>>"$T/$n.err" &
    PIDS+=($!)
    eval "PID_$n=$!"
}
stop() { # name: SIGTERM, so the node saves its state
    local v="PID_$1"
    kill -TERM "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
}

# --- 1. A's first message to C ---------------------------------------------------------
start b
start c --peers "10.212.2.2:$PORT"
it_wait_for "$T/b.err" "link to ${CK:0:12} up" 15 || fail "C did not link to B"
t0=$(date +%s%N)
rc=0
X a $B/qpc --data-dir "$T/a" --listen "0.0.0.0:$PORT" $Q --peers "10.212.1.2:$PORT" --timeout 20 \
    send "$CK" "first message to c" >"$T/a_send.out" 2>"$T/a_send.err" || rc=$?
t1=$(date +%s%N)
[ $rc -eq 0 ] || fail "A's first message to C: exit $rc, want 0 (verified receipt): $(cat "$T/a_send.out")"
grep -Eq "^delivered .* to ${CK:0:12} \(2 hops, via neighbour ${BK:0:12}, [0-9]+ ms\)" "$T/a_send.out" ||
    fail "no receipt line through B: $(cat "$T/a_send.out")"
it_wait_lines "$T/c.out" '"text":"first message to c"' 1 || fail "C did not show the message"
echo "# first message A -> C (fresh process, static peer, no route before): $(( (t1 - t0) / 1000000 )) ms" \
     "from start to verified receipt; $(grep -o '[0-9]* ms)' "$T/a_send.out") as the receipt line says"
echo "ok 1 A's first message to C is delivered through B at once, receipt verified"

# --- 2. C replies by prefix ----------------------------------------------------------------
start a --peers "10.212.1.2:$PORT"
it_wait_for "$T/b.err" "link to ${AK:0:12} up" 15 || fail "A did not link to B"
# C learns the route to A from A's announce, passed on by B; C saves it when it stops
for ((i = 0; i < 100; i++)); do
    it_route_of c "$AK" | grep -q " peer $BK 2 announce " && break
    sleep 0.2
done
stop c
it_route_of c "$AK" | grep -q " peer $BK 2 announce " || fail "C has no announced route to A: $(it_route_of c "$AK")"
$B/qpc --data-dir "$T/c" peer list | grep -q "^$AK " && fail "A is in C's directory: the prefix would not need the routes"
rc=0
X c $B/qpc --data-dir "$T/c" --listen "0.0.0.0:$PORT" $Q --peers "10.212.2.2:$PORT" --timeout 20 \
    send "${AK:0:16}" "reply to a by prefix" >"$T/c_send.out" 2>"$T/c_send.err" || rc=$?
[ $rc -eq 0 ] || fail "C's reply by prefix: exit $rc: $(cat "$T/c_send.out" "$T/c_send.err")"
it_wait_lines "$T/a.out" '"text":"reply to a by prefix"' 1 || fail "A did not get C's reply"
# a shorter prefix is refused with a reason (anyone can mint a key with 4 chosen digits)
rc=0; $B/qpc --data-dir "$T/c" send "${AK:0:6}" "x" >/dev/null 2>"$T/c_short.err" || rc=$?
[ $rc -eq 4 ] && grep -q "at least 16 hex digits" "$T/c_short.err" || fail "short prefix: exit $rc: $(cat "$T/c_short.err")"
start c --peers "10.212.2.2:$PORT"
echo "ok 2 C replies to A by an id prefix its routing table resolves"

# --- 3. a neighbour resetting hop_count does not move the route ---------------------------
it_wait_for "$T/b.err" "link to ${CK:0:12} up" 15 || fail "C did not link to B again"
for ((i = 0; i < 100; i++)); do
    it_route_of a "$CK" | grep -q " peer $BK 2 announce " && break
    sleep 0.2
done
before=$(it_route_of a "$CK")
echo "$before" | grep -q " peer $BK 2 announce " || fail "A's route to C is not through B: $before"
# from B's namespace (the only one that reaches A), a stranger M forwards "C's" message
X b $B/qpc_p2p_inject "10.212.1.1:$PORT" "$AK" "hop0-from=$T/c/identity.json" >"$T/inject.out" 2>&1 ||
    fail "inject: $(cat "$T/inject.out")"
grep -q '^ack hop0-from=.* 0$' "$T/inject.out" || fail "A did not take the injected envelope: $(cat "$T/inject.out")"
it_wait_lines "$T/a.out" '"text":"inject hop0 0"' 1 || fail "A did not show the injected message"
sleep 6   # A saves its table at most every 5 s
after=$(it_route_of a "$CK")
echo "$after" | grep -q " peer $BK 2 announce " || fail "A's route to C moved: before '$before', after '$after'"
echo "ok 3 a forwarder resetting hop_count to 0 does not change A's route to C"

# --- 4. the routes survive a restart of all three -----------------------------------------
stop a; stop b; stop c
it_route_of a "$CK" | grep -q " peer $BK 2 announce " || fail "A's route to C not saved: $(it_route_of a "$CK")"
start b; start c --peers "10.212.2.2:$PORT"; start a --peers "10.212.1.2:$PORT"
sleep 2
stop a; stop b; stop c
r=$(it_route_of a "$CK")
echo "$r" | grep -q " peer $BK 2 announce " || fail "after the restart A lists no route to C: '$r'"
it_route_of c "$AK" | grep -q " peer $BK 2 announce " || fail "after the restart C lists no route to A"
echo "# after restart: A: $r"
echo "ok 4 routes listed after restarting all three"

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_announce"
