#!/usr/bin/env bash
# it_dns_stall.sh: a name whose DNS server never answers stops neither the node nor the
# client (issue 12, item 7: getaddrinfo used to block the one loop).
#
# In a network namespace whose /etc/resolv.conf (ip netns exec binds
# /etc/netns/NS/resolv.conf over it) names a DNS server on the namespace's loopback that
# takes every query and answers none:
#   1. A node has [federation_peers] far.mesh.test at peer.never-answers.test:7001. Its
#      link is dialled by name again and again; each lookup waits for the resolver's
#      timeout. A client connects and enqueues meanwhile, and the node's own log shows it
#      served between the start of a lookup and that lookup's end ("cannot dial ...:
#      Timeout while contacting DNS servers"): a blocking lookup allows nothing between.
#   2. The qpc REPL (in tmux) is told /connect srv.never-answers.test:7000 and then
#      /mesh identity: the identity is on the screen before the lookup's timeout line.
#   3. A static peer given by name (peers = ["localhost:PORT"], /etc/hosts answers) is
#      looked up and linked to, without a key known before.
# The timings are printed, not asserted. Needs root (ip netns) and tmux. Env: QPC_BUILD.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
QPC=$BUILD/qpc
NS=qpc-dns-$$
S=qpc_dns_$$
TMP=$(mktemp -d)
it_tmux_private "$TMP"
DNS_PID=
NODE_PID=
PEER_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if [ $rc -ne 0 ] && tmux has-session -t "$S" 2>/dev/null; then
        echo "--- screen:"; it_tmux_screen "$S" | tail -30
    fi
    [ "${TMUX_TMPDIR:-}" != "$TMP" ] || tmux kill-server 2>/dev/null || true
    it_kill_all KILL $NODE_PID $PEER_PID $DNS_PID
    it_netns_del "$NS"
    rm -rf "/etc/netns/$NS"
    [ $rc -eq 0 ] || it_dump_logs 40 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

it_require_netns
ip netns add "$NS"
ip -n "$NS" link set lo up
mkdir -p "/etc/netns/$NS"
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' >"/etc/netns/$NS/resolv.conf"
ip netns exec "$NS" grep -q '^nameserver 127.0.0.1$' /etc/resolv.conf \
    || it_skip "ip netns exec does not bind /etc/netns/$NS/resolv.conf here"

# The DNS server that never answers: it counts the queries it swallows.
cat >"$TMP/silent_dns.py" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
n = 0
while True:
    s.recv(4096)
    n += 1
    print("query", n, flush=True)
PYEOF
ip netns exec "$NS" python3 "$TMP/silent_dns.py" >"$TMP/dns.out" 2>"$TMP/dns.err" &
DNS_PID=$!
it_wait_for "$TMP/dns.out" '^ready$' 10 || fail "the silent DNS server did not start"

KEY=$(HOME=$TMP "$SRV" --data-dir="$TMP/far" --print-federation-key 2>/dev/null)
ip netns exec "$NS" env HOME="$TMP" "$SRV" --data-dir="$TMP/node" --listen=127.0.0.1:7000 \
    --mdns-enabled=false --metrics-listen= --federation-enabled --federation-domain=near.mesh.test \
    --federation-listen=127.0.0.1:7001 --federation-peers="far.mesh.test=peer.never-answers.test:7001 $KEY" \
    --log-level=debug >"$TMP/node.out" 2>"$TMP/node.err" &
NODE_PID=$!
it_wait_for "$TMP/node.out" '^connect: ' 20 || fail "the node did not start"
it_wait_for "$TMP/node.err" 'looking up peer\.never-answers\.test:7001' 30 \
    || fail "the node never looked the federation peer's name up"
it_wait_for "$TMP/dns.out" '^query ' 10 || fail "the lookup did not reach the silent DNS server"

# While that lookup waits, a client is served.
BOB=$("$TC" -i "$TMP/bob.json" id)
t0=$(date +%s.%N)
ip netns exec "$NS" timeout 60 "$TC" -S 127.0.0.1:7000 -i "$TMP/alice.json" send "$BOB" 1 \
    >"$TMP/send.out" 2>"$TMP/send.err" || fail "the client's send failed"
