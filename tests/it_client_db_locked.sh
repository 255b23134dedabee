#!/usr/bin/env bash
# it_client_db_locked.sh: a node that finds its routes.db or messages.db locked for a
# moment when it starts (a `qpc route`, a REPL or a second qpc on the same data
# directory has it open just then) waits for the lock, as it does for every later write,
# instead of running without them: before, the first statement ran before the busy
# timeout was set, so the lock failed at once and the node kept no routes (or no
# history) for its whole run. Seen in it_mesh_seqreq under ASan: E's routes were never
# written, so `qpc route` showed none.
#   For each file: another process (python3's sqlite3) holds an exclusive lock on it in
#   rollback mode (qpc's first statement, PRAGMA journal_mode=WAL, needs one) for 1.5 s
#   while `qpc listen` starts; qpc must start and not say it keeps no routes or no
#   history. Fails against a qpc that sets the timeout after its first statement.
# On loopback, no mDNS, no server. Everything made here is removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_client_db_locked.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# hold FILE SECONDS: an exclusive lock on FILE (made, in rollback mode) for SECONDS;
# prints "locked" once it has it.
hold() {
    python3 - "$1" "$2" <<'PYEOF' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("CREATE TABLE IF NOT EXISTS held (x)")   # a database, not an empty file
c.execute("BEGIN EXCLUSIVE")
c.execute("INSERT INTO held VALUES (1)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
PYEOF
    PIDS+=($!)
}

n=0
for file in routes.db messages.db; do
    n=$((n + 1))
    D="$T/node$n"
    $B/qpc --data-dir "$D" identity >/dev/null
    rm -f "$D/$file" "$D/$file-wal" "$D/$file-shm"
    hold "$D/$file" 1.5 >"$T/hold$n.out"
    it_wait_for "$T/hold$n.out" '^locked$' 10 || fail "$file: the lock was not taken"
    $B/qpc --data-dir "$D" --listen 127.0.0.1:0 --no-mdns --log-level info listen --json \
        >"$T/node$n.out" 2>"$T/node$n.err" &
    PIDS+=($!)
    it_wait_for "$T/node$n.out" '"event":"listening"' 20 || fail "$file: qpc did not start"
    sleep 2   # past the lock's 1.5 s: whatever qpc did at start is done
    if grep -E "routes are not kept|no message history" "$T/node$n.err"; then
        fail "$file: qpc gave up on a file that was locked for 1.5 s"
    fi
    echo "ok $n qpc waited for $file, locked for 1.5 s at its start, and kept it"
done

if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_db_locked"
