#!/usr/bin/env bash
# it_client_meshoff.sh: qpc built without mesh (cmake -DQPC_MESH=OFF) is a client of its
# server and nothing more, and works as one. On loopback, against a qpc-server of the
# normal build:
#   1. a second build tree of the same source with -DQPC_MESH=OFF (same build type and
#      sanitizers as QPC_BUILD; only the qpc target, niced, -j2) builds; its qpc links no
#      mDNS code and no avahi library;
#   2. its --help and --version say what it is, and --help lists no mesh option; the
#      mesh-only settings are refused from the command line, the environment and a file,
#      saying this build has no mesh support (exit 2), as are `qpc route` and `listen`
#      without a server;
#   3. two such clients: A sends to B (named through a pasted qpc: text) through the
#      node; B shows it, A exits 0 on B's verified receipt ("delivered ... via server");
#      a broadcast from A reaches B through the server; B's history has both;
#   4. the REPL: /send through the server ends in "delivered", `/mesh peers` and
#      `/mesh route` say this build has no mesh support (not "unknown command"), /help
#      lists neither;
#   5. each running OFF client has exactly one UDP socket (its server connection; none
#      on 5353, no mDNS) and nothing dials it: a mesh qpc told B's very socket address
#      as a direct candidate still reaches B only through the server.
# Timings are printed, never asserted.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
SRC=${QPC_SRC:?}
OB=${QPC_MESHOFF_BUILD:-$B-meshoff}   # beside the build tree, reused by the next run
T=$(mktemp -d /tmp/it_client_meshoff.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    exec 3>&- 2>/dev/null || true
    it_kill_all TERM "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err "$T/build.log"
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$B/qpc-server" ] && [ -x "$B/qpc" ] || it_skip "no qpc-server or qpc in $B"

# --- 1. the build ------------------------------------------------------------------------
cache() { sed -n "s/^$1:[A-Z]*=//p" "$B/CMakeCache.txt"; }
BTYPE=$(cache CMAKE_BUILD_TYPE)
SAN=$(cache QPC_SANITIZE)
t0=$(date +%s.%N)
cmake -S "$SRC" -B "$OB" -DQPC_MESH=OFF -DCMAKE_BUILD_TYPE="${BTYPE:-RelWithDebInfo}" \
    -DQPC_SANITIZE="${SAN:-OFF}" >"$T/build.log" 2>&1 || fail "cmake -DQPC_MESH=OFF failed"
nice -n 10 cmake --build "$OB" -j2 --target qpc >>"$T/build.log" 2>&1 || fail "the OFF qpc does not build"
t1=$(date +%s.%N)
O=$OB/qpc
grep -q '^QPC_MESH:BOOL=OFF$' "$OB/CMakeCache.txt" || fail "the second tree is not QPC_MESH=OFF"
# (into files first: grep -q ending a pipe early would make pipefail see nm's SIGPIPE)
nm "$O" >"$T/nm_off.txt"
nm "$B/qpc" >"$T/nm_on.txt"
readelf -d "$O" >"$T/dyn_off.txt"
grep -q ' T qpc_mdns_' "$T/nm_off.txt" && fail "the OFF qpc links libqpc's mDNS module"
grep -q ' T qpc_mdns_' "$T/nm_on.txt" || fail "the mesh qpc has no mDNS symbols: the check above means nothing"
grep -q 'NEEDED.*avahi' "$T/dyn_off.txt" && fail "the OFF qpc still loads avahi"
echo "ok 1 built with -DQPC_MESH=OFF in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" \
     "(${BTYPE:-RelWithDebInfo}, QPC_SANITIZE=${SAN:-OFF}): qpc $(stat -c %s "$O") bytes, the mesh qpc $(stat -c %s "$B/qpc")"

# --- 2. what it says it is -----------------------------------------------------------------
"$O" --help >"$T/help.out"
"$B/qpc" --help >"$T/help_on.out"
grep -q '^Built without mesh (cmake -DQPC_MESH=OFF): client-server only' "$T/help.out" \
    || fail "--help does not say the build has no mesh"
for opt in --listen --no-mdns --mdns-enabled --mdns-interfaces --direct-timeout-ms; do
    grep -q -- "$opt" "$T/help_on.out" || fail "the mesh qpc's --help lacks $opt: the check means nothing"
    grep -q -- "$opt" "$T/help.out" && fail "--help of the OFF build lists $opt"
done
grep -q -- '--server=HOST:PORT' "$T/help.out" || fail "--help lost --server"
[ "$("$O" --version)" = "$("$B/qpc" --version) (built without mesh)" ] || fail "--version: $("$O" --version)"
NOMESH='this qpc is built without mesh support \(cmake -DQPC_MESH=OFF\)'
expect_refused() {   # expect_refused WHAT PATTERN CMD...: exit 2 and the words on stderr
    local what=$1 pat=$2 rc=0
    shift 2
    "$@" >"$T/refused.out" 2>"$T/refused.err" || rc=$?
    [ $rc -eq 2 ] || fail "$what: exit $rc, want 2"
    grep -Eq "$pat" "$T/refused.err" || fail "$what: not said: $(cat "$T/refused.err")"
}
expect_refused "--listen" "^qpc: command line: --listen: $NOMESH" "$O" --data-dir "$T/x" --listen 127.0.0.1:7100 identity
expect_refused "--no-mdns" "^qpc: --no-mdns: $NOMESH" "$O" --data-dir "$T/x" --no-mdns identity
# Every setting the mesh build has and this one does not list is refused in those words.
sed -n 's/^  --\([a-z0-9-]*\)=.*/\1/p' "$T/help_on.out" | sort >"$T/keys_on.txt"
sed -n 's/^  --\([a-z0-9-]*\)=.*/\1/p' "$T/help.out" | sort >"$T/keys_off.txt"
comm -23 "$T/keys_on.txt" "$T/keys_off.txt" >"$T/keys_mesh.txt"
grep -qx 'listen' "$T/keys_mesh.txt" || fail "the list of mesh settings lacks listen: $(cat "$T/keys_mesh.txt")"
while read -r key; do
    expect_refused "--$key" "^qpc: command line: --$key: $NOMESH" "$O" --data-dir "$T/x" "--$key" x identity
done <"$T/keys_mesh.txt"
expect_refused "QPC_CLIENT_MDNS_ENABLED" "^qpc: environment QPC_CLIENT_MDNS_ENABLED: mdns_enabled: $NOMESH" \
    env QPC_CLIENT_MDNS_ENABLED=false "$O" --data-dir "$T/x" identity
printf 'direct_timeout_ms = 500\n' >"$T/qpc.toml"
expect_refused "a file's direct_timeout_ms" "^qpc: $T/qpc.toml:1: direct_timeout_ms: $NOMESH" \
    "$O" --data-dir "$T/x" --config "$T/qpc.toml" identity
expect_refused "qpc route" "^qpc: route: $NOMESH" "$O" --data-dir "$T/x" route
grep -Eq '^  route ' "$T/help_on.out" || fail "the mesh qpc's --help lacks route: the check means nothing"
grep -Eq '^  route ' "$T/help.out" && fail "--help of the OFF build lists the route subcommand"
expect_refused "listen without a server" "^qpc: listening needs a server \(--server HOST:PORT\): $NOMESH" \
    "$O" --data-dir "$T/x" listen
echo "ok 2 --help lists no mesh option; the mesh's settings ($(tr '\n' ' ' <"$T/keys_mesh.txt"| sed 's/ $//')), --no-mdns," \
     "an mDNS variable, a file's mesh key, qpc route and a serverless listen are refused saying why"

# --- 3. two OFF clients through a node ----------------------------------------------------
PS=$(it_port_base 2)
S=127.0.0.1:$PS
$B/qpc-server --data-dir "$T/srv" --listen "$S" --mdns-enabled=false --metrics-listen= \
    >"$T/srv.out" 2>"$T/srv.err" &
PIDS+=($!)
it_wait_for "$T/srv.out" '^connect: ' 20 || fail "the server did not start"
AK=$("$O" --data-dir "$T/a" identity)
BK=$("$O" --data-dir "$T/b" identity)
"$O" --data-dir "$T/b" name me bob >/dev/null
"$O" --data-dir "$T/b" subscribe news >/dev/null
"$O" --data-dir "$T/a" peer add "qpc:$BK?name=bob" >/dev/null   # a contact, no address
"$O" --data-dir "$T/b" --server "$S" listen --json >"$T/b.out" 2>"$T/b.err" &
BPID=$!
PIDS+=($BPID)
it_wait_lines "$T/b.out" '"connected to server' 1 || fail "B did not connect"
grep -q "\"event\":\"listening\",\"peer_id\":\"$BK\",\"server\":\"$S\"" "$T/b.out" || fail "B's listening line: $(head -1 "$T/b.out")"
rc=0
"$O" --data-dir "$T/a" --server "$S" send bob "hello without mesh" >"$T/send.out" 2>"$T/send.err" || rc=$?
[ $rc -eq 0 ] || fail "qpc send: exit $rc, want 0 (the verified receipt): $(cat "$T/send.out")"
grep -Eq "^delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via server $S, [0-9]+ ms\)$" "$T/send.out" \
    || fail "no receipt through the server: $(cat "$T/send.out")"
it_wait_lines "$T/b.out" "\"from\":\"$AK\".*\"text\":\"hello without mesh\",\"path\":\"server\"" 1 \
    || fail "B did not show the message from the server"
rc=0
"$O" --data-dir "$T/a" --server "$S" broadcast news "to all, by the server" >"$T/bcast.out" 2>"$T/bcast.err" || rc=$?
[ $rc -eq 0 ] || fail "qpc broadcast: exit $rc: $(cat "$T/bcast.out")"
grep -q "^broadcast on #news to server $S$" "$T/bcast.out" || fail "broadcast line: $(cat "$T/bcast.out")"
it_wait_lines "$T/b.out" '"event":"broadcast".*"topic":"news","text":"to all, by the server"' 1 \
    || fail "B did not get the broadcast through the server"
echo "ok 3 A -> B through the node: $(grep '^delivered' "$T/send.out"); the broadcast went by the server too"

# --- 4. the REPL ---------------------------------------------------------------------------
mkfifo "$T/a.in"
"$O" --data-dir "$T/a" --server "$S" repl <"$T/a.in" >"$T/a.out" 2>"$T/a.err" &
APID=$!
PIDS+=($APID)
exec 3>"$T/a.in"
it_wait_for "$T/a.out" "connected to server $S" 20 || fail "the REPL did not connect"
grep -q "no mesh in this build: everything goes through the server" "$T/a.out" || fail "the REPL's greeting"
echo "/send bob from the REPL" >&3
it_wait_for "$T/a.out" "^delivered [0-9a-f]{12} to ${BK:0:12} \(1 hop, via server $S" 20 \
    || fail "/send got no receipt"
it_wait_lines "$T/b.out" '"text":"from the REPL","path":"server"' 1 || fail "B did not get the REPL's message"
printf '/mesh peers\n/mesh route\n/help\n' >&3
it_wait_for "$T/a.out" "^/mesh peers: $NOMESH" 10 || fail "/mesh peers does not say there is no mesh"
it_wait_for "$T/a.out" "^/mesh route: $NOMESH" 10 || fail "/mesh route does not say there is no mesh"
it_wait_for "$T/a.out" '^  /quit ' 10 || fail "/help did not list"
grep -q 'unknown command' "$T/a.out" && fail "a /mesh command was called unknown"
grep -Eq '^  /mesh (peers|route|send) ' "$T/a.out" && fail "/help lists a mesh-only command"
echo "ok 4 the REPL sends through the server; /mesh peers and /mesh route say this build has no mesh"

# --- 5. no P2P socket, no mDNS socket, nobody dials in ------------------------------------
udp_of() { ss -uanpH | grep "pid=$1," || true; }
for who in A:$APID B:$BPID; do
    pid=${who#*:}
    udp_of "$pid" >"$T/udp.txt"
    n=$(wc -l <"$T/udp.txt")
    [ "$n" -eq 1 ] || fail "${who%%:*} has $n UDP sockets, want 1 (the server connection): $(cat "$T/udp.txt")"
    grep -q ':5353 ' "$T/udp.txt" && fail "${who%%:*} has an mDNS socket"
    echo "   ${who%%:*}: $(awk '{print $4}' "$T/udp.txt")"
done
BPORT=$(udp_of "$BPID" | awk '{print $4}' | sed 's/.*://')
mkdir -p "$T/m"
MK=$("$B/qpc" --data-dir "$T/m" identity)
"$B/qpc" --data-dir "$T/m" peer add "$BK" "127.0.0.1:$BPORT" >/dev/null
rc=0
"$B/qpc" --data-dir "$T/m" --listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 500 --server "$S" \
    send "$BK" "a mesh peer dials" >"$T/msend.out" 2>"$T/msend.err" || rc=$?
[ $rc -eq 0 ] || fail "the mesh qpc's send: exit $rc: $(cat "$T/msend.out")"
it_wait_lines "$T/b.out" "\"from\":\"$MK\".*\"text\":\"a mesh peer dials\",\"path\":\"server\"" 1 \
    || fail "B got the mesh peer's message other than through the server: $(grep 'a mesh peer' "$T/b.out")"
grep -q "via server $S" "$T/msend.out" || fail "the mesh sender's receipt: $(cat "$T/msend.out")"
echo "ok 5 one UDP socket each, none for mDNS; a mesh qpc dialling B's socket reached it only by the server"

# history and a clean exit
echo "/quit" >&3
exec 3>&-
wait "$APID" || fail "the REPL exited $?"
kill "$BPID"; wait "$BPID" 2>/dev/null || true
"$O" --data-dir "$T/b" history --json >"$T/hist.out"
grep -q '"text":"hello without mesh"' "$T/hist.out" || fail "B's history lacks the message"
grep -q '"topic":"news"' "$T/hist.out" || fail "B's history lacks the broadcast"
"$O" --data-dir "$T/a" history bob >"$T/hista.out"
grep -q 'hello without mesh' "$T/hista.out" || fail "A's history with bob lacks the message"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_client_meshoff"
