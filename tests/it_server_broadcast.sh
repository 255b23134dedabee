#!/usr/bin/env bash
# it_server_broadcast.sh: broadcast channels through qpc-server, on loopback.
#
# Two nodes federated over mTLS (test PKI). Clients have no peer addresses and no mDNS,
# so there is no P2P link between any of them: whatever they see came through a node.
#   bob   on node 1, subscribed to #news and to #secret with key K1
#   carol on node 1, subscribed to #secret with key K2 only (not to #news)
#   dave  on node 2, subscribed to #news
#   1. alice (node 1) broadcasts on #news: bob and dave (over federation) show it exactly
#      once, carol does not; the exit code says it went to the server.
#   2. alice broadcasts on private #secret with K1: bob shows it, carol (K2) cannot.
#   3. crafted envelopes (tests/tools/qpc_bcast_inject.c): a replay, a re-hopped copy, a
#      forgery and its replay (refused by lookup, counted), a forged copy before the real
#      one, an expired one, one on its last hop, a
#      direct envelope and garbage are refused as they should; bob shows the two real ones
#      once each and none of the others.
#   4. erin subscribes to #news and connects later: the node hands her the live ones.
#   5. metrics count relayed and duplicate broadcasts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

B=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRC=${QPC_SRC:?set QPC_SRC to the source directory}
T=$(mktemp -d /tmp/it_server_broadcast.XXXXXX)
BASE=$(it_port_base 10)
P1=$BASE; F1=$((BASE + 1)); M1=$((BASE + 2))
P2=$((BASE + 3)); F2=$((BASE + 4))
PIDS=()

cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    it_dump_logs 30 "$T"/*.out "$T"/*.err
    exit 1
}

count() { grep -cF -- "$2" "$1" 2>/dev/null || true; }
metric() { curl -sf "http://127.0.0.1:$M1/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

it_make_pki "$T/pki" >/dev/null || fail "cannot make the test PKI"
K=$T/pki

HOME=$T "$B/qpc-server" --data-dir="$T/n1" --listen=127.0.0.1:$P1 --mdns-enabled=false \
    --metrics-listen=127.0.0.1:$M1 --federation-enabled --federation-domain=a.mesh.test \
    --federation-listen=127.0.0.1:$F1 --federation-cert=$K/node-a.der \
    --federation-key=$K/node-a.key.der --federation-ca=$K/ca.der \
    --federation-peers="b.mesh.test=127.0.0.1:$F2" --log-level=debug >"$T/n1.out" 2>"$T/n1.err" &
N1=$!; PIDS+=($N1)
HOME=$T "$B/qpc-server" --data-dir="$T/n2" --listen=127.0.0.1:$P2 --mdns-enabled=false \
    --metrics-listen= --federation-enabled --federation-domain=b.mesh.test \
    --federation-listen=127.0.0.1:$F2 --federation-cert=$K/node-b.der \
    --federation-key=$K/node-b.key.der --federation-ca=$K/ca.der \
    --federation-peers="a.mesh.test=127.0.0.1:$F1" --log-level=debug >"$T/n2.out" 2>"$T/n2.err" &
N2=$!; PIDS+=($N2)
it_wait_for "$T/n1.out" '^connect: ' 20 || fail "node 1 did not start"
it_wait_for "$T/n2.out" '^connect: ' 20 || fail "node 2 did not start"

Q="--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 600"
K1=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
K2=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
for who in alice bob carol dave erin; do "$B/qpc" --data-dir "$T/$who" identity >/dev/null; done
"$B/qpc" --data-dir "$T/bob" subscribe news
"$B/qpc" --data-dir "$T/bob" subscribe secret "$K1"
"$B/qpc" --data-dir "$T/carol" subscribe secret "$K2"
"$B/qpc" --data-dir "$T/dave" subscribe news
"$B/qpc" --data-dir "$T/erin" subscribe news

listen() {   # NAME SERVER_PORT
    "$B/qpc" --data-dir "$T/$1" $Q --server 127.0.0.1:$2 listen --json >"$T/$1.out" 2>"$T/$1.err" &
    PIDS+=($!)
    it_wait_for "$T/$1.out" 'connected to server' 20 || fail "$1 did not connect to its server"
}
listen bob $P1
listen carol $P1
listen dave $P2

# --- 1. open channel through one node and across federation ----------------------------
rc=0; "$B/qpc" --data-dir "$T/alice" $Q --server 127.0.0.1:$P1 broadcast news "hello through the node" \
    >"$T/alice1.out" 2>"$T/alice1.err" || rc=$?
[ $rc -eq 0 ] || fail "broadcast exit $rc, want 0 (the server took it)"
grep -q "to 0 links and server 127.0.0.1:$P1" "$T/alice1.out" || fail "alice had a P2P link or no server"
it_wait_for "$T/bob.out" '"text":"hello through the node","path":"server"' 10 || fail "bob did not show it"
it_wait_for "$T/dave.out" '"text":"hello through the node","path":"server"' 10 || fail "dave (node 2) did not show it"
echo "ok 1 open channel: bob (same node) and dave (federated node) show it"

# --- 2. private channel ------------------------------------------------------------------
"$B/qpc" --data-dir "$T/alice" subscribe secret "$K1"
rc=0; "$B/qpc" --data-dir "$T/alice" $Q --server 127.0.0.1:$P1 broadcast secret "for key holders" \
    >"$T/alice2.out" 2>"$T/alice2.err" || rc=$?
[ $rc -eq 0 ] || fail "private broadcast exit $rc"
it_wait_for "$T/bob.out" '"text":"for key holders"' 10 || fail "bob (K1) did not show the private one"
it_wait_for "$T/carol.out" '"event":"refused".*"error":"decryption failed' 10 ||
    fail "carol (K2) did not receive the private one, or opened it"
echo "ok 2 private channel: the key holder reads it, another key cannot"

# --- 3. replays, forgeries, expiry, hop limit --------------------------------------------
"$B/qpc_bcast_inject" 127.0.0.1:$P1 news "injected bulletin" >"$T/inject.out" 2>"$T/inject.err" \
    || fail "inject: exit $? ($(tr '\n' ' ' <"$T/inject.out"))"
echo "   node answers: $(tr '\n' ' ' <"$T/inject.out")"
it_wait_for "$T/bob.out" '"text":"injected bulletin"' 10 || fail "bob did not show the injected one"
it_wait_for "$T/bob.out" '"text":"injected bulletin \(after a forgery\)"' 10 ||
    fail "a forged copy made the node drop the real one"
[ "$(metric qpc_broadcasts_known_invalid_total)" -ge 1 ] ||
    fail "the replayed forgery was checked again instead of refused by lookup"
echo "ok 3 replay/rehop -> DUPLICATE, forged -> INVALID (its replay by lookup), expired -> EXPIRED, direct/garbage -> INVALID"

# --- 4. a late comer gets the live ones -----------------------------------------------------
listen erin $P1
it_wait_for "$T/erin.out" '"text":"hello through the node"' 10 || fail "erin did not get the kept broadcast"
it_wait_for "$T/erin.out" '"text":"injected bulletin"' 10 || fail "erin did not get the kept injected one"
echo "ok 4 a client that connects later gets the live broadcasts the node kept"

# --- exactly once, and nothing that should not be shown -------------------------------------
sleep 1.5
for who in bob dave erin; do
    [ "$(count "$T/$who.out" '"text":"hello through the node"')" -eq 1 ] ||
        fail "$who showed the news broadcast $(count "$T/$who.out" '"text":"hello through the node"') times"
done
[ "$(count "$T/bob.out" '"text":"for key holders"')" -eq 1 ] || fail "bob: private shown more than once"
[ "$(count "$T/bob.out" '"text":"injected bulletin"')" -eq 1 ] || fail "bob: injected shown more than once"
[ "$(count "$T/bob.out" '"text":"injected bulletin (after a forgery)"')" -eq 1 ] || fail "bob: second shown twice"
for bad in '"text":"forged"' '"text":"too old"' '"text":"last hop"'; do
    for who in bob dave erin; do
        [ "$(count "$T/$who.out" "$bad")" -eq 0 ] || fail "$who showed $bad"
    done
done
[ "$(count "$T/carol.out" '"event":"broadcast"')" -eq 0 ] || fail "carol showed a broadcast"
[ "$(count "$T/dave.out" '"text":"for key holders"')" -eq 0 ] || fail "dave showed the private one"
echo "ok 5 each broadcast shown exactly once; carol (not subscribed / wrong key) shows none"

# --- metrics --------------------------------------------------------------------------------
RELAYED=$(metric qpc_broadcasts_relayed_total)
DUP=$(metric qpc_broadcasts_duplicate_total)
[ "${RELAYED:-0}" -ge 6 ] || fail "qpc_broadcasts_relayed_total is '${RELAYED}'"
[ "${DUP:-0}" -ge 2 ] || fail "qpc_broadcasts_duplicate_total is '${DUP}'"
echo "ok 6 metrics: relayed=$RELAYED duplicate=$DUP received=$(metric qpc_broadcasts_received_total)"
kill -TERM $N1 $N2
wait $N1 || fail "node 1 did not exit 0"
wait $N2 || fail "node 2 did not exit 0"
! grep -lE 'AddressSanitizer|LeakSanitizer|runtime error' "$T"/*.err || fail "sanitizer report"
echo PASS
