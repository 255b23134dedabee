#!/usr/bin/env bash
# it_client_repl.sh: drives the qpc REPL through a real terminal (tmux) and checks what
# the screen shows: every /mesh command, usage on wrong arguments, tab completion of
# commands and peer ids, and a message arriving while a line is half typed (the line
# must survive). Loopback only; every process and tmux session is removed on exit.
set -euo pipefail
B=${QPC_BUILD:?}/qpc
T=$(mktemp -d /tmp/it_client_repl.XXXXXX)
S=qpc_repl_$$
PIDS=()
cleanup() {
    tmux kill-session -t "$S" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; echo "--- screen:"; tmux capture-pane -p -t "$S" -S -200 || true; exit 1; }
screen() { tmux capture-pane -p -t "$S" -S -300; }
# wait_for PATTERN [seconds]: until the screen shows PATTERN (grep -E)
wait_for() {
    local i
    for ((i = 0; i < ${2:-10} * 10; i++)); do
        screen | grep -Eq -- "$1" && return 0
        sleep 0.1
    done
    fail "screen never showed: $1"
}
# type a line and press Enter
run() { tmux send-keys -t "$S" -l -- "$1"; tmux send-keys -t "$S" Enter; }
count() { screen | grep -Ec -- "$1" || true; }
listen_addr() { # file -> address printed by 'qpc listen'
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q 'listening as' "$1" 2>/dev/null && break
        sleep 0.1
    done
    sed -n 's/^listening as [0-9a-f]* on //p' "$1" | head -1
}

Q="--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 1000"
AK=$($B --data-dir "$T/a" identity)
CK=$($B --data-dir "$T/c" identity)
DK=$($B --data-dir "$T/d" identity)

# C: a plain listening peer
$B --data-dir "$T/c" $Q listen >"$T/c.out" 2>"$T/c.err" &
PIDS+=($!)
CADDR=$(listen_addr "$T/c.out")
[ -n "$CADDR" ] || { echo "FAIL: C did not start"; cat "$T/c.err"; exit 1; }

tmux new-session -d -s "$S" -x 220 -y 60 "$B --data-dir $T/a $Q 2>$T/a.err; echo QPC-EXITED; sleep 30"
wait_for "^qpc>"
AADDR=$(screen | sed -n 's/.*listening on \([0-9.:]*\) - .*/\1/p' | head -1)

run "/help"
wait_for "/mesh broadcast <topic> <msg> +publish to a broadcast channel"
wait_for "/unsubscribe <topic>"

run "/mesh identity"
wait_for "peer id:  $AK"

# wrong arguments print the command's usage
run "/mesh send"
wait_for "usage: /mesh send <peer_id> <msg>"
run "/mesh send abcd"
[ "$(count 'usage: /mesh send <peer_id> <msg>')" -ge 2 ] || wait_for "usage: /mesh send.*" 
run "/mesh server"
wait_for "usage: /mesh server <host:port>"
run "/mesh subscribe"
wait_for "usage: /mesh subscribe <topic> \[key\]"
run "/mesh broadcast onlytopic"
wait_for "usage: /mesh broadcast <topic> <msg>"
run "/send"
wait_for "usage: /send <peer_id\|key@domain> <msg>"
run "/unsubscribe"
wait_for "usage: /unsubscribe <topic>"
run "/mesh route extra"
wait_for "usage: /mesh route"
run "/mesh frobnicate"
wait_for "usage: /mesh peers\|server\|send"
run "/nonsense"
wait_for "unknown command '/nonsense'"
run "/mesh send 0123 hi"
wait_for "no known peer matches '0123'"

# /mesh server notes a server, persisted in the identity file
run "/mesh server 127.0.0.1:7999"
wait_for "noted server 127.0.0.1:7999"
grep -q '127.0.0.1:7999' "$T/a/identity.json" || fail "server not persisted"
run "/mesh identity"
wait_for "server:   127.0.0.1:7999"

# a peer, then /mesh peers, then completion of its id
run "/mesh add $CK $CADDR carol"
wait_for "added peer ${CK:0:12}"
run "/mesh peers"
wait_for "peer ${CK:0:12}  carol  (direct|client) $CADDR"
tmux send-keys -t "$S" -l -- "/mesh send ${CK:0:6}"
tmux send-keys -t "$S" Tab
wait_for "qpc> /mesh send $CK"
tmux send-keys -t "$S" -l -- " hello carol"
tmux send-keys -t "$S" Enter
wait_for "delivered [0-9a-f]{12} to ${CK:0:12} \(1 hop, via direct link, [0-9]+ ms\)"
for i in $(seq 50); do grep -q "hello carol" "$T/c.out" && break; sleep 0.1; done
grep -q "<${AK:0:12}> hello carol (direct, 1 hop)" "$T/c.out" || fail "C did not show the message"

run "/mesh route"
wait_for "${CK:0:12} +carol +direct +$CADDR +1 "

# command completion
tmux send-keys -t "$S" -l -- "/mesh sto"
tmux send-keys -t "$S" Tab
wait_for "qpc> /mesh store"
tmux send-keys -t "$S" Enter
wait_for "store: [0-9]+ envelopes"

run "/mesh subscribe news"
wait_for "subscribed to #news \(open channel\)"
run "/mesh broadcast news hello everyone"
wait_for "broadcast [0-9a-f]{12} on #news to 1 link"

# a message arriving while a line is half typed: printed above, the line survives
$B --data-dir "$T/d" peer add "$AK" "$AADDR"
tmux send-keys -t "$S" -l -- "/mesh ident"
sleep 0.3
$B --data-dir "$T/d" $Q send "$AK" "surprise from dave" >/dev/null 2>"$T/d.err"
wait_for "<${DK:0:12}> surprise from dave \(direct, 1 hop\)"
screen | grep -v '^$' | tail -1 | grep -q "^qpc> /mesh ident$" || fail "typed line lost"
tmux send-keys -t "$S" -l -- "ity"
tmux send-keys -t "$S" Enter
[ "$(count "peer id:  $AK")" -ge 2 ] || wait_for "peer id:  $AK"

run "/unsubscribe news"
wait_for "unsubscribed from #news"
run "/quit"
wait_for "QPC-EXITED"
# under -DQPC_SANITIZE=ON every report (leaks at exit included) fails the test
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_repl"
