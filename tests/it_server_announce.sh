#!/usr/bin/env bash
# it_server_announce.sh: announces through nodes (docs/routing.md "Through nodes").
#
#   A, B and C are federated with each other (a triangle, pinned keys); D knows none of
#   them as a federated domain: D and B list each other in `peers` (static peers).
#   1. Xavier, a client of A, announces himself: listeners on A, B, C and D each get his
#      announce once (hops 1 on A, 2 on B and C, 3 on D), verified; every node counts it
#      received once, and the copies the triangle sends round are dropped as duplicates
#      (not back again); the same announce handed in again is a duplicate.
#   2. A client that turns push on later is sent what the node knows (the origin cache).
#   3. Malformed, forged, hop-shortened and not-from-origin announces are refused, each
#      counted by reason, none passed on, and the node logs one line about them in all.
#   4. Static peers carry announces both ways (a client of D is heard on B) and nothing
#      else: B has no route to d.mesh.test, so an envelope for it is held (DEFERRED)
#      in B's outbox for a route that may come, and never written to the static link.
#   5. Two CA-checked nodes with static peers only: an announce crosses.
#   6. The per-client rates: 300 announces at once, the node takes its burst and refuses
#      the rest as rate_limited; what it passes to one listener is capped (sent or shed).
# All on loopback; mDNS is off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRV=$BUILD/qpc-server
ANN=$BUILD/qpc_mesh_announce
TC=$BUILD/qpc_testclient
TMP=$(mktemp -d)
BASE=$(it_port_base 18)
PA=$BASE; FA=$((BASE + 1)); MA=$((BASE + 2))
PB=$((BASE + 3)); FB=$((BASE + 4)); MB=$((BASE + 5))
PC=$((BASE + 6)); FC=$((BASE + 7)); MC=$((BASE + 8))
PD=$((BASE + 9)); FD=$((BASE + 10)); MD=$((BASE + 11))
PIDS=()
LPIDS=()

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all KILL "${LPIDS[@]}" "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.err "$TMP"/*.out
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

node() {   # node NAME DOMAIN CLIENT_PORT FED_PORT METRICS_PORT FED_PEERS [FLAGS...]
    local name=$1 dom=$2 cp=$3 fp=$4 mp=$5 peers=$6
    shift 6
    HOME=$TMP "$SRV" --data-dir="$TMP/$name" --listen=127.0.0.1:$cp --mdns-enabled=false \
        --metrics-listen=127.0.0.1:$mp --federation-enabled --federation-domain="$dom" \
        --federation-listen=127.0.0.1:$fp --federation-peers="$peers" --idle-timeout-ms=5000 \
        "$@" >"$TMP/$name.out" 2>>"$TMP/$name.err" &
    PIDS+=($!)
    it_wait_for "$TMP/$name.out" '^connect: ' 20 || fail "node $name did not start"
}
metrics() { curl -sf "http://127.0.0.1:$1/metrics"; }
metric() { metrics "$1" | awk -v m="$2" '$1 == m {print $2}'; }
wait_metric() {   # wait_metric PORT LINE SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [[ $'\n'$(metrics "$1")$'\n' == *$'\n'"$2"$'\n'* ]] && return 0
        sleep 0.1
    done
    return 1
}
listen() {   # listen NAME PORT: a listener in the background, ready when it returns
    rm -f "$TMP/$1.out"
    "$ANN" -i "$TMP/$1.json" -S 127.0.0.1:$2 listen 0 -T 120 >"$TMP/$1.out" 2>"$TMP/$1.err" &
    LPIDS+=($!)
    it_wait_lines "$TMP/$1.out" '^ready$' 1 20 || fail "listener $1 not ready"
}
heard() { grep -c "^announce $2 " "$TMP/$1.out" || true; }   # heard LISTENER KEY

