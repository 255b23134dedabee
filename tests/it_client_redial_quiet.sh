#!/usr/bin/env bash
# it_client_redial_quiet.sh: a peer that cannot be reached costs its sender no handshake
# storm: a handshake that fails is retried with the redial back-off, and a redial asks
# the server whether the peer is online before it dials through the relay (docs/paths.md,
# "Back-off").
#
#   S (qpc-server), A and P (qpc), one LAN (bridge), no mDNS, everyone on the server.
#   1. A sends P a message: delivered on a direct link.
#   2. P quits (and never comes back). A sends P another message: A holds it (the server
#      says P is offline and takes a copy; A keeps custody until a receipt comes), so A
#      keeps redialling P.
#   3. Over a window of W s, counted, never timed: the relayed datagrams A sends toward P
#      (the server drops each, P has no session: its relay_dropped counter) and the
#      large P2P frames A sends (handshake Initials to P's old address; idle_capture.py
#      in A's namespace). Relayed: none once the server said P is offline (each redial
#      asks first). Direct: at most what the back-off allows, a handshake at a time.
#      Before the fix A raced again (the relay at once, and every candidate) whenever a
#      handshake that never came up failed, back-off or not.
# Everything made here is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/lib" && pwd)
T=$(mktemp -d /tmp/it_client_redial_quiet.XXXXXX)
N=rq$$
PIDS=()
cleanup() {
    local rc=$?
    exec 7>&- 2>/dev/null || true
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${N}br" "${N}s" "${N}a" "${N}p"
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

NET=10.217.0
it_bridge_add "${N}br"
it_bridge_node "${N}br" "${N}s" vs "$NET.1/24"
it_bridge_node "${N}br" "${N}a" va "$NET.2/24"
it_bridge_node "${N}br" "${N}p" vp "$NET.3/24"
SRV=$NET.1:7000
Q="--listen 0.0.0.0:7100 --no-mdns --server $SRV"
W=40

ip netns exec "${N}s" $B/qpc-server --listen $SRV --data-dir "$T/s" --mdns-enabled=false \
    --metrics-listen=127.0.0.1:9100 >"$T/s.out" 2>"$T/s.err" &
PIDS+=($!)
it_wait_for "$T/s.out" '^connect: ' 20 || fail "server did not start"
dropped() { # the server's relay_dropped counter
    ip netns exec "${N}s" curl -sf http://127.0.0.1:9100/metrics |
        awk '$1 == "qpc_errors_total{kind=\"relay_dropped\"}" {print $2}'
}

PK=$(ip netns exec "${N}p" $B/qpc --data-dir "$T/p" identity)
ip netns exec "${N}p" $B/qpc --data-dir "$T/p" $Q listen --json >"$T/p.out" 2>"$T/p.err" &
PP=$!
PIDS+=($PP)
it_wait_lines "$T/p.out" '"connected to server' 1 || fail "P did not connect"

mkfifo "$T/a.in"
ip netns exec "${N}a" $B/qpc --data-dir "$T/a" $Q --log-level info repl <"$T/a.in" >"$T/a.out" 2>"$T/a.err" &
PIDS+=($!)
exec 7>"$T/a.in"   # held open: the REPL ends only at /quit
say() { echo "$1" >&7; }
it_wait_for "$T/a.out" "connected to server $SRV" 20 || fail "A did not connect"

# --- 1. a direct link to P ---------------------------------------------------------------
say "/mesh add $PK $NET.3:7100"
say "/mesh send $PK one"
it_wait_for "$T/a.out" "delivered [0-9a-f]{12} to ${PK:0:12} \(1 hop, via direct link" 20 ||
    fail "the first message was not delivered direct"
echo "ok 1 first message direct"

# --- 2. P goes for good; A holds a message for it -------------------------------------
kill -TERM $PP
wait $PP 2>/dev/null || true
it_wait_for "$T/a.out" "link to ${PK:0:12} closed" 20 || fail "A did not see its link to P close"
say "/mesh send $PK two"
it_wait_for "$T/a.out" "held [0-9a-f]{12} for ${PK:0:12}" 20 || fail "A did not hold the second message"
echo "ok 2 P gone, A holds a message for it"

# --- 3. what A's redials cost ------------------------------------------------------------
# The window opens once the first race's relayed handshake has timed out (10 s after it
# began). By then the back-off (2 s doubling to 30 s) is at 8 s or more, so at most two
# redials start within W = 40 s (8 + 16 < 40 < 8 + 16 + 30); each dials P's one old
# address unless a handshake to it is still under way.
sleep 15
d0=$(dropped)
ip netns exec "${N}a" python3 "$LIB/idle_capture.py" "$W" "$T/cap.json"
d1=$(dropped)
[ -n "$d0" ] && [ -n "$d1" ] || fail "no relay_dropped counter in the server's metrics"
relayed=$((d1 - d0))
count() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2],{}).get("packets",0))' "$T/cap.json" "$1"; }
big=$(count p2p-big)
hs=$(count p2p-handshakes)
echo "# over $W s: $relayed relayed datagrams toward P, $hs direct handshakes ($big large P2P frames);" \
     "large frames in all $((big + relayed)); capture: $(cat "$T/cap.json")"
[ "$relayed" -eq 0 ] ||
    fail "A sent $relayed relayed datagrams toward P, which the server says is offline (a relayed handshake per race)"
[ "$hs" -le 3 ] || fail "A started $hs direct handshakes with P in $W s: the back-off allows two redials and the one under way"
echo "ok 3 an offline peer costs no relayed handshake; direct redials keep to the back-off"

say "/quit"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_redial_quiet"
