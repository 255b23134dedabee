#!/usr/bin/env bash
# it_server_delivery.sh: the node's client service, end to end on loopback.
#
# Runs the real qpc-server and the test client tests/tools/qpc_testclient:
#   - configuration: --help lists every option, a bad value / unknown key / bad file is
#     refused with a clear message and exit 2, --check-config prints the effective
#     settings with their origin (flag over env over file);
#   - first start makes the data directory and the identity, and prints peer id,
#     address and the connect command; a restart keeps the peer id;
#   - enqueue (single and batched), fetch (paged), ack, push without polling;
#   - a client sees and deletes only its own queue;
#   - refusals with distinct statuses: quota, size, TTL, forged sender, unknown domain;
#   - metrics endpoint; SIGTERM exits 0.
# mDNS is off (no traffic beyond loopback).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
PORT=$(it_port_base 4)
MPORT=$((PORT + 1))
SERVER_PID=
LISTEN_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL $SERVER_PID $LISTEN_PID
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.out "$TMP"/*.err
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

start_server() {   # start_server EXTRA-FLAGS...
    # emptied here, not by the background redirection: that runs later, so a wait could
    # still see the previous start's "connect:" line
    : >"$TMP/server.out"
    HOME=$TMP "$SRV" --data-dir="$TMP/data" --listen=127.0.0.1:$PORT --mdns-enabled=false \
        --metrics-listen=127.0.0.1:$MPORT "$@" >"$TMP/server.out" 2>"$TMP/server.err" &
    SERVER_PID=$!
    it_wait_for "$TMP/server.out" '^connect: ' 20 || fail "server did not start"
}

stop_server() {
    kill -TERM "$SERVER_PID"
    local rc=0
    timeout 20 tail --pid="$SERVER_PID" -f /dev/null || true
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    [ $rc -eq 0 ] || fail "server exited with $rc after SIGTERM"
}

tc() { timeout 60 "$TC" -S 127.0.0.1:$PORT "$@"; }

# --- configuration --------------------------------------------------------------------
"$SRV" --help >"$TMP/help.out"
for opt in --listen --data-dir --log-level --mdns-enabled --mdns-interfaces \
           --federation-enabled --federation-domain --federation-listen --federation-trust \
           --federation-cert --print-federation-key \
           --federation-key --federation-ca --federation-peers --metrics-listen \
           --max-frame-size --max-envelope-size --queue-quota --queue-max-bytes \
           --default-ttl --max-ttl --relay-enabled --relay-rate-limit --idle-timeout-ms \
           --config --check-config --help --version; do
    grep -q -- "$opt" "$TMP/help.out" || fail "--help does not list $opt"
done
echo "ok: --help lists every option"

rc=0; "$SRV" --max-ttl=99999999 2>"$TMP/bad1.err" || rc=$?
[ $rc -eq 2 ] || fail "out-of-range flag gave exit $rc, want 2"
grep -q "max-ttl.*out of range" "$TMP/bad1.err" || fail "no clear message: $(cat "$TMP/bad1.err")"
rc=0; "$SRV" --lisen=127.0.0.1:1 2>"$TMP/bad2.err" || rc=$?
[ $rc -eq 2 ] && grep -q "did you mean '--listen'" "$TMP/bad2.err" || fail "unknown flag: rc=$rc $(cat "$TMP/bad2.err")"
printf 'listen = "127.0.0.1:7000"\nqueue_quota = many\n' >"$TMP/bad.toml"
rc=0; "$SRV" --config "$TMP/bad.toml" --check-config 2>"$TMP/bad3.err" || rc=$?
[ $rc -eq 2 ] && grep -q "bad.toml:2:" "$TMP/bad3.err" || fail "bad file: rc=$rc $(cat "$TMP/bad3.err")"
rc=0; "$SRV" --config "$TMP/missing.toml" 2>"$TMP/bad4.err" || rc=$?
[ $rc -eq 2 ] || fail "missing explicit config file gave exit $rc"
rc=0; "$SRV" --federation-enabled=true --federation-trust=ca 2>"$TMP/bad5.err" || rc=$?
[ $rc -eq 2 ] && grep -q "federation_cert" "$TMP/bad5.err" || fail "CA federation without certs: rc=$rc"
rc=0; "$SRV" --federation-enabled=true --federation-peers=b.mesh=10.0.0.2:7001 2>"$TMP/bad6.err" || rc=$?
[ $rc -eq 2 ] && grep -q "write \"b.mesh\" = \"10.0.0.2:7001 <its key>\"" "$TMP/bad6.err" \
    || fail "key federation with a peer without key: rc=$rc $(cat "$TMP/bad6.err")"
it_make_pki "$TMP/pki" >/dev/null || fail "cannot make the test PKI"
K=$TMP/pki
# check_files WANT CERT KEY CA: --check-config of CA federation with these files.
check_files() {
    local want=$1 rc=0
    HOME=$TMP "$SRV" --federation-enabled --federation-trust=ca --federation-domain=a.mesh.test \
        --federation-cert="$2" --federation-key="$3" --federation-ca="$4" --check-config \
        >/dev/null 2>"$TMP/files.err" || rc=$?
    [ $rc -eq 2 ] && grep -q -- "$want" "$TMP/files.err" \
        || fail "--check-config with $2 $3 $4: rc=$rc, want '$want': $(cat "$TMP/files.err")"
}
check_files "federation_cert $TMP/none.der: cannot be read: No such file" "$TMP/none.der" "$K/node-a.key.der" "$K/ca.der"
check_files "federation_key $K/ca.der: not a private key in DER (it is the CA certificate" "$K/node-a.der" "$K/ca.der" "$K/ca.der"
check_files "federation_key $K/node-b.key.der does not belong to federation_cert" "$K/node-a.der" "$K/node-b.key.der" "$K/ca.der"
check_files "federation_ca $K/node-b.der: not a CA certificate" "$K/node-a.der" "$K/node-a.key.der" "$K/node-b.der"
check_files "federation_cert $K/ca.der is the CA certificate" "$K/ca.der" "$K/node-a.key.der" "$K/ca.der"
check_files "federation_cert $K/rogue.der is not signed by federation_ca" "$K/rogue.der" "$K/rogue.key.der" "$K/ca.der"
check_files "federation_cert $K/node-b.der does not name federation_domain a.mesh.test" "$K/node-b.der" "$K/node-b.key.der" "$K/ca.der"
HOME=$TMP "$SRV" --federation-enabled --federation-trust=ca --federation-domain=a.mesh.test \
    --federation-cert="$K/node-a.der" --federation-key="$K/node-a.key.der" --federation-ca="$K/ca.der" \
    --check-config >/dev/null 2>"$TMP/files.err" || fail "good federation files refused: $(cat "$TMP/files.err")"
# The node itself names the file too (exit 2 before anything starts).
rc=0; HOME=$TMP "$SRV" --data-dir="$TMP/nofiles" --federation-enabled --federation-trust=ca \
    --federation-cert="$TMP/none.der" --federation-key="$K/node-a.key.der" --federation-ca="$K/ca.der" \
    --mdns-enabled=false --metrics-listen= --listen=127.0.0.1:0 2>"$TMP/nofiles.err" || rc=$?
[ $rc -eq 2 ] && grep -q "federation_cert $TMP/none.der: cannot be read" "$TMP/nofiles.err" \
    || fail "the node did not name the missing certificate: rc=$rc $(cat "$TMP/nofiles.err")"
echo "ok: --check-config and the node name a federation file that is missing, not DER, the CA, or not matching"
echo "ok: bad configuration gives exit 2 and a clear message"

printf 'queue_quota = 50\nlog_level = "warn"\nfederation_domain = "file.mesh.local"\n' >"$TMP/good.toml"
QPC_QUEUE_QUOTA=60 QPC_LOCAL_DOMAIN=env.mesh.local HOME=$TMP \
    "$SRV" --config="$TMP/good.toml" --check-config --queue-quota=70 >"$TMP/check.out" 2>"$TMP/check.err" \
    || fail "--check-config of a valid file failed"
grep -qE '^queue_quota = 70 .*flag' "$TMP/check.out" || fail "flag does not win: $(grep quota "$TMP/check.out")"
grep -qE '^federation_domain = "env.mesh.local" .*env' "$TMP/check.out" || fail "env does not beat file"
grep -qE '^log_level = "warn" .*file' "$TMP/check.out" || fail "file does not beat default"
echo "ok: --check-config shows flag > env > file > default"

mkdir "$TMP/cwd"
printf 'queue_quota = 42\n' >"$TMP/cwd/qpc-server.toml"
(cd "$TMP/cwd" && HOME=$TMP "$SRV" --check-config >"$TMP/cwd.out" 2>"$TMP/cwd.err") || fail "default file"
grep -qE '^queue_quota = 42 .*file' "$TMP/cwd.out" || fail "./qpc-server.toml is not read by default"
(cd "$TMP/cwd" && QPC_CONFIG=$TMP/good.toml HOME=$TMP "$SRV" --check-config >"$TMP/cwd2.out" 2>&1) || fail "QPC_CONFIG"
grep -qE '^queue_quota = 50 .*file' "$TMP/cwd2.out" || fail "QPC_CONFIG does not name the file"
echo "ok: ./qpc-server.toml is the default file, QPC_CONFIG names another"

# --- first start --------------------------------------------------------------------------
start_server --queue-quota=30 --max-envelope-size=4096 --max-ttl=7200 --default-ttl=3600 \
    --federation-domain=here.mesh.test
[ -f "$TMP/data/identity.json" ] && [ -f "$TMP/data/queue.db" ] || fail "data dir not made"
PEER=$(sed -n 's/^peer id: *//p' "$TMP/server.out")
[[ "$PEER" =~ ^[0-9a-f]{64}$ ]] || fail "no peer id printed"
grep -q "^connect: *qpc --server 127.0.0.1:$PORT$" "$TMP/server.out" || fail "no connect command"
echo "ok: node started, peer id $PEER"

