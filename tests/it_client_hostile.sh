#!/usr/bin/env bash
# it_client_hostile.sh: what a hostile peer or a careless setup does to the client.
#   1. A peer writes 1,000 garbage frames in one burst on a P2P link: the client logs
#      a bounded number of lines (not one per frame), closes that link, and stays up
#      (a valid envelope on a new link is still acked OK). The same for 100 frames whose
#      envelope does not decode.
#   2. Secret files open to others: identity.json and subscriptions.json (with a private
#      channel key) at mode 0644, the node's identity.json at 0640 and its federation_key
#      at 0644 (--check-config) are warned about,
#      naming the file and the chmod to run; at 0600 nothing is said. Whatever the
#      umask, every file qpc makes in its data directory is 0600.
#   3. Damaged databases: a 0-byte outbox.db stops qpc with a message naming the file; a
#      0-byte or damaged messages.db is refused (qpc runs without history, saying why)
#      and in both cases the file is left byte for byte as it was.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_hostile.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; it_dump_logs 60 "$T"/*.out "$T"/*.err; exit 1; }
PORT=$(it_port_base 2)

# --- 1. garbage frames ----------------------------------------------------------------
CK=$($B/qpc --data-dir "$T/c" identity)
$B/qpc --data-dir "$T/c" --listen 127.0.0.1:$PORT --no-mdns listen --json >"$T/c.out" 2>"$T/c.err" &
CPID=$!; PIDS+=($CPID)
it_wait_for "$T/c.out" '"event":"listening"' 15 || fail "client did not listen"
rc=0; $B/qpc_p2p_inject 127.0.0.1:$PORT "$CK" garbage=1000 >"$T/g.out" 2>"$T/g.err" || rc=$?
[ $rc -eq 0 ] || fail "garbage: injector exit $rc (want 0: closed by the client)"
grep -q '^closed by peer: too many malformed frames$' "$T/g.out" || fail "link not closed for garbage"
sleep 0.5
lines=$(grep -c 'malformed' "$T/c.err" || true)
echo "garbage: 1000 frames sent, $lines log lines about them"
[ "$lines" -ge 1 ] || fail "garbage not logged at all"
[ "$lines" -le 3 ] || fail "$lines log lines for one peer's garbage (want at most 3)"
grep -q 'malformed frames within 60 s; closing it' "$T/c.err" || fail "no line says the link was closed"
rc=0; $B/qpc_p2p_inject 127.0.0.1:$PORT "$CK" badenv=100 >"$T/b.out" 2>"$T/b.err" || rc=$?
[ $rc -eq 0 ] || fail "bad envelopes: injector exit $rc (want 0: closed by the client)"
grep -q '^closed by peer: too many malformed frames$' "$T/b.out" || fail "link not closed for bad envelopes"
sleep 0.5
lines=$(grep -c 'undecodable envelope\|malformed' "$T/c.err" || true)
echo "bad envelopes: 100 frames sent, $((lines - 2)) more log lines"
[ "$lines" -le 6 ] || fail "$lines log lines for two peers' garbage (want at most 6)"
kill -0 $CPID 2>/dev/null || fail "client died"
$B/qpc_p2p_inject 127.0.0.1:$PORT "$CK" valid >"$T/v.out" 2>"$T/v.err" || fail "valid after garbage"
grep -q '^ack valid 0$' "$T/v.out" || fail "valid envelope after garbage not acked OK"
echo "ok 1 garbage frames: bounded log, link closed, client up"
kill $CPID; wait $CPID 2>/dev/null || true

# --- 2. secret files open to others ------------------------------------------------------
D=$T/perm
$B/qpc --data-dir "$D" identity >/dev/null
$B/qpc --data-dir "$D" subscribe hush "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    2>"$T/sub.err" || fail "subscribe with a key: $(cat "$T/sub.err")"
[ "$(stat -c %a "$D/subscriptions.json")" = 600 ] || fail "subscriptions.json not written 0600"
chmod 755 "$D"   # a data directory others may enter: what qpc made in it is still 0600
(umask 022; $B/qpc --data-dir "$D" --no-mdns --listen 127.0.0.1:0 listen --timeout 0.5 >/dev/null 2>&1 || true)
for f in identity.json outbox.db messages.db seen.log; do
    [ "$(stat -c %a "$D/$f")" = 600 ] || fail "$f is mode $(stat -c %a "$D/$f"), want 600"
done
$B/qpc --data-dir "$D" identity >/dev/null 2>"$T/p0.err"
grep -q 'chmod' "$T/p0.err" && fail "warned about private files: $(cat "$T/p0.err")"
chmod 644 "$D/identity.json" "$D/subscriptions.json"
$B/qpc --data-dir "$D" --no-mdns --listen 127.0.0.1:0 listen --timeout 0.5 >/dev/null 2>"$T/p1.err" || true
grep -q "$D/identity.json holds the secret key but is readable by others (mode 0644): run \`chmod 600 $D/identity.json\`" \
    "$T/p1.err" || fail "no warning for a 0644 identity.json: $(cat "$T/p1.err")"
