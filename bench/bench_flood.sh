#!/usr/bin/env bash
# bench_flood.sh [BUILD] [SECONDS] [FLOODERS]: a good client served while strangers flood
# the node's port with hostile datagrams (issue 12: "a malformed packet from a stranger
# costs one log line, never a crash").
#
# On loopback: one qpc-server; client B listening with push; client A sending to B one
# message at a time (window 1): first with no flood; then, already connected, while
# FLOODERS processes of bench_flood.py send random bytes, undecryptable QUIC Initials
# from ever new source ports and short-header packets with unknown connection ids for
# SECONDS; then A connects anew while another flood runs. Prints the datagrams sent, A's
# messages per second in each phase, the node's CPU time, RSS and log lines during the
# flood, whether the new connection came up, and whether the node is still up. Run by
# hand; figures depend on the machine and its load.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../tests/lib/common.sh"
B=$(cd "${1:-$HERE/../build}" && pwd)
SECONDS_FLOOD=${2:-20}
FLOODERS=${3:-2}
N=400
T=$(mktemp -d /tmp/bench_flood.XXXXXX)
PORT=$(it_port_base 2)
SRV_PID= LISTEN_PID= A_PID=
FLOOD_PIDS=()
cleanup() {
    it_kill_all KILL $SRV_PID $LISTEN_PID $A_PID "${FLOOD_PIDS[@]}"
    [ -n "${QPC_BENCH_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

HOME=$T "$B/qpc-server" --data-dir "$T/srv" --listen 127.0.0.1:$PORT --mdns-enabled=false \
    --metrics-listen= >"$T/srv.out" 2>"$T/srv.err" &
SRV_PID=$!
it_wait_for "$T/srv.out" '^connect: ' 20
TC=("$B/qpc_testclient" -S 127.0.0.1:$PORT)
"${TC[@]}" -i "$T/a.json" id >/dev/null
BK=$("${TC[@]}" -i "$T/b.json" id)
"${TC[@]}" -i "$T/b.json" listen 100000000 -T $((2 * SECONDS_FLOOD + 120)) >"$T/b.out" 2>&1 &
LISTEN_PID=$!
it_wait_for "$T/b.out" '^ready' 20

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SRV_PID/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SRV_PID/status"; }
phase() {   # phase LABEL: A sends N messages to B, one at a time
    local t0 t1 ms
    t0=$(date +%s%N)
    "${TC[@]}" -i "$T/a.json" send "$BK" $N -w 1 >"$T/a-$1.out"
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    ok=$(grep -c ' OK$' "$T/a-$1.out" || true)
    printf '%-12s %d/%d acked OK in %d ms: %d msgs/s, mean enqueue round trip %.2f ms\n' \
        "$1" "$ok" $N $ms $((N * 1000 / (ms > 0 ? ms : 1))) "$(awk -v m=$ms -v n=$N 'BEGIN {print m / n}')"
}

flood_start() {
    for _ in $(seq "$FLOODERS"); do
        python3 "$HERE/bench_flood.py" 127.0.0.1 $PORT "$SECONDS_FLOOD" >>"$T/flood.out" &
        FLOOD_PIDS+=($!)
    done
}

echo "bench_flood: $FLOODERS flooders for ${SECONDS_FLOOD}s, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
phase "no flood"

# 1. A is connected before the flood and goes on sending one message at a time.
M=$((3000 * SECONDS_FLOOD))   # more than A can send during the flood; built before it connects
"${TC[@]}" -i "$T/a.json" send "$BK" $M -w 1 >"$T/a-during.out" 2>&1 &
A_PID=$!
it_wait_lines "$T/a-during.out" '^ok ' 50 60
lines0=$(wc -l <"$T/srv.err")
cpu0=$(cpu_ticks)
acked0=$(grep -c '^ok ' "$T/a-during.out" || true)
flood_start
t0=$(date +%s%N)
wait "${FLOOD_PIDS[@]}"
FLOOD_PIDS=()
t1=$(date +%s%N)
acked1=$(grep -c '^ok ' "$T/a-during.out" || true)
cpu1=$(cpu_ticks)
lines1=$(wc -l <"$T/srv.err")
it_kill_all TERM $A_PID
ms=$(((t1 - t0) / 1000000))
printf '%-12s %d acked OK during the %d ms flood: %d msgs/s (client connected before it)\n' \
    "under flood" $((acked1 - acked0)) $ms $(((acked1 - acked0) * 1000 / (ms > 0 ? ms : 1)))
sent=$(awk '{s += $2} END {print s}' "$T/flood.out")
echo "flood: $sent hostile datagrams in ${SECONDS_FLOOD}s ($((sent / SECONDS_FLOOD))/s)"
echo "node during the flood: $(((cpu1 - cpu0) * 1000 / $(getconf CLK_TCK))) ms CPU," \
     "RSS $(rss_kb) KiB, $((lines1 - lines0)) log lines"

# 2. A new connection while the flood runs.
: >"$T/flood.out"
flood_start
sleep 1
t0=$(date +%s%N)
if "${TC[@]}" -i "$T/a.json" send "$BK" 1 >"$T/a-new.out" 2>&1; then
    echo "new connection under flood: sent and acked in $((($(date +%s%N) - t0) / 1000000)) ms"
else
    echo "new connection under flood: FAILED ($(tail -n 1 "$T/a-new.out"))"
fi
wait "${FLOOD_PIDS[@]}"
FLOOD_PIDS=()
if kill -0 "$SRV_PID" 2>/dev/null; then echo "node: still up"; else echo "node: DIED"; exit 1; fi
