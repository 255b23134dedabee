#!/usr/bin/env bash
# bench_mesh.sh [BUILD] [SEED]: the 40-node mesh lab (tests/lib/mesh_lab.py, topology
# "full"): 40 qpc REPLs and 3 federated qpc-servers in network namespaces (four routed
# LANs behind three routers, two NATs, chains X, W, Z, ring Y, an unrouted cloud M, six
# nodes leaving and coming back), 240 direct messages between random pairs at 2/s and 12
# broadcasts. Prints delivered / sent per class, duplicates, first-delivery latency (p50,
# p99, per hop count), idle control bytes per node, RSS per node, and which goals of
# issue 11 hold. Needs root; run by hand, never by CTest (figures depend on the load).
# The idle windows (after start and at the end) are 120 s each, one default announce
# interval of qpc, so each holds one periodic refresh of every node and the rate is the
# mean over a refresh period: a shorter window can miss the refresh and show less than
# the mesh costs. BENCH_MESH_IDLE and
# BENCH_MESH_IDLE_END (seconds) override them (60 and 30 before the interval grew).
# Takes about 9 minutes on 2 cores. Everything it made is removed on exit.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../tests/lib/common.sh"
B=$(cd "${1:-$HERE/../build}" && pwd)
SEED=${2:-}
T=$(mktemp -d /tmp/bench_mesh.XXXXXX)
PREFIX=mb$$
cleanup() {
    it_mesh_lab_stop "${LABPID:-}" "$PREFIX" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
it_require_netns
echo "bench_mesh: qpc from $(it_built_from "$B")${QPC_SERVER_BUILD:+, qpc-server from $(it_built_from "$QPC_SERVER_BUILD")}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
STATIC=$("$B/qpc" --help 2>&1 | grep -q -- "--peers=" && echo --static-peers || true)   # static peers where qpc has them
python3 "$HERE/../tests/lib/mesh_lab.py" --build "$B" --dir "$T" --prefix "$PREFIX" --topology full $STATIC ${QPC_SERVER_BUILD:+--server-build "$QPC_SERVER_BUILD"} \
    --settle 20 --idle "${BENCH_MESH_IDLE:-120}" --messages 240 --broadcasts 12 --rate 2 --down 30 --drain 120 \
    --idle-end "${BENCH_MESH_IDLE_END:-120}" \
    ${SEED:+--seed "$SEED"} &
LABPID=$!
rc=0; wait $LABPID || rc=$?
LABPID=
exit $rc
