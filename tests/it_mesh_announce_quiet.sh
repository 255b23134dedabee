#!/usr/bin/env bash
# it_mesh_announce_quiet.sh: an idle mesh sends each announce at most once per neighbour
# and refresh interval, and announces at once when a neighbour goes.
#
#   A - B - C - D - A, a ring of four namespaces (no IP forwarding, no mDNS, no server),
#   static peers along the ring, announce interval I = 3 s; each qpc runs its REPL on a
#   pipe so `/mesh announces` gives its counters.
#   1. Once every node has routes to the three others, over an idle window of W seconds
#      (measured here, from before the first counters were asked to after the last
#      came), each node: made at most W/I + 1 announces of its own, none triggered (its
#      addresses, domain and neighbours did not change); sent at most
#      2 links x 4 origins x (W/I + 1) announce frames (every origin's announce at most
#      once per neighbour per refresh: an unchanged table is not sent again sooner);
#      saw no link come up (no redial while idle).
#   2. D quits: A and C, which lost a neighbour, each make a triggered announce (a new
#      seqno, so the others may take a longer route to them at once); B, which lost
#      none, makes none.
# Counts only, never times (the figures are printed). Everything made here is removed
# on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_mesh_announce_quiet.XXXXXX)
P=qq$$
PIDS=()
cleanup() {
    local rc=$?
    for fd in 7 8 9 10; do eval "exec $fd>&-" 2>/dev/null || true; done
    it_kill_all TERM "${PIDS[@]}"
    it_netns_del "${P}a" "${P}b" "${P}c" "${P}d"
    [ $rc -eq 0 ] || it_dump_logs 30 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

it_ring_make "$P" 10.215 a b c d

I=3
PORT=$(it_port_base 1)
declare -A KEY FD=([a]=7 [b]=8 [c]=9 [d]=10)
for n in a b c d; do KEY[$n]=$($B/qpc --data-dir "$T/$n" identity); done
start() { # name static-peers: the REPL reading the pipe $T/name.in, output in $T/name.out
    mkfifo "$T/$1.in"
    ip netns exec "$P$1" $B/qpc --data-dir "$T/$1" --listen "0.0.0.0:$PORT" --no-mdns --log-level info \
        --announce-interval-s $I --peers "$2" repl <"$T/$1.in" >>"$T/$1.out" 2>>"$T/$1.err" &
    PIDS+=($!)
    eval "exec ${FD[$1]}>\"\$T/\$1.in\""   # held open: the REPL ends only at /quit
}
start a "10.215.1.2:$PORT,10.215.4.1:$PORT"
start b "10.215.2.2:$PORT"
start c "10.215.3.2:$PORT"
start d ""

say() { echo "$2" >&"${FD[$1]}"; }
counters() { # node: the fields of its next `/mesh announces` line, "made triggered link_frames ..."
    local before after i
    before=$(grep -c "announces: made" "$T/$1.out" || true)
    say "$1" "/mesh announces"
    for ((i = 0; i < 100; i++)); do
        after=$(grep -c "announces: made" "$T/$1.out" || true)
        [ "$after" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$after" -gt "$before" ] || fail "$1 did not answer /mesh announces"
    grep "announces: made" "$T/$1.out" | tail -1 | sed 's/.*announces: //' | tr -c '0-9\n' ' ' | xargs
}
field() { echo "$1" | cut -d' ' -f"$2"; }   # 1 made 2 triggered 3 link_frames 4 link_bytes ... 8 links_up

# --- 1. idle: each announce once per neighbour and interval -----------------------------
for n in a b c d; do
    for o in a b c d; do
        [ $n = $o ] && continue
        for ((i = 0; i < 150; i++)); do [ -n "$(it_route_of $n "${KEY[$o]}")" ] && break; sleep 0.2; done
        [ -n "$(it_route_of $n "${KEY[$o]}")" ] || fail "${n^^} has no route to ${o^^}"
    done
done
sleep $((2 * I))   # the start's links and first announces are behind us
declare -A C0 C1
t0=$(date +%s%N)
for n in a b c d; do C0[$n]=$(counters $n); done
sleep $((6 * I))
for n in a b c d; do C1[$n]=$(counters $n); done
t1=$(date +%s%N)
W=$(( (t1 - t0 + 999999999) / 1000000000 ))
R=$(( W / I + 1 ))   # refreshes the window can hold
for n in a b c d; do
    made=$(( $(field "${C1[$n]}" 1) - $(field "${C0[$n]}" 1) ))
    trig=$(( $(field "${C1[$n]}" 2) - $(field "${C0[$n]}" 2) ))
    frames=$(( $(field "${C1[$n]}" 3) - $(field "${C0[$n]}" 3) ))
    bytes=$(( $(field "${C1[$n]}" 4) - $(field "${C0[$n]}" 4) ))
    ups=$(( $(field "${C1[$n]}" 8) - $(field "${C0[$n]}" 8) ))
    echo "# ${n^^} over $W s idle: made $made ($trig triggered), $frames announce frames ($bytes bytes," \
         "$(( bytes / W )) B/s) on 2 links, $ups links up; at most $R refreshes fit"
    [ $made -le $R ] || fail "${n^^} made $made announces in $W s, at most $R fit (interval $I s)"
    [ $trig -eq 0 ] || fail "${n^^} made $trig triggered announces while nothing changed"
    [ $frames -le $(( 2 * 4 * R )) ] ||
        fail "${n^^} sent $frames announce frames in $W s: more than 4 origins x 2 neighbours x $R refreshes"
    [ $ups -eq 0 ] || fail "${n^^} saw $ups links come up while idle"
done
echo "ok 1 idle: each origin's announce at most once per neighbour and interval, nothing triggered"

# --- 2. a neighbour gone: a triggered announce at once ----------------------------------
for n in a b c; do C0[$n]=$(counters $n); done
say d "/quit"
for n in a c; do
    for ((i = 0; i < 100; i++)); do
        trig=$(( $(field "$(counters $n)" 2) - $(field "${C0[$n]}" 2) ))
        [ $trig -ge 1 ] && break
        sleep 0.2
    done
    [ $trig -ge 1 ] || fail "${n^^} lost its neighbour D but made no triggered announce"
done
trig=$(( $(field "$(counters b)" 2) - $(field "${C0[b]}" 2) ))
[ $trig -eq 0 ] || fail "B lost no neighbour but made $trig triggered announces"
echo "ok 2 A and C announce anew when D goes; B, which lost nothing, does not"
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_mesh_announce_quiet"
