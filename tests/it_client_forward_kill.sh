#!/usr/bin/env bash
# it_client_forward_kill.sh: "kill -9 loses nothing acknowledged" for a forwarding client.
#
# Chain: flood source (tests/tools/qpc_p2p_flood) -> B (qpc listen, forwards) -> C (qpc
# listen, the recipient). The source sends thousands of envelopes for C to B; B acks
# DEFERRED only after its group commit. B is killed with SIGKILL in the middle of the
# load, three times, and restarted; at the end every envelope B ever acked DEFERRED must
# have been shown by C, and no envelope shown twice.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_forward_kill.XXXXXX)
BASE=$(it_port_base 4)
PB=$BASE; PC=$((BASE + 1))
BPID= CPID=
cleanup() {
    local rc=$?
    it_kill_all KILL $BPID $CPID
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.err "$T"/*.sum
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
Q="--no-mdns --direct-timeout-ms 500"
N=${FLOOD_N:-10000}
ROUNDS=3

BK=$($B/qpc --data-dir "$T/b" identity)
CK=$($B/qpc --data-dir "$T/c" identity)
$B/qpc --data-dir "$T/b" peer add "$CK" 127.0.0.1:$PC carol >/dev/null
$B/qpc --data-dir "$T/c" $Q --listen 127.0.0.1:$PC listen --json >"$T/c.out" 2>"$T/c.err" &
CPID=$!
it_wait_lines "$T/c.out" '"event":"listening"' 1 || fail "C did not start"

# start_b THREADS: round 1 checks signatures on the loop (verify_threads 0), round 2 on
# two worker threads, the others as the default says (auto: none on one CPU, else
# workers): every way must keep every acked envelope.
start_b() {
    $B/qpc --data-dir "$T/b" $Q --verify-threads "$1" --listen 127.0.0.1:$PB listen --json >>"$T/b.out" 2>>"$T/b.err" &
    BPID=$!
    it_wait_for "$T/b.out" '"event":"listening"' 10 || fail "B did not start"
}

: >"$T/b.out"
for ((r = 1; r <= ROUNDS; r++)); do
    case $r in 1) start_b 0 ;; 2) start_b 2 ;; *) start_b auto ;; esac
    $B/qpc_p2p_flood send 127.0.0.1:$PB "$BK" "$CK" $N 200 128 >"$T/flood$r.out" 2>"$T/flood$r.err" &
    FP=$!
    # into the load, at a random point: after 500 to 4,000 acks
    it_wait_lines "$T/flood$r.out" '^ack ' $((500 + RANDOM % 3500)) 90 || fail "round $r: B stopped acking"
    kill -KILL "$BPID"; wait "$BPID" 2>/dev/null || true
    BPID=
    wait "$FP" || true
    grep '^summary' "$T/flood$r.out" >"$T/flood$r.sum" || true
    acked=$(grep -c '^ack [0-9a-f]* 7$' "$T/flood$r.out" || true)
    [ "$acked" -lt $N ] || fail "round $r: the kill came after the load ended ($acked acked)"
    echo "round $r: B killed with SIGKILL after acking $acked of $N DEFERRED"
done
grep -h '^ack [0-9a-f]* 7$' "$T"/flood*.out | awk '{print $2}' | sort -u >"$T/acked.ids"
TOTAL=$(wc -l <"$T/acked.ids")
[ "$TOTAL" -gt 0 ] || fail "nothing acked"

# B once more, left running: it reloads its outbox and forwards what it had acked.
start_b 0
for ((i = 0; i < 600; i++)); do
    sed -n 's/.*"event":"message".*"id":"\([0-9a-f]*\)".*/\1/p' "$T/c.out" | sort -u >"$T/shown.ids"
    missing=$(comm -23 "$T/acked.ids" "$T/shown.ids" | wc -l)
    [ "$missing" -eq 0 ] && break
    sleep 0.1
done
[ "$missing" -eq 0 ] || fail "$missing of $TOTAL envelopes B acked were never shown by C"
dups=$(sed -n 's/.*"event":"message".*"id":"\([0-9a-f]*\)".*/\1/p' "$T/c.out" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || fail "$dups envelopes shown twice by C"
shown=$(wc -l <"$T/shown.ids")
echo "ok: all $TOTAL envelopes B acked before its ${ROUNDS} kills were shown by C, each once ($shown shown in all)"

it_kill_all TERM $BPID $CPID
BPID= CPID=
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_forward_kill"