KA=$(HOME=$TMP "$SRV" --data-dir="$TMP/a" --print-federation-key 2>/dev/null)
KB=$(HOME=$TMP "$SRV" --data-dir="$TMP/b" --print-federation-key 2>/dev/null)
KC=$(HOME=$TMP "$SRV" --data-dir="$TMP/c" --print-federation-key 2>/dev/null)
node a a.mesh.test $PA $FA $MA "b.mesh.test=127.0.0.1:$FB $KB,c.mesh.test=127.0.0.1:$FC $KC"
node b b.mesh.test $PB $FB $MB "a.mesh.test=127.0.0.1:$FA $KA,c.mesh.test=127.0.0.1:$FC $KC" \
    --peers=127.0.0.1:$FD
node c c.mesh.test $PC $FC $MC "a.mesh.test=127.0.0.1:$FA $KA,b.mesh.test=127.0.0.1:$FB $KB"
node d d.mesh.test $PD $FD $MD "" --peers=127.0.0.1:$FB
for m in $MA $MB $MC; do
    for dom in a b c; do
        [ $m = $MA ] && [ $dom = a ] && continue
        [ $m = $MB ] && [ $dom = b ] && continue
        [ $m = $MC ] && [ $dom = c ] && continue
        wait_metric $m "qpc_federation_peer_up{domain=\"$dom.mesh.test\"} 1" 30 \
            || fail "link to $dom.mesh.test not up on :$m"
    done
done
wait_metric $MB "qpc_static_peer_up{address=\"127.0.0.1:$FD\"} 1" 30 || fail "B's static link to D is not up"
wait_metric $MD "qpc_static_peer_up{address=\"127.0.0.1:$FB\"} 1" 30 || fail "D's static link to B is not up"
echo "ok: triangle A - B - C federated, B and D static peers, links up"

# --- 1. through the nodes, once each --------------------------------------------------------
listen la $PA; listen lb $PB; listen lc $PC; listen ld $PD
"$ANN" -i "$TMP/xavier.json" -S 127.0.0.1:$PA send own 1 -q 7 >"$TMP/x1.out" || fail "xavier send"
X=$(awk '/^origin /{print $2}' "$TMP/x1.out")
for l in la lb lc ld; do
    it_wait_lines "$TMP/$l.out" "^announce $X 7 " 1 20 || fail "listener $l did not hear Xavier"
done
grep -q "^announce $X 7 1$" "$TMP/la.out" || fail "A's client: want hops 1: $(grep "$X" "$TMP/la.out")"
# B and C each take the copy that came first: straight from A (hops 2) or round the
# triangle (3); D hears only from B, one hop further.
HB=$(awk -v k="$X" '$2 == k {print $4}' "$TMP/lb.out")
HC=$(awk -v k="$X" '$2 == k {print $4}' "$TMP/lc.out")
HD=$(awk -v k="$X" '$2 == k {print $4}' "$TMP/ld.out")
[[ $HB == [23] && $HC == [23] ]] || fail "B's and C's clients: want hops 2 or 3, got $HB and $HC"
[ "$HD" = $((HB + 1)) ] || fail "D's client (static peer of B): want hops $((HB + 1)), got $HD"
# the triangle's copies settle: each node counts Xavier's announce received once
sleep 1
for m in $MA $MB $MC $MD; do
    [ "$(metric $m qpc_announces_received_total)" = 1 ] || fail "node :$m received $(metric $m qpc_announces_received_total), want 1"
done
DUPS=$(( $(metric $MA qpc_announces_duplicate_total) + $(metric $MB qpc_announces_duplicate_total) + $(metric $MC qpc_announces_duplicate_total) ))
[ "$DUPS" -ge 1 ] || fail "no copy came round the triangle as a duplicate"
D0=$(metric $MA qpc_announces_duplicate_total)
"$ANN" -i "$TMP/xavier.json" -S 127.0.0.1:$PA send own 1 -q 7 >/dev/null || fail "xavier again"
wait_metric $MA "qpc_announces_duplicate_total $((D0 + 1))" 10 || fail "the same announce again is not a duplicate on A"
sleep 0.5
for l in la lb lc ld; do
    [ "$(heard $l "$X")" = 1 ] || fail "listener $l heard Xavier $(heard $l "$X") times, want 1"