ALICE=$("$TC" -i "$TMP/alice.json" id)
BOB=$("$TC" -i "$TMP/bob.json" id)
EVE=$("$TC" -i "$TMP/eve.json" id)

# push: Bob listens, Alice sends; Bob gets them without polling
timeout 60 "$TC" -S 127.0.0.1:$PORT -i "$TMP/bob.json" listen 3 -T 30 >"$TMP/listen.out" 2>"$TMP/listen.err" &
LISTEN_PID=$!
it_wait_for "$TMP/listen.out" '^ready$' 20 || fail "listener not ready"
tc -i "$TMP/alice.json" send "$BOB" 3 >"$TMP/send1.out" || fail "send failed"
grep -q "summary sent=3 OK=3$" "$TMP/send1.out" || fail "single enqueue: $(tail -1 "$TMP/send1.out")"
wait "$LISTEN_PID" || fail "listener did not get 3 pushes"
LISTEN_PID=
[ "$(grep -c '^push ' "$TMP/listen.out")" -eq 3 ] || fail "wrong push count"
for id in $(awk '/^ok /{print $3}' "$TMP/send1.out"); do
    grep -q "^push [0-9]* $id " "$TMP/listen.out" || fail "pushed items lack $id"
done
echo "ok: three enqueues acknowledged and pushed to the connected recipient"