grep -q "$D/subscriptions.json holds private channel keys but is readable by others (mode 0644): run \`chmod 600 $D/subscriptions.json\`" \
    "$T/p1.err" || fail "no warning for a 0644 subscriptions.json: $(cat "$T/p1.err")"
if [ -x "$B/qpc-server" ]; then
    S=$T/srv
    $B/qpc-server --data-dir "$S" --print-federation-key >/dev/null 2>"$T/s0.err" || fail "print-federation-key"
    grep -q 'chmod' "$T/s0.err" && fail "server warned about a private identity: $(cat "$T/s0.err")"
    chmod 640 "$S/identity.json"
    $B/qpc-server --data-dir "$S" --print-federation-key >/dev/null 2>"$T/s1.err" || fail "print-federation-key"
    grep -q "$S/identity.json holds the secret key but is readable by others (mode 0640): run \`chmod 600 $S/identity.json\`" \
        "$T/s1.err" || fail "no warning for the node's 0640 identity.json: $(cat "$T/s1.err")"
fi
if [ -x "$B/qpc-server" ] && command -v certtool >/dev/null; then
    it_make_pki "$T/pki" >/dev/null || fail "test PKI"
    FED="--data-dir $T/srv --federation-enabled=true --federation-domain a.mesh.test
         --federation-cert $T/pki/node-a.der --federation-key $T/pki/node-a.key.der
         --federation-ca $T/pki/ca.der --check-config"
    $B/qpc-server $FED >/dev/null 2>"$T/f0.err" || fail "check-config: $(cat "$T/f0.err")"
    grep -q 'chmod' "$T/f0.err" && fail "warned about a private federation key: $(cat "$T/f0.err")"
    chmod 644 "$T/pki/node-a.key.der"
    $B/qpc-server $FED >/dev/null 2>"$T/f1.err" || fail "check-config: $(cat "$T/f1.err")"
    grep -q "$T/pki/node-a.key.der holds the federation private key but is readable by others (mode 0644): run \`chmod 600 $T/pki/node-a.key.der\`" \
        "$T/f1.err" || fail "no warning for a 0644 federation_key: $(cat "$T/f1.err")"
fi
[ -s "$T/f1.err" ] && echo "(federation_key checked)"
echo "ok 2 secret files open to others are warned about, with the chmod"

# --- 3. damaged databases ------------------------------------------------------------------
D=$T/db
$B/qpc --data-dir "$D" identity >/dev/null
: >"$D/outbox.db"
rc=0; $B/qpc --data-dir "$D" --no-mdns --listen 127.0.0.1:0 listen --timeout 0.5 >/dev/null 2>"$T/d1.err" || rc=$?
[ $rc -eq 5 ] || fail "0-byte outbox.db: exit $rc, want 5 (state unusable)"
grep -q "$D/outbox.db: the file is empty (0 bytes)" "$T/d1.err" || fail "0-byte outbox.db: $(cat "$T/d1.err")"
[ ! -s "$D/outbox.db" ] || fail "the empty outbox.db was made a database"
rm "$D/outbox.db"
: >"$D/messages.db"
$B/qpc --data-dir "$D" --no-mdns --listen 127.0.0.1:0 listen --timeout 0.5 >/dev/null 2>"$T/d2.err" || true
grep -q "no message history: $D/messages.db: the file is empty (0 bytes)" "$T/d2.err" \
    || fail "0-byte messages.db not refused: $(cat "$T/d2.err")"
[ ! -s "$D/messages.db" ] || fail "the empty messages.db was made a database"
rm "$D/messages.db"
$B/qpc --data-dir "$D" --no-mdns --listen 127.0.0.1:0 listen --timeout 0.5 >/dev/null 2>&1 || true
python3 - "$D/messages.db" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executemany("INSERT INTO messages (id, mine, text, sent_ms) VALUES (?, 0, ?, 0)",
               [(i.to_bytes(32, "big"), b"m" * 300) for i in range(2000)])
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
PYEOF
PAGES=$(($(stat -c %s "$D/messages.db") / 4096))
[ "$PAGES" -gt 64 ] || fail "messages.db has only $PAGES pages"
head -c $((PAGES / 5 * 4096)) /dev/zero | tr '\0' '\245' | \
    dd of="$D/messages.db" bs=4096 seek=$((PAGES * 2 / 5)) conv=notrunc status=none
SUM=$(sha256sum <"$D/messages.db")
$B/qpc --data-dir "$D" --no-mdns --listen 127.0.0.1:0 listen --timeout 0.5 >/dev/null 2>"$T/d3.err" || true
grep -q "no message history: $D/messages.db: the database is damaged" "$T/d3.err" \
    || fail "damaged messages.db not refused: $(cat "$T/d3.err")"
grep -q 'recover' "$T/d3.err" || fail "the message does not say what to do"
[ "$(sha256sum <"$D/messages.db")" = "$SUM" ] || fail "the damaged messages.db was changed"
echo "ok 3 damaged databases refused, named and left as they were"
