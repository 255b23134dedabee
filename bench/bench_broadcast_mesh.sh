#!/usr/bin/env bash
# bench_broadcast_mesh.sh [BUILD] [N] [RUNS]: broadcast throughput through a mesh of six
# qpc processes (tests/lib/mesh_lab.py, topology "bcast6": a ring of point-to-point
# links with one chord, each node in its own namespace, links found by mDNS, no server).
# n1's REPL is given N broadcasts (default 2000) at once; a run's rate is N over the time
# from the first line written to the last copy shown by the last of the five subscribers
# (each shows each one once). Prints each run and the median of RUNS (default 5). Issue 11
# compares it with libp2p gossipsub over 6 nodes on this machine: 309-783 msgs/s. Needs
# root; by hand, never by CTest.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../tests/lib/common.sh"
B=$(cd "${1:-$HERE/../build}" && pwd)
N=${2:-2000}
RUNS=${3:-5}
T=$(mktemp -d /tmp/bench_bcast.XXXXXX)
PREFIX=bb$$
cleanup() {
    it_mesh_lab_stop "${LABPID:-}" "$PREFIX" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
it_require_netns
echo "bench_broadcast_mesh: qpc from $(it_built_from "$B")${QPC_SERVER_BUILD:+, qpc-server from $(it_built_from "$QPC_SERVER_BUILD")}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/../tests/lib/mesh_lab.py" --build "$B" --dir "$T" --prefix "$PREFIX" --topology bcast6 ${QPC_SERVER_BUILD:+--server-build "$QPC_SERVER_BUILD"} \
    --settle 10 --burst "$N" --runs "$RUNS" --drain 120 &
LABPID=$!
rc=0; wait $LABPID || rc=$?
LABPID=
exit $rc