done
echo "ok 1: Xavier's announce reached A, B, C (hops 1, $HB, $HC) and D (static, $HD) once each; $DUPS copies round the triangle dropped as duplicates"

# --- 2. a newcomer is told what the node knows -------------------------------------------------
listen late $PC
it_wait_lines "$TMP/late.out" "^announce $X 7 $HC$" 1 10 || fail "a client that turned push on later was not sent the cache"
[ "$(metric $MC qpc_announce_origins)" = 1 ] || fail "C caches $(metric $MC qpc_announce_origins) origins"
echo "ok 2: a client connecting later to C was sent Xavier's announce from the cache"

# --- 3. refused: malformed, forged, shortened, not from its origin -----------------------------
: >"$TMP/a.err.before"; cp "$TMP/a.err" "$TMP/a.err.before"
for kind in malformed forged shortened notorigin; do
    "$ANN" -i "$TMP/mallory.json" -S 127.0.0.1:$PA send $kind 20 -q 100 >"$TMP/m-$kind.out" \
        || fail "mallory $kind"
done
R=$(metrics $MA | grep '^qpc_announces_refused_total')
grep -q 'reason="invalid"} 20$' <<<"$R" || fail "malformed: $R"
grep -q 'reason="forged"} 40$' <<<"$R" || fail "forged + shortened: $R"
grep -q 'reason="not_origin"} 20$' <<<"$R" || fail "not from origin: $R"
[ "$(metric $MA qpc_announces_received_total)" = 1 ] || fail "a refused announce was taken"
LINES=$(diff "$TMP/a.err.before" "$TMP/a.err" | grep -c 'announce from .* refused' || true)
[ "$LINES" = 1 ] || fail "80 refusals made $LINES log lines, want 1"
sleep 0.5
for l in la lb lc ld; do
    [ "$(grep -c '^announce' "$TMP/$l.out")" = 1 ] || fail "listener $l heard a refused announce"
done
echo "ok 3: 20 malformed, 20 forged, 20 hop-shortened, 20 not-from-origin refused by reason, one log line"

# --- 4. static peers: announces both ways, no messages -----------------------------------------
"$ANN" -i "$TMP/dora.json" -S 127.0.0.1:$PD send own 1 -q 3 >"$TMP/d1.out" || fail "dora send"
DK=$(awk '/^origin /{print $2}' "$TMP/d1.out")
it_wait_lines "$TMP/lb.out" "^announce $DK 3 2$" 1 20 || fail "B's client did not hear D's client over the static link"
it_wait_lines "$TMP/la.out" "^announce $DK 3 3$" 1 20 || fail "A's client did not hear D's client through B"
metrics $MB | grep -q 'qpc_federation_peer_up{domain="d.mesh.test"}' && fail "B made D a federation peer"
metrics $MB | grep -q 'qpc_federation_route_hops{domain="d.mesh.test"' && fail "B routes d.mesh.test"
ROB=$("$TC" -i "$TMP/rob.json" id)
timeout 30 "$TC" -S 127.0.0.1:$PB -i "$TMP/bea.json" send "$ROB@d.mesh.test" 1 >"$TMP/bsend.out" || true
# B holds it (a route to d.mesh.test may be learned later) but never hands it to the
# static peer: that link carries announces only.
grep -q "summary sent=1 DEFERRED=1$" "$TMP/bsend.out" || fail "an envelope for the static peer's domain: $(tail -1 "$TMP/bsend.out")"
[ "$(metric $MB qpc_outbox_depth)" = 1 ] || fail "B did not hold the envelope for a domain it cannot route yet"
sleep 3   # a few pump rounds and retries
[ "$(metric $MB qpc_federated_total)" = 0 ] || fail "B handed an envelope over"
[ "$(metric $MD qpc_federated_received_total)" = 0 ] || fail "D (static peer) was given an envelope"
echo "ok 4: a client of D (static peer) heard on B (hops 2) and A (3); d.mesh.test stays unrouted at B (held, never written to the static link)"

