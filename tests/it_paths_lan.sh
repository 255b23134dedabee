#!/usr/bin/env bash
# it_paths_lan.sh: paths that need more than the server-observed address, in the NAT lab
# (tests/lib/lab.sh):
#   1. two hosts behind one NAT, no mDNS, a qpc-server outside: the NAT does not loop its
#      public address back, so only a LAN candidate (registered at the server) works:
#      five one-shot sends, each direct, each once.
#   2. the same pair in a REPL (real terminal, tmux): both sides dial, the duplicate is
#      closed by the rule, and /mesh peers lists the peer once, on its direct path;
#      /mesh route shows that path too.
#   3. a host on two links (m: LAN A and LAN B), mDNS only, no server: it announces every
#      candidate, so hosts on either link reach it direct, whichever key is smaller (both
#      orders); with nothing to send, m makes mesh links to both.
# Everything made here (namespaces, processes, tmux session) is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_paths_lan.XXXXXX)
it_tmux_private "$T"
TS=qpc_paths_$$
cleanup() {
    local rc=$?
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    lab_cleanup
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tmux capture-pane -p -t "$TS" -S -100 2>/dev/null | grep -v '^$' || true; exit 1; }
it_require_netns
screen() { it_tmux_screen "$TS"; }
wait_screen() { it_tmux_wait "$TS" "$1" "${2:-15}" || fail "screen never showed: $1"; }
run() { it_tmux_type "$TS" "$1"; }
SRV=$LAB_SRV_IP:7000
Q="--listen 0.0.0.0:7100 --no-mdns --server $SRV"

# --- 1. behind one NAT: the LAN candidate -------------------------------------------------
lab_new samenat
lab_spawn srv "$T/srv.out" $B/qpc-server --listen $SRV --data-dir "$T/srv" --mdns-enabled=false --metrics-listen=
BK=$(lab_exec b $B/qpc --data-dir "$T/b" identity)
AK=$(lab_exec a $B/qpc --data-dir "$T/a" identity)
it_wait_for "$T/srv.out" '^connect: ' 20 || fail "server did not start"
lab_spawn b "$T/b.out" $B/qpc --data-dir "$T/b" $Q listen --json
it_wait_lines "$T/b.out" '"connected to server' 1 || fail "b did not connect"
for i in 1 2 3 4 5; do
    out=$(lab_exec a timeout 20 $B/qpc --data-dir "$T/a" $Q send "$BK" "lan message $i" 2>>"$T/a.err") ||
        fail "send $i exited $?: $out"
    echo "$out" | grep -q "delivered [0-9a-f]\{12\} to ${BK:0:12} (1 hop, via direct link," || fail "send $i not direct: $out"
done
sleep 0.5
for i in 1 2 3 4 5; do
    [ "$(grep -c "\"text\":\"lan message $i\"" "$T/b.out")" -eq 1 ] || fail "lan message $i not shown exactly once"
done
echo "ok 1 one NAT, no mDNS: 5 sends, each direct (LAN candidate), each once"

# --- 2. the REPL: one link per pair --------------------------------------------------------
it_tmux_start "$TS" \
    "ip netns exec $(lab_ns a) $B/qpc --data-dir $T/a $Q ${REPL_LOG:-} 2>$T/arepl.err"
wait_screen "connected to server $SRV"
run "/mesh send ${BK:0:16} hello from the repl"
wait_screen "delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via direct link,"
sleep 1.5   # both sides dialled (a at b's LAN address, b answering the punch): one stays
run "/mesh peers"
wait_screen "peer ${BK:0:12} +- +direct $LAB_B_IP:7100"
n=$(screen | grep -c "peer ${BK:0:12} ")
[ "$n" -eq 1 ] || fail "/mesh peers lists b $n times"
run "/mesh route"
wait_screen "${BK:0:12} .* direct $LAB_B_IP:7100"
[ -z "${REPL_SCREEN:-}" ] || screen >"$REPL_SCREEN"   # to look at by hand
run "/quit"
sleep 0.5
echo "ok 2 REPL: /mesh peers lists the peer once, direct; /mesh route shows the path"
tmux kill-session -t "$TS" 2>/dev/null || true
lab_cleanup

# --- 3. a host on two links, mDNS only --------------------------------------------------------
lab_new twolinks
M="--listen [::]:7100 --log-level info"
newid() { rm -rf "$1"; lab_exec "$2" $B/qpc --data-dir "$1" identity; }
AK=$(newid "$T/a2" a)
BK=$(newid "$T/b2" b)
# m's key below both, then above both: mesh links and sends must not depend on it
for order in smaller larger; do
    while :; do
        MK=$(newid "$T/m-$order" m)
        if [ $order = smaller ] && [[ "$MK" < "$AK" && "$MK" < "$BK" ]]; then break; fi
        if [ $order = larger ] && [[ "$MK" > "$AK" && "$MK" > "$BK" ]]; then break; fi
    done
    for r in a b; do
        lab_spawn $r "$T/$r-$order.out" $B/qpc --data-dir "$T/${r}2" $M listen --json
        eval "PID_$r=\$LAB_LAST_PID"
    done
    lab_spawn m "$T/m-$order.out" $B/qpc --data-dir "$T/m-$order" $M listen --json
    PID_m=$LAB_LAST_PID
    # nothing to send: mesh links to both, m's key smaller or larger
    it_wait_for "$T/m-$order.err" "link to ${AK:0:12} up \(direct " 20 || fail "$order: no mesh link m-a"
    it_wait_for "$T/m-$order.err" "link to ${BK:0:12} up \(direct " 20 || fail "$order: no mesh link m-b"
    kill $PID_a $PID_b; wait $PID_a $PID_b 2>/dev/null || true
    # one-shot sends from each link, knowing only m's id
    for r in a b; do
        out=$(lab_exec $r timeout 20 $B/qpc --data-dir "$T/${r}2" $M send "$MK" "from $r ($order)" 2>>"$T/$r-send.err") ||
            fail "$order: send from $r exited $?: $out"
        echo "$out" | grep -q "delivered [0-9a-f]\{12\} to ${MK:0:12} (1 hop, via direct link," || fail "$order: send from $r: $out"
        it_wait_lines "$T/m-$order.out" "\"text\":\"from $r ($order)\"" 1 5 || fail "$order: m did not show $r's message"
    done
    kill $PID_m; wait $PID_m 2>/dev/null || true
    echo "ok 3.$order m's key $order: mesh links to both links, sends from both direct"
done
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_paths_lan"
