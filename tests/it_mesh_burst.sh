#!/usr/bin/env bash
# it_mesh_burst.sh: a burst of broadcasts through the six-node mesh of the broadcast bench
# (tests/lib/mesh_lab.py, topology "bcast6": a ring of point-to-point links with one
# chord, each node in its own namespace). n1's REPL is given 300 broadcasts at once, so
# they leave in batches (docs/broadcast.md "Batches"). Asserts: every subscriber shows
# every broadcast exactly once; n1 signed batches, every subscriber verified batches and
# checked broadcasts by hash (/mesh store), and no batch was refused anywhere. No
# timings are asserted (the rate is printed). Everything it made is removed on exit.
# QPC_OLD_BUILD=DIR adds a mixed mesh: n3 runs DIR's qpc (one from before batches).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
SRC=${QPC_SRC:?}
T=$(mktemp -d /tmp/it_mesh_burst.XXXXXX)
PREFIX=mb$$
cleanup() {
    local rc=$?
    it_mesh_lab_stop "${LABPID:-}" "$PREFIX" "$T"
    [ $rc -eq 0 ] || it_dump_logs 15 "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
it_require_netns
python3 "$SRC/tests/lib/mesh_lab.py" --build "$B" --dir "$T" --prefix "$PREFIX" --topology bcast6 \
    --settle 10 --burst 300 --runs 1 --drain 90 --burst-check &
LABPID=$!
rc=0; wait $LABPID || rc=$?
LABPID=
[ $rc -eq 0 ] || { echo "FAIL: burst through the mesh (exit $rc)"; exit 1; }
# QPC_OLD_BUILD (a qpc from before batches, by hand): n3 runs it; it ignores the batch
# frames and still shows every broadcast once, and the others still verify batches.
if [ -n "${QPC_OLD_BUILD:-}" ]; then
    it_mesh_lab_stop "" "$PREFIX" "$T"
    mkdir -p "$T/mixed"
    python3 "$SRC/tests/lib/mesh_lab.py" --build "$B" --dir "$T/mixed" --prefix "$PREFIX" --topology bcast6 \
        --old-build "$QPC_OLD_BUILD" --old-nodes n3 --settle 10 --burst 300 --runs 1 --drain 90 --burst-check &
    LABPID=$!
    rc=0; wait $LABPID || rc=$?
    LABPID=
    [ $rc -eq 0 ] || { echo "FAIL: burst through a mesh with an older n3 (exit $rc)"; exit 1; }
fi
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then echo "FAIL: sanitizer report"; exit 1; fi
echo "PASS it_mesh_burst"