# --- 5. static peers between CA-checked nodes -----------------------------------------------------
# Two nodes of one test CA, no [federation_peers] at all: a static link is dialled with no
# name to insist on (any certificate of the CA), and carries announces.
it_make_pki "$TMP/pki" >/dev/null 2>&1 || fail "cannot make the test PKI"
K=$TMP/pki
node e a.mesh.test $((BASE + 12)) $((BASE + 13)) $((BASE + 14)) "" --federation-trust=ca \
    --federation-cert=$K/node-a.der --federation-key=$K/node-a.key.der --federation-ca=$K/ca.der \
    --peers=127.0.0.1:$((BASE + 16))
node f b.mesh.test $((BASE + 15)) $((BASE + 16)) $((BASE + 17)) "" --federation-trust=ca \
    --federation-cert=$K/node-b.der --federation-key=$K/node-b.key.der --federation-ca=$K/ca.der \
    --peers=127.0.0.1:$((BASE + 13))
wait_metric $((BASE + 14)) "qpc_static_peer_up{address=\"127.0.0.1:$((BASE + 16))\"} 1" 30 \
    || fail "CA mode: E's static link to F is not up"
listen lf $((BASE + 15))
"$ANN" -i "$TMP/erin.json" -S 127.0.0.1:$((BASE + 12)) send own 1 -q 5 >"$TMP/e1.out" || fail "erin send"
EK=$(awk '/^origin /{print $2}' "$TMP/e1.out")
it_wait_lines "$TMP/lf.out" "^announce $EK 5 2$" 1 20 || fail "CA mode: F's client did not hear E's client over the static link"
echo "ok 5: CA-checked nodes with only static peers: an announce crossed (hops 2)"

# --- 6. the per-client rates, in and out ---------------------------------------------------------
rl() { metrics $MB | awk '$1 == "qpc_announces_refused_total{reason=\"rate_limited\"}" {print $2}'; }
R0=$(metric $MB qpc_announces_received_total); RL0=$(rl); S0=$(metric $MB qpc_announces_shed_total)
L0=$(grep -c '^announce ' "$TMP/lb.out" || true)
"$ANN" -i "$TMP/rafe.json" -S 127.0.0.1:$PB send relayed 300 >"$TMP/rafe.out" || fail "rafe"
RL=$(( $(rl) - RL0 ))
TAKEN=$(( $(metric $MB qpc_announces_received_total) - R0 ))
[ "$RL" -ge 1 ] || fail "300 announces at once: none rate-limited"
[ $((RL + TAKEN)) = 300 ] || fail "taken $TAKEN + refused $RL != 300"
[ "$TAKEN" -ge 100 ] || fail "the burst of 100 was not taken ($TAKEN)"
[ "$TAKEN" -lt 300 ] || fail "the rate limit did not hold"
# what B passes on to its listener is capped too: each copy is sent or counted shed
SHED=$(( $(metric $MB qpc_announces_shed_total) - S0 ))
for ((i = 0; i < 100; i++)); do   # the copies B sent may still be on their way
    GOT=$(( $(grep -c '^announce ' "$TMP/lb.out" || true) - L0 ))
    [ $((GOT + SHED)) -ge "$TAKEN" ] && break
    sleep 0.1
done
[ "$SHED" -ge 1 ] || fail "$TAKEN new announces to one listener at once: none shed"
[ $((GOT + SHED)) = "$TAKEN" ] || fail "listener got $GOT + shed $SHED != $TAKEN"
echo "ok 6: 300 announces at once from one client: $TAKEN taken (burst 100, 10/s), $RL refused as rate_limited; B's listener was sent $GOT, $SHED shed (budget 60, 2/s)"

metrics $MB | grep -E '^qpc_announce|^qpc_static_peer' | sed 's/^/    /'

it_kill_all TERM "${LPIDS[@]}"; LPIDS=()
for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${PIDS[@]}"; do wait "$pid" || fail "a node did not exit 0"; done
PIDS=()
if grep -l "Sanitizer\|runtime error:" "$TMP"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo PASS
