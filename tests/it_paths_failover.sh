#!/usr/bin/env bash
# it_paths_failover.sh: traffic moves between paths while a REPL runs (tmux), behind two
# home-router NATs of the lab (tests/lib/lab.sh) with a qpc-server outside:
#   1. the first message goes direct.
#   2. the router starts dropping the direct path (the server stays reachable): the next
#      message's acks stop, the link is given up within seconds, and the message goes
#      through the relay at once.
#   3. the router lets the direct path through again: a punch while relayed brings it
#      back, the relay is left, and the next message goes direct.
# Every message reaches b exactly once. Everything made here is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_paths_failover.XXXXXX)
it_tmux_private "$T"
TS=qpc_failover_$$
cleanup() {
    local rc=$?
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    lab_cleanup
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tmux capture-pane -p -t "$TS" -S -${SCREEN_LINES:-100} 2>/dev/null | grep -v '^$' || true; exit 1; }
it_require_netns
screen() { it_tmux_screen "$TS"; }
wait_screen() { it_tmux_wait "$TS" "$1" "${2:-15}" || fail "screen never showed: $1"; }
run() { it_tmux_type "$TS" "$1"; }
SRV=$LAB_SRV_IP:7000
Q="--listen 0.0.0.0:7100 --no-mdns --server $SRV"
# the direct path between the two NATs, both ways (the server's traffic is not matched)
block() {
    lab_exec rtr iptables "$1" FORWARD -p udp -s $LAB_NATA_WAN -d $LAB_NATB_WAN -j DROP
    lab_exec rtr iptables "$1" FORWARD -p udp -s $LAB_NATB_WAN -d $LAB_NATA_WAN -j DROP
}

lab_new home
lab_spawn srv "$T/srv.out" $B/qpc-server --listen $SRV --data-dir "$T/srv" --mdns-enabled=false --metrics-listen=
BK=$(lab_exec b $B/qpc --data-dir "$T/b" identity)
lab_exec a $B/qpc --data-dir "$T/a" identity >/dev/null
it_wait_for "$T/srv.out" '^connect: ' 20 || fail "server did not start"
lab_spawn b "$T/b.out" $B/qpc --data-dir "$T/b" $Q listen --json
it_wait_lines "$T/b.out" '"connected to server' 1 || fail "b did not connect"
it_tmux_start "$TS" "ip netns exec $(lab_ns a) $B/qpc --data-dir $T/a $Q ${A_LOG:-} 2>$T/a.err"
wait_screen "connected to server $SRV"

run "/mesh send $BK one"
wait_screen "delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via direct link,"
echo "ok 1 first message direct"

block -I
run "/mesh send $BK two"
wait_screen "${BK:0:12}: direct path stalled" 15
wait_screen "delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via relay $SRV," 15
echo "ok 2 direct path dropped: given up, the message went through the relay"

left=$(screen | grep -c "leaving the relay" || true)
block -D
for i in $(seq 300); do
    [ "$(screen | grep -c "leaving the relay" || true)" -gt "$left" ] && break
    sleep 0.1
done
[ "$(screen | grep -c "leaving the relay" || true)" -gt "$left" ] || fail "the direct path did not come back"
run "/mesh send $BK three"
for i in $(seq 100); do
    [ "$(screen | grep -cE "delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via direct link,")" -ge 2 ] && break
    sleep 0.1
done
[ "$(screen | grep -cE "delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via direct link,")" -ge 2 ] || fail "third message not direct"
echo "ok 3 direct path back: the relay is left, the next message goes direct"

run "/quit"
for m in one two three; do
    it_wait_lines "$T/b.out" "\"text\":\"$m\"" 1 5 || fail "b never showed '$m'"
done
sleep 0.5
for m in one two three; do
    [ "$(grep -c "\"text\":\"$m\"" "$T/b.out")" -eq 1 ] || fail "b showed '$m' more than once"
done
echo "ok 4 each message once at b"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_paths_failover"
