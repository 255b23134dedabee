#!/usr/bin/env bash
# it_client_mdns.sh: two clients on one LAN find each other with mDNS alone: no server,
# empty peer directories.
#
#   a (10.212.0.2) and c (10.212.0.3) are network namespaces on one bridge.
#   1. c listens (announces _quicprochat-p2p._udp); a, knowing only c's id prefix,
#      runs `qpc send`: the prefix is found by mDNS and the message goes direct.
#   2. a third identity in a's namespace gives a short prefix of c, known to it only
#      from mDNS: refused (a stranger could grind a key with that prefix); then the same
#      with 16 hex digits goes through.
#   3. /mesh peers in a's REPL (real terminal, tmux) lists c.
#   4. c offline: a's send is held in its outbox (exit 3); a listens; c starts on a new
#      port: a finds it by mDNS and the message is delivered exactly once.
# Everything made here (namespaces, processes, tmux session) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_mdns.XXXXXX)
it_tmux_private "$T"
P=qm$$
BR=${P}br
TS=qpc_mdns_$$
NODES=()
PIDS=()
cleanup() {
    local rc=$?
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    it_netns_del "${NODES[@]/#/$P}" "$BR"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tmux capture-pane -p -t "$TS" -S -100 2>/dev/null | grep -v '^$' || true; exit 1; }
it_require_netns

# --- the LAN: no server on it ----------------------------------------------------------
it_bridge_add "$BR"
add_node() { # name index: namespace $P<name> at 10.212.0.<index> on the bridge
    NODES+=("$1")   # before it exists: cleanup deletes it even if making it fails
    it_bridge_node "$BR" "$P$1" "v$2" "10.212.0.$2/24"
}
add_node a 2; add_node c 3
X() { local n=$1; shift; ip netns exec "$P$n" "$@"; }   # foreground only: $! of X & is a subshell
# default listen address (0.0.0.0, a new port each start): p2p= must name eth0's address
M="--mdns-interfaces eth0 --direct-timeout-ms 1000"
screen() { tmux capture-pane -p -t "$TS" -S -300; }
wait_screen() {
    local i
    for ((i = 0; i < ${2:-15} * 10; i++)); do screen | grep -Eq -- "$1" && return 0; sleep 0.1; done
    fail "screen never showed: $1"
}
run() { tmux send-keys -t "$TS" -l -- "$1"; tmux send-keys -t "$TS" Enter; }

AK=$(X a $B/qpc --data-dir "$T/a" identity)
CK=$(X c $B/qpc --data-dir "$T/c" identity)
X a $B/qpc --data-dir "$T/a" peer list | grep -q . && fail "a's directory is not empty"

# --- 1. send by prefix, found by mDNS, delivered direct ----------------------------------
ip netns exec "${P}c" $B/qpc --data-dir "$T/c" $M listen --json >"$T/c.out" 2>"$T/c.err" &
CP=$!; PIDS+=($CP)
it_wait_lines "$T/c.out" '"listening"' 1 || fail "c did not start"
rc=0; X a $B/qpc --data-dir "$T/a" $M send "${CK:0:16}" hello over mdns >"$T/send1.out" 2>"$T/send1.err" || rc=$?
[ $rc -eq 0 ] || fail "send by mDNS: exit $rc"
it_wait_lines "$T/c.out" '"text":"hello over mdns","path":"direct"' 1 || fail "c did not get it direct"
X a $B/qpc --data-dir "$T/a" peer list | grep -q "^$CK client 10.212.0.3:" || fail "c not in a's directory"
echo "ok 1 qpc send to a prefix found by mDNS, delivered direct"

# --- 2. a short prefix of a peer known only from mDNS is refused -------------------------
# (b listens on loopback only, so it does not announce itself and c never links to it)
rc=0; X a $B/qpc --data-dir "$T/b" $M --listen 127.0.0.1:0 send "${CK:0:8}" "to whom" >"$T/send2.out" 2>"$T/send2.err" || rc=$?
[ $rc -eq 4 ] || fail "short prefix of an mDNS-only peer: exit $rc"
grep -q "known only from mDNS" "$T/send2.err" || fail "no reason given for the refusal"
grep -q "to whom" "$T/c.out" && fail "c got a message sent by a short prefix"
rc=0; X a $B/qpc --data-dir "$T/b" $M --listen 127.0.0.1:0 send "${CK:0:16}" "long prefix" >"$T/send2b.out" 2>"$T/send2b.err" || rc=$?
[ $rc -eq 3 ] || fail "b cannot reach c from loopback, so: held (3), got $rc"
echo "ok 2 short prefix of an mDNS-only peer refused, a long one accepted"

# --- 3. /mesh peers in a's REPL lists c ----------------------------------------------------
tmux new-session -d -s "$TS" -x 220 -y 60 \
    "ip netns exec $P""a $B/qpc --data-dir $T/a $M 2>$T/a.err"
wait_screen "^qpc>"
for i in $(seq 30); do
    run "/mesh peers"
    sleep 0.5
    screen | grep -Eq "peer ${CK:0:12}  -  (mdns|direct) 10.212.0.3:[0-9]+" && break
done
wait_screen "peer ${CK:0:12}  -  (mdns|direct) 10.212.0.3:[0-9]+" 1
screen | grep -q "nodes (mDNS _quicprochat._udp): none seen yet" || fail "a server where there is none"
run "/quit"
sleep 1
echo "ok 3 /mesh peers lists c"

# --- 4. c offline: held in a's outbox, delivered exactly once when c appears -------------
kill $CP; wait $CP 2>/dev/null || true
rc=0; X a $B/qpc --data-dir "$T/a" $M send "${CK:0:12}" "while you were away" >"$T/send3.out" 2>"$T/send3.err" || rc=$?
[ $rc -eq 3 ] || fail "send to an offline peer: exit $rc (want 3, held)"
ip netns exec "${P}a" $B/qpc --data-dir "$T/a" $M listen --json >"$T/a2.out" 2>"$T/a2.err" &
PIDS+=($!)
it_wait_lines "$T/a2.out" '"listening"' 1 || fail "a did not start listening"
ip netns exec "${P}c" $B/qpc --data-dir "$T/c" $M listen --json >"$T/c2.out" 2>"$T/c2.err" &
CP=$!; PIDS+=($CP)
it_wait_lines "$T/c2.out" '"text":"while you were away","path":"direct"' 1 30 || fail "c never got the held message"
it_wait_lines "$T/a2.out" '"event":"delivered"' 1 || fail "a did not see the ack"
sleep 3
[ "$(grep -c 'while you were away' "$T/c2.out")" -eq 1 ] || fail "held message shown more than once"
grep -q 'while you were away' "$T/c.out" && fail "c showed it before it started"
echo "ok 4 offline peer found by mDNS: delivered exactly once"
# under -DQPC_SANITIZE=ON every report (leaks at exit included) fails the test
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_mdns"
