#!/usr/bin/env bash
# it_client_share.sh: sharing an identity. `qpc identity --qr` and `/mesh identity` draw a
# QR code that decodes (zbarimg, tests/lib/qr_decode.py) to the qpc: text printed under
# it; `qpc peer add` and `/mesh add` take that text as pasted, name and address
# included, and a message then reaches the peer by its name. Loopback only.
set -euo pipefail
export LANG=C.UTF-8 LC_ALL=C.UTF-8
B=${QPC_BUILD:?}/qpc
SRC=${QPC_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
command -v zbarimg >/dev/null || { echo "SKIP: zbarimg (zbar-tools) not installed"; exit 77; }
T=$(mktemp -d /tmp/it_client_share.XXXXXX)
# this test's own tmux server (see it_tmux_private in tests/lib/common.sh)
export TMUX_TMPDIR="$T"
tmux -f /dev/null start-server \; set-option -s exit-empty off
S=qpc_share_$$
PIDS=()
cleanup() {
    [ "${TMUX_TMPDIR:-}" != "$T" ] || tmux kill-server 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tmux capture-pane -p -t "$S" -S -100 2>/dev/null || true; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
screen() { tmux capture-pane -p -t "$S" -S -300; }
wait_for() {
    local i
    for ((i = 0; i < 100; i++)); do screen | grep -Eq -- "$1" && return 0; sleep 0.1; done
    fail "screen never showed: $1"
}
Q="--no-mdns --direct-timeout-ms 1000"

AK=$($B --data-dir "$T/a" identity)
$B --data-dir "$T/a" name me Anna-Lena
APORT=$(free_port)
$B --data-dir "$T/a" --listen "127.0.0.1:$APORT" identity --qr >"$T/qr.txt"
TEXT=$(grep '^qpc:' "$T/qr.txt")
[ "$TEXT" = "qpc:$AK?name=Anna-Lena&addr=127.0.0.1:$APORT" ] || fail "qpc: text: $TEXT"
DECODED=$(python3 "$SRC/tests/lib/qr_decode.py" <"$T/qr.txt") || fail "the QR code does not decode"
[ "$DECODED" = "$TEXT" ] || fail "the QR code says '$DECODED', the text '$TEXT'"
echo "ok 1 qpc identity --qr decodes to the qpc: text"

# B takes the decoded text as it is, then reaches A by the name in it
$B --data-dir "$T/b" peer add "$DECODED"
$B --data-dir "$T/b" peer list | grep -q "^$AK client 127.0.0.1:$APORT manual Anna-Lena$" ||
    fail "peer add of the text: $($B --data-dir "$T/b" peer list)"
$B --data-dir "$T/a" --listen "127.0.0.1:$APORT" $Q listen --count 1 --timeout 15 >"$T/a.out" 2>"$T/a.err" &
APID=$!; PIDS+=($APID)
sleep 0.5
rc=0; $B --data-dir "$T/b" --listen 127.0.0.1:0 $Q send Anna-Lena "hallo Anna-Lena" >"$T/b.out" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "send by the name from the text: exit $rc: $(cat "$T/b.out")"
wait "$APID" || true
grep -q "hallo Anna-Lena" "$T/a.out" || fail "A did not get it: $(cat "$T/a.out")"
echo "ok 2 peer add takes the pasted text; the name in it reaches the peer"

# the REPL draws it for /mesh identity, and /mesh add takes a pasted text
CK=$($B --data-dir "$T/c" identity)
$B --data-dir "$T/c" name me carol
CTEXT=$($B --data-dir "$T/c" --listen 127.0.0.1:7411 identity --qr | grep '^qpc:')
tmux -u new-session -d -s "$S" -x 200 -y 80 "$B --data-dir $T/a --listen 127.0.0.1:$APORT $Q 2>$T/repl.err; echo QPC-EXITED; sleep 30"
wait_for "^qpc>"
tmux send-keys -t "$S" -l -- "/mesh identity"; tmux send-keys -t "$S" Enter
wait_for "^qpc:$AK\?name=Anna-Lena&addr=127.0.0.1:$APORT$"
DECODED=$(screen | python3 "$SRC/tests/lib/qr_decode.py") || fail "the REPL's QR code does not decode"
[ "$DECODED" = "$TEXT" ] || fail "the REPL's QR code says '$DECODED'"
tmux send-keys -t "$S" -l -- "/mesh add $CTEXT"; tmux send-keys -t "$S" Enter
wait_for "added peer ${CK:0:12} at 127.0.0.1:7411 as carol"
tmux send-keys -t "$S" -l -- "/quit"; tmux send-keys -t "$S" Enter
wait_for "QPC-EXITED"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "ok 3 /mesh identity draws a QR code that decodes; /mesh add takes a pasted text"
echo "PASS it_client_share"
