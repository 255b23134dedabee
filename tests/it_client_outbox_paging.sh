#!/usr/bin/env bash
# it_client_outbox_paging.sh: a client whose outbox holds more rows than one page of the
# queue (10,000) and than its store takes for one recipient (1,000) sends every one of
# them after a restart: 12,000 held messages (tests/tools/qpc_outbox_fill) reach their
# recipient, each shown once, and every receipt comes back ("delivered" for each id).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_outbox_paging.XXXXXX)
BASE=$(it_port_base 4)
PC=$BASE
APID= CPID=
cleanup() {
    local rc=$?
    it_kill_all TERM $APID $CPID
    [ $rc -eq 0 ] || it_dump_logs 20 "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
N=12000
Q="--no-mdns --direct-timeout-ms 500"

AK=$($B/qpc --data-dir "$T/a" identity)
CK=$($B/qpc --data-dir "$T/c" identity)
$B/qpc --data-dir "$T/a" peer add "$CK" 127.0.0.1:$PC carol >/dev/null
$B/qpc_outbox_fill "$T/a" "$CK" $N >/dev/null || fail "cannot fill the outbox"

$B/qpc --data-dir "$T/c" $Q --listen 127.0.0.1:$PC listen --json >"$T/c.out" 2>"$T/c.err" &
CPID=$!
it_wait_lines "$T/c.out" '"event":"listening"' 1 || fail "C did not start"
$B/qpc --data-dir "$T/a" $Q --log-level info --listen 127.0.0.1:0 listen --json >"$T/a.out" 2>"$T/a.err" &
APID=$!
it_wait_lines "$T/c.out" '"text":"fill ' $N 180 || fail "C showed $(grep -c '"text":"fill ' "$T/c.out") of $N"
it_wait_lines "$T/a.out" '"event":"delivered"' $N 120 || fail "A saw $(grep -c '"event":"delivered"' "$T/a.out") of $N receipts"
sleep 1
shown=$(sed -n 's/.*"text":"\(fill [0-9]*\)".*/\1/p' "$T/c.out" | sort -u | wc -l)
[ "$shown" -eq $N ] || fail "C showed $shown distinct of $N"
[ "$(grep -c '"text":"fill ' "$T/c.out")" -eq $N ] || fail "some message was shown twice"
delivered=$(sed -n 's/.*"event":"delivered".*"id":"\([0-9a-f]*\)".*/\1/p' "$T/a.out" | sort -u | wc -l)
[ "$delivered" -eq $N ] || fail "$delivered distinct receipts, want $N"
grep -q "more wait on disk" "$T/a.err" || fail "A did not say it loads the outbox in parts"
echo "ok: all $N held messages left the outbox (store cap 1000, queue page 10000) and were confirmed"
it_kill_all TERM $APID $CPID
APID= CPID=
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_outbox_paging"