t1=$(date +%s.%N)
grep -q "summary sent=1 OK=1$" "$TMP/send.out" || fail "enqueue not answered OK: $(tail -1 "$TMP/send.out")"
it_wait_for "$TMP/node.err" 'cannot dial peer\.never-answers\.test:7001: Timeout while contacting DNS servers' 60 \
    || fail "the lookup did not end with a timeout"
t2=$(date +%s.%N)

# The order in the node's log: a lookup began, the client was served, then that lookup ended.
awk '/looking up peer\.never-answers\.test:7001/ { pending = 1; next }
     /cannot dial peer\.never-answers\.test:7001/ { if (served) { ok = 1; exit } pending = 0; next }
     /client .* connected from/ { if (pending) served = 1 }
     END { exit ok ? 0 : 1 }' "$TMP/node.err" \
    || fail "the client was not served while a lookup was pending: $(grep -E 'looking up|cannot dial|connected from' "$TMP/node.err")"
printf 'ok: a client was served while the node waited for DNS (send took %.2f s; the lookup ended %.2f s later; %s queries swallowed)\n' \
    "$(awk "BEGIN { print $t1 - $t0 }")" "$(awk "BEGIN { print $t2 - $t1 }")" "$(grep -c '^query ' "$TMP/dns.out")"

kill -TERM "$NODE_PID"; wait "$NODE_PID" || fail "the node did not exit 0"; NODE_PID=

# --- 2. the client: /connect by a name that never resolves ----------------------------------
command -v tmux >/dev/null || it_skip "tmux is not installed"
export LANG=C.UTF-8 LC_ALL=C.UTF-8
tmux -u new-session -d -s "$S" -x 220 -y 60 \
    "ip netns exec $NS $QPC --data-dir $TMP/a --listen 127.0.0.1:0 --no-mdns 2>$TMP/a.err; echo QPC-EXITED; sleep 30"
it_tmux_wait "$S" '^qpc>' 20 || fail "the REPL did not start"
t0=$(date +%s.%N)
it_tmux_type "$S" "/connect srv.never-answers.test:7000"
it_tmux_type "$S" "/mesh identity"
it_tmux_wait "$S" 'peer id: +[0-9a-f]{64}' 30 || fail "/mesh identity was not answered"
t1=$(date +%s.%N)
it_tmux_wait "$S" 'srv\.never-answers\.test:7000: name lookup: Timeout while contacting DNS servers' 60 \
    || fail "the client's lookup did not end with a timeout"
t2=$(date +%s.%N)
it_tmux_screen "$S" | awk '/peer id: +[0-9a-f]/ { if (!seen) id = NR; seen = 1 }
    /srv\.never-answers\.test:7000: name lookup: Timeout/ { if (!to) to = NR }
    END { exit id > 0 && to > id ? 0 : 1 }' \
    || fail "the REPL answered only after the lookup ended"
printf 'ok: the REPL answered /mesh identity %.2f s after /connect, the lookup timed out %.2f s later\n' \
    "$(awk "BEGIN { print $t1 - $t0 }")" "$(awk "BEGIN { print $t2 - $t1 }")"
it_tmux_type "$S" "/quit"
it_tmux_wait "$S" 'QPC-EXITED' 20 || fail "the REPL did not quit"

# --- 3. a static peer by name ------------------------------------------------------------------
PORT=$(it_port_base 1)
AK=$("$QPC" --data-dir "$TMP/sa" identity)
ip netns exec "$NS" "$QPC" --data-dir "$TMP/sb" --listen 127.0.0.1:$PORT --no-mdns --log-level info \
    listen >"$TMP/sb.out" 2>"$TMP/sb.err" &
NODE_PID=$!
ip netns exec "$NS" "$QPC" --data-dir "$TMP/sa" --listen 127.0.0.1:0 --no-mdns --log-level info \
    --peers "localhost:$PORT" listen >"$TMP/sa.out" 2>"$TMP/sa.err" &
PEER_PID=$!
it_wait_for "$TMP/sb.err" "link to ${AK:0:12} up" 20 || fail "the static peer given by name was never linked to"
echo "ok: a static peer given as localhost:$PORT was looked up and linked to"
echo PASS
