#!/usr/bin/env bash
# it_client_repl.sh: drives the qpc REPL through a real terminal (tmux) and checks what
# the screen shows: every /mesh command, usage on wrong arguments, tab completion of
# commands and peer ids, and a message arriving while a line is half typed (the line
# must survive). Loopback only; every process and tmux session is removed on exit.
set -euo pipefail
export LANG=C.UTF-8 LC_ALL=C.UTF-8   # the terminal and qpc speak UTF-8 (issue 13)
B=${QPC_BUILD:?}/qpc
T=$(mktemp -d /tmp/it_client_repl.XXXXXX)
# this test's own tmux server (see it_tmux_private in tests/lib/common.sh)
export TMUX_TMPDIR="$T"
tmux -f /dev/null start-server \; set-option -s exit-empty off
S=qpc_repl_$$
PIDS=()
cleanup() {
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
# a command that fails outside fail() (set -e) still says where and what the screen showed
trap 'rc=$?; echo "FAIL: line $LINENO exited $rc"; tmux capture-pane -p -t "$S" -S -60 2>/dev/null | grep -v "^$" | tail -20 || true; cat "$T/d.err" 2>/dev/null | tail -5' ERR

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
# wait_joined PATTERN: like wait_for, on the screen with wrapped lines joined (long text)
wait_joined() {
    local i
    for ((i = 0; i < 100; i++)); do
        tmux capture-pane -p -J -t "$S" -S -3000 | grep -Eq -- "$1" && return 0
        sleep 0.1
    done
    fail "screen never showed: $1"
}
listen_addr() { # file -> address printed by 'qpc listen'
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q 'listening as' "$1" 2>/dev/null && break
        sleep 0.1
    done
    sed -n 's/^listening as [0-9a-f]* on //p' "$1" | head -1
}

Q="--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 1000"
# dave's one-shot sends and broadcasts: a direct path may take a while to come up when
# the machine is busy (CTest runs two tests at once); with 1 s it would be handed over,
# and qpc send would exit 3 with the message left in dave's outbox.
QD="--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 15000"
AK=$($B --data-dir "$T/a" identity)
CK=$($B --data-dir "$T/c" identity)
DK=$($B --data-dir "$T/d" identity)

# C: a plain listening peer
$B --data-dir "$T/c" $Q listen >"$T/c.out" 2>"$T/c.err" &
PIDS+=($!)
CADDR=$(listen_addr "$T/c.out")
[ -n "$CADDR" ] || { echo "FAIL: C did not start"; cat "$T/c.err"; exit 1; }

tmux -u new-session -d -s "$S" -x 220 -y 60 "$B --data-dir $T/a $Q 2>$T/a.err; echo QPC-EXITED; sleep 30"
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
$B --data-dir "$T/d" $QD send "$AK" "surprise from dave" >/dev/null 2>"$T/d.err"
wait_for "<${DK:0:12}> surprise from dave \(direct, 1 hop\)"
screen | grep -v '^$' | tail -1 | grep -q "^qpc> /mesh ident$" || fail "typed line lost"
tmux send-keys -t "$S" -l -- "ity"
tmux send-keys -t "$S" Enter
[ "$(count "peer id:  $AK")" -ge 2 ] || wait_for "peer id:  $AK"

# names: given with peer add or /name, accepted wherever a peer id is, shown on messages
$B --data-dir "$T/d" name "$AK" alice
$B --data-dir "$T/d" peer list | grep -q "^$AK client $AADDR [a-z]* alice$" ||
    fail "peer list does not show the name: $($B --data-dir "$T/d" peer list)"
run "/name ${DK:0:8} dave"
wait_for "${DK:0:12} is dave now"
$B --data-dir "$T/d" $QD send alice "hello by name" >/dev/null 2>>"$T/d.err" || fail "qpc send alice: $(cat "$T/d.err")"
wait_for "<dave> hello by name \(direct, 1 hop\)"
run "/mesh send carol to carol by name"
for i in $(seq 50); do grep -q "to carol by name" "$T/c.out" && break; sleep 0.1; done
grep -q "> to carol by name (direct" "$T/c.out" || fail "/mesh send carol did not reach carol"
run "/mesh peers"
wait_for "peer ${DK:0:12}  dave  "
# a 1-digit prefix is refused, with the candidates listed
run "/mesh send ${CK:0:1} typo"
wait_for "'${CK:0:1}' is (too short|ambiguous).*${CK:0:12} \(carol\)"
grep -q typo "$T/c.out" && fail "a 1-digit prefix reached carol"
# sending to oneself says so
run "/mesh send $AK hello me"
wait_for "is your own peer id: a message to yourself is not sent"

# text in every language, typed on one side, arrives intact on the other
run "/mesh send ${CK:0:8} Grüße 😀 Привет"
for i in $(seq 50); do grep -q "Привет" "$T/c.out" && break; sleep 0.1; done
grep -q "> Grüße 😀 Привет (direct, 1 hop)" "$T/c.out" || fail "UTF-8 text not intact: $(grep -a Gr "$T/c.out")"

# what a peer sends cannot drive the terminal: control codes and malformed UTF-8 escaped
$B --data-dir "$T/d" $QD send "$AK" "$(printf 'esc \033[31mred\033[0m bad \377\376 end')" >/dev/null 2>>"$T/d.err"
wait_for 'esc \\x1b\[31mred\\x1b\[0m bad \\xff\\xfe end'

# a long message is shown whole, on the screen and by qpc listen
LONG="$(head -c 3000 /dev/zero | tr '\0' z)TAIL"
$B --data-dir "$T/d" $QD send "$AK" "$LONG" >/dev/null 2>>"$T/d.err"
wait_joined "<dave> z{3000}TAIL \(direct, 1 hop\)"
run "/mesh send ${CK:0:8} $LONG"
for i in $(seq 50); do grep -q "zTAIL" "$T/c.out" && break; sleep 0.1; done
grep -Eq "> z{3000}TAIL \(direct" "$T/c.out" || fail "qpc listen cut the long message"

# a paste of 100 KB: the REPL keeps running, the text over the largest message is refused
# whole and nothing of it is sent
python3 -c "print('/mesh send ${CK:0:8} ' + 'x' * 100000, end='')" >"$T/paste"
tmux load-buffer -b qpcpaste "$T/paste"
tmux paste-buffer -d -b qpcpaste -t "$S"
sleep 0.5
tmux send-keys -t "$S" Enter
wait_for "that message is 100000 bytes; the largest is 65536 bytes: nothing was sent"
grep -q xxxxxxxxxx "$T/c.out" && fail "part of the refused message was sent"
# past the longest line (256 KiB) the line is dropped as it comes
python3 -c "print('w' * 300000, end='')" >"$T/paste"
tmux load-buffer -b qpcpaste "$T/paste"
tmux paste-buffer -d -b qpcpaste -t "$S"
tmux send-keys -t "$S" Enter
wait_for "that line is over [0-9]+ bytes .*it was dropped whole"
tmux send-keys -t "$S" C-l
run "/mesh identity"
[ "$(count "peer id:  $AK")" -ge 1 ] || wait_for "peer id:  $AK"
# 60 KB (under the largest message) goes whole
python3 -c "print('/mesh send ${CK:0:8} ' + 'y' * 60000 + 'END', end='')" >"$T/paste"
tmux load-buffer -b qpcpaste "$T/paste"
tmux paste-buffer -d -b qpcpaste -t "$S"
tmux send-keys -t "$S" Enter
for i in $(seq 100); do grep -q "yEND" "$T/c.out" && break; sleep 0.1; done
grep -qF "> $(head -c 60000 /dev/zero | tr '\0' y)END (direct" "$T/c.out" || fail "the 60 KB message did not arrive whole"
tmux send-keys -t "$S" C-l

# Ctrl-C clears the typed line and the REPL stays
tmux send-keys -t "$S" -l -- "/mesh identity half typed"
sleep 0.3
tmux send-keys -t "$S" C-c
sleep 0.5
screen | grep -v '^$' | tail -1 | grep -Eq "^qpc> ?$" || fail "Ctrl-C did not clear the line"
run "/mesh store"
wait_for "store: [0-9]+ envelopes"

# a bad channel key is named as such
run "/mesh subscribe club not-a-key"
wait_for "cannot subscribe to 'club': that is not a channel key: a key is 32 bytes"
# someone using my channel's name with another key: said once, not for every message
K1=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
K2=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
run "/mesh subscribe club $K1"
wait_for "subscribed to #club \(private channel\)"
$B --data-dir "$T/d" subscribe club "$K2"
$B --data-dir "$T/d" $QD broadcast club "one" >/dev/null 2>>"$T/d.err"
$B --data-dir "$T/d" $QD broadcast club "two" >/dev/null 2>>"$T/d.err"
wait_for "#club: a broadcast from dave could not be read with your key for #club"
sleep 1
[ "$(count "could not be read with your key")" -eq 1 ] || fail "the key mismatch was reported more than once"
[ "$(count "decryption failed")" -eq 0 ] || fail "'decryption failed' shown"

# /mesh store counts what waits: a message for a peer that is not there
EK=$($B --data-dir "$T/e" identity)
run "/mesh add $EK 127.0.0.1:9 erin"
wait_for "added peer ${EK:0:12} at 127.0.0.1:9 as erin"
run "/mesh send erin are you there"
wait_for "sending [0-9a-f]{12} to erin"
run "/mesh store"
wait_for "waiting: 1 message: "
wait_for "  for erin: "

run "/unsubscribe news"
wait_for "unsubscribed from #news"
# a broadcast from dave on a channel A reads; C keeps it (and A's own) for later peers
run "/mesh subscribe news"
wait_for "subscribed to #news \(open channel\)" 
$B --data-dir "$T/d" $QD broadcast news "dave on news" >/dev/null 2>>"$T/d.err"
wait_for "\[#news\] <dave> dave on news"
run "/quit"
wait_for "QPC-EXITED"

# while the REPL is away: a message arrives through 'qpc listen' (not read by anyone)
$B --data-dir "$T/a" $Q --listen "$AADDR" listen --count 1 --timeout 20 >"$T/a_listen.out" 2>>"$T/a.err" &
LPID=$!
sleep 1
$B --data-dir "$T/d" $QD send alice "while you were out" >/dev/null 2>>"$T/d.err"
wait "$LPID" || fail "A's listen did not get the message: $(cat "$T/a_listen.out")"
grep -q "<dave> while you were out" "$T/a_listen.out" || fail "listen: $(cat "$T/a_listen.out")"
grep -q "#news" "$T/a_listen.out" && fail "a broadcast shown before was shown again by listen"

# the REPL again: unread counts at start, old broadcasts not shown again (own included),
# the history with times and outcomes, Ctrl-D leaves
tmux kill-session -t "$S"
tmux -u new-session -d -s "$S" -x 220 -y 60 "$B --data-dir $T/a $Q 2>>$T/a.err; echo QPC-EXITED; sleep 30"
wait_for "^qpc>"
wait_for "unread: 1 from dave \(/history <name\|#topic> shows them\)"
run "/mesh peers"
wait_for "peer ${CK:0:12}  carol  direct"
sleep 2
screen | grep -q "\[#news\]" && fail "a broadcast already shown was shown again after the restart"
run "/history carol"
wait_for "\[[0-9]{2}:[0-9]{2}\] -> carol: Grüße 😀 Привет  \(delivered direct at [0-9]{2}:[0-9]{2}\)"
wait_for "-> carol: to carol by name  \(delivered direct at"
run "/history dave"
wait_for "\[[0-9]{2}:[0-9]{2}\] <dave> while you were out  \(sent [0-9]{2}:[0-9]{2}, direct\)"
run "/history erin"
wait_for "-> erin: are you there  \((queued|sending)"
run "/history #news"
wait_for "\[#news\] <dave> dave on news  \(sent"
wait_for "\[#news\] <me> hello everyone  \(broadcast\)"
tmux send-keys -t "$S" C-d
wait_for "QPC-EXITED"
# the same for scripts
$B --data-dir "$T/a" history carol 5 --json >"$T/hist.json" || fail "qpc history: exit $?"
grep -q '"mine":true,"to":"'"$CK"'","name":"carol","text":"to carol by name","sent_ms":[0-9]*,"received_ms":[0-9]*,"state":"delivered"' "$T/hist.json" ||
    fail "qpc history --json: $(cat "$T/hist.json")"
$B --data-dir "$T/a" history dave >"$T/hist.txt"
grep -q "<dave> while you were out" "$T/hist.txt" || fail "qpc history dave: $(cat "$T/hist.txt")"
# under -DQPC_SANITIZE=ON every report (leaks at exit included) fails the test
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_repl"
