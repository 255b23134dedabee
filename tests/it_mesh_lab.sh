#!/usr/bin/env bash
# it_mesh_lab.sh: the mesh lab (tests/lib/mesh_lab.py) at 10 nodes: a routed LAN pair
# with a qpc-server, a host behind NAT, a chain and a ring of point-to-point links, an
# unrouted cloud, one node leaving and coming back. Direct messages between random pairs
# and broadcasts; asserts delivery only (no timings: the figures are printed): nothing is
# shown twice anywhere, and every message of the classes that work today is delivered
# (MESH_LAB_CHECK overrides the choice below). Everything it made is removed on exit.
# QPC_SERVER_BUILD: take qpc-server from there (two branches measured together).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
SRC=${QPC_SRC:?}
T=$(mktemp -d /tmp/it_mesh_lab.XXXXXX)
PREFIX=ml$$
cleanup() {
    local rc=$?
    it_mesh_lab_stop "${LABPID:-}" "$PREFIX" "$T"
    [ $rc -eq 0 ] || it_dump_logs 15 "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
it_require_netns
# What works today is asserted: pairs on one link and clients of one server (also while
# a node is away), broadcasts; pairs beyond a link ("mesh") only where qpc has announces
# (routes before traffic; without them a route exists only after the recipient happened
# to send), also while a node is away or just back ("mesh+churn": a route changing under
# a held message lost some before custody took a copy that came back into custody again
# and stopped sending envelopes back where they came from; docs/mesh_lab.md, "Findings").
CHECK=link,link+churn,server,server+churn,broadcast
"$B/qpc" --help 2>&1 | grep -q -- "--announce-interval-s" && CHECK=$CHECK,mesh,mesh+churn
STATIC=$("$B/qpc" --help 2>&1 | grep -q -- "--peers=" && echo --static-peers || true)   # static peers where qpc has them
python3 "$SRC/tests/lib/mesh_lab.py" --build "$B" --dir "$T" --prefix "$PREFIX" --topology ci $STATIC ${QPC_SERVER_BUILD:+--server-build "$QPC_SERVER_BUILD"} \
    --settle 10 --idle 15 --messages 60 --broadcasts 4 --rate 2 --down 10 --drain 90 \
    --check "${MESH_LAB_CHECK:-$CHECK}" &
LABPID=$!
rc=0; wait $LABPID || rc=$?
LABPID=
[ $rc -eq 0 ] || { echo "FAIL: mesh lab (exit $rc)"; exit 1; }
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then echo "FAIL: sanitizer report"; exit 1; fi
echo "PASS it_mesh_lab"
