#!/usr/bin/env bash
# it_client_server.sh: the REPL and its server. A server saved with `qpc server` is
# connected when the REPL starts, without /connect; /connect to an address where no
# server answers (or to no address at all) keeps the working session and saves nothing.
# Loopback only; every process and tmux session is removed on exit.
set -euo pipefail
export LANG=C.UTF-8 LC_ALL=C.UTF-8
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_server.XXXXXX)
# this test's own tmux server (see it_tmux_private in tests/lib/common.sh)
export TMUX_TMPDIR="$T"
tmux -f /dev/null start-server \; set-option -s exit-empty off
S=qpc_server_$$
PIDS=()
cleanup() {
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tmux capture-pane -p -t "$S" -S -100 2>/dev/null || true; exit 1; }
screen() { tmux capture-pane -p -t "$S" -S -300; }
wait_for() {
    local i
    for ((i = 0; i < ${2:-10} * 10; i++)); do screen | grep -Eq -- "$1" && return 0; sleep 0.1; done
    fail "screen never showed: $1"
}
run() { tmux send-keys -t "$S" -l -- "$1"; tmux send-keys -t "$S" Enter; }
[ -x "$B/qpc-server" ] || { echo "SKIP: no qpc-server"; exit 77; }

$B/qpc-server --listen 127.0.0.1:0 --data-dir "$T/srv" --mdns-enabled=false --metrics-listen= \
    >"$T/srv.out" 2>"$T/srv.err" &
PIDS+=($!)
for i in $(seq 100); do grep -q 'connect: *qpc --server' "$T/srv.out" "$T/srv.err" 2>/dev/null && break; sleep 0.1; done
SADDR=$(sed -n 's/.*connect: *qpc --server \([^ ]*\).*/\1/p' "$T/srv.out" "$T/srv.err" | head -1)
[ -n "$SADDR" ] || fail "server did not start"
BAD=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BK=$($B/qpc --data-dir "$T/b" identity)

# saved with qpc server: the REPL connects by itself
$B/qpc --data-dir "$T/a" server "$SADDR"
tmux -u new-session -d -s "$S" -x 200 -y 60 "$B/qpc --data-dir $T/a --listen 127.0.0.1:0 --no-mdns 2>$T/a.err; echo QPC-EXITED; sleep 30"
wait_for "^qpc>"
wait_for "connected to server $SADDR"
echo "ok 1 the saved server is connected at start"

# /connect to where nothing answers: said, the session stays, nothing is saved
run "/connect $BAD"
wait_for "trying $BAD; the session with $SADDR stays until it answers"
wait_for "(no answer from $BAD within 10 s|cannot connect to $BAD).*the session with the server before stays" 20
run "/send $BK still here"
wait_for "sent to server $SADDR"
wait_for "held [0-9a-f]{12} for ${BK:0:12} by $SADDR"
grep -q "${BAD#127.0.0.1:}" "$T/a/identity.json" && fail "the bad address was saved in identity.json"
[ "$(cat "$T/a/server")" = "$SADDR" ] || fail "the saved server changed: $(cat "$T/a/server")"
# no address at all
run "/connect nonsense"
wait_for "bad server address 'nonsense' \(want host:port\)"
run "/send $BK still here twice"
wait_for "held [0-9a-f]{12} for ${BK:0:12} by $SADDR.*" 
echo "ok 2 /connect to a bad address keeps the session and saves nothing"
run "/quit"
wait_for "QPC-EXITED"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_server"