# batch enqueue with per-item status; quota 30 => 27 more fit, 3 are QUEUE_FULL
tc -i "$TMP/alice.json" send "$BOB" 30 -b 10 >"$TMP/send2.out" || fail "batch send failed"
grep -q "summary sent=30 OK=27 QUEUE_FULL=3$" "$TMP/send2.out" || fail "quota: $(tail -1 "$TMP/send2.out")"
echo "ok: batch enqueue, per-recipient quota gives QUEUE_FULL"

# distinct refusals
tc -i "$TMP/alice.json" send "$EVE" 1 -z 8000 | grep -q "summary sent=1 TOO_LARGE=1$" || fail "no TOO_LARGE"
tc -i "$TMP/alice.json" send "$EVE" 1 -t 86400 | grep -q "summary sent=1 EXPIRED=1$" || fail "no EXPIRED for TTL above max"
tc -i "$TMP/alice.json" send "$EVE" 1 -F | grep -q "summary sent=1 FORBIDDEN=1$" || fail "no FORBIDDEN for forged sender"
tc -i "$TMP/alice.json" send "$EVE" 1 -R | grep -q "summary sent=1 INVALID=1$" || fail "no INVALID for recipient mismatch"
tc -i "$TMP/alice.json" send "$EVE@nowhere.mesh.local" 1 | grep -q "summary sent=1 UNKNOWN_DOMAIN=1$" || fail "no UNKNOWN_DOMAIN"
tc -i "$TMP/alice.json" send "$EVE@HERE.mesh.test" 1 | grep -q "summary sent=1 OK=1$" || fail "own domain is not local"
tc -i "$TMP/eve.json" fetch -a | grep -q "^fetched 1$" || fail "eve did not get the key@own-domain envelope"
echo "ok: TOO_LARGE, EXPIRED, FORBIDDEN, INVALID, UNKNOWN_DOMAIN; key@own-domain is local"

