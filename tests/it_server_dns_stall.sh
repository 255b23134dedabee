#!/usr/bin/env bash
# it_server_dns_stall.sh: a federation peer given by a name whose DNS server never
# answers does not stop the node (issue 12, item 7).
#
# In a network namespace whose /etc/resolv.conf (ip netns exec binds
# /etc/netns/NS/resolv.conf over it) names a DNS server on the namespace's loopback that
# takes every query and answers none, a node has [federation_peers] far.mesh.test at
# peer.never-answers.test:7001. Its link is dialled by name again and again; each lookup
# waits for the resolver's timeout. A client connects and enqueues meanwhile, and the
# node's own log shows it served between the start of a lookup and that lookup's end
# ("cannot dial ...: Timeout while contacting DNS servers"): with a blocking
# getaddrinfo the loop could do nothing in between. The timings are printed, not asserted.
# Needs root (ip netns). Env: QPC_BUILD.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
NS=qpc-dns-$$
TMP=$(mktemp -d)
DNS_PID=
NODE_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $NODE_PID $DNS_PID
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
echo PASS