tc -i "$TMP/alice.json" send "$EVE" 1 -t 1 | grep -q "summary sent=1 OK=1$" || fail "1 s TTL refused"
sleep 2.5   # the TTL ends; the maintenance timer (1 s) deletes it
tc -i "$TMP/eve.json" fetch | grep -q "^fetched 0$" || fail "an expired envelope was delivered"
echo "ok: an envelope whose TTL ended in the queue is not delivered"

# isolation: Eve's fetch shows none of Bob's items, and her ack of Bob's seqs deletes nothing
tc -i "$TMP/bob.json" fetch -p 7 >"$TMP/bob1.out" || fail "bob fetch"
grep -q "^fetched 30$" "$TMP/bob1.out" || fail "bob should have 30: $(tail -1 "$TMP/bob1.out")"
tc -i "$TMP/eve.json" fetch >"$TMP/eve.out" || fail "eve fetch"
grep -q "^fetched 0$" "$TMP/eve.out" || fail "eve sees items that are not hers"
SEQS=$(awk '/^msg /{print $2}' "$TMP/bob1.out" | tr '\n' ' ')
tc -i "$TMP/eve.json" ack $SEQS >"$TMP/eveack.out" || fail "eve ack"
grep -q "^deleted 0$" "$TMP/eveack.out" || fail "eve deleted bob's items: $(cat "$TMP/eveack.out")"
tc -i "$TMP/bob.json" fetch -a >"$TMP/bob2.out" || fail "bob fetch+ack"
grep -q "^fetched 30$" "$TMP/bob2.out" || fail "bob lost items after eve's ack"
tc -i "$TMP/bob.json" fetch >"$TMP/bob3.out"
grep -q "^fetched 0$" "$TMP/bob3.out" || fail "ack did not delete"
echo "ok: a client cannot see or delete another client's queue; ack deletes own items"

# metrics
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$TMP/metrics.out" || fail "metrics endpoint"
grep -q '^qpc_enqueued_total 32$' "$TMP/metrics.out" || fail "enqueued metric: $(grep enqueued "$TMP/metrics.out")"
grep -q '^qpc_acked_total 31$' "$TMP/metrics.out" || fail "acked metric"
grep -q '^qpc_errors_total{kind="queue_full"} 3$' "$TMP/metrics.out" || fail "error metric"
grep -q '^qpc_queued_bytes 0$' "$TMP/metrics.out" || fail "queued bytes metric"
grep -q '^qpc_outbox_depth 0$' "$TMP/metrics.out" || fail "outbox metric"
echo "ok: Prometheus metrics"

stop_server
start_server
[ "$(sed -n 's/^peer id: *//p' "$TMP/server.out")" = "$PEER" ] || fail "peer id changed on restart"
stop_server
echo "ok: SIGTERM exits 0; identity kept across restarts"
echo PASS
