#!/usr/bin/env bash
# it_lab_nat.sh: the NAT lab (tests/lib/lab.sh) behaves like the internet, checked with
# plain UDP (tests/lib/lab_udp.py) before any qpc test relies on it.
#
#   home      a host's port is kept by its NAT; an unsolicited datagram does not get in;
#             both sides sending to each other's public address (one after the other)
#             punches through.
#   open      the same punch fails: the first crossing datagram lands on the far NAT
#             itself and its conntrack entry makes the far host's mapping clash (remapped
#             port). With TTL-2 datagrams first (they open one's own mapping and die at
#             the router) and normal ones after, it works (DESIGN.md, measured).
#   symmetric one local port gets a different public port per destination.
#   samenat   two hosts behind one NAT reach each other on the LAN, not through the
#             NAT's public address (no hairpin).
#   twolinks  the two-interface host reaches a host on each link.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
U="python3 $(dirname "${BASH_SOURCE[0]}")/lib/lab_udp.py"
T=$(mktemp -d /tmp/it_lab_nat.XXXXXX)
cleanup() {
    local rc=$?
    lab_cleanup
    [ $rc -eq 0 ] || it_dump_logs all "$T"/*.out
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns

# punch_pair LOWTTL DELAY PORTA PORTB: a starts punching b's public address at once, b
# starts 0.3 s later (so a's first datagram is the crossing one); 0 when both got through.
punch_pair() {
    local low=$1 delay=$2 pa=$3 pb=$4 pubA pubB ra=0 rb=0
    pubA=$(lab_exec a $U probe "$pa" $LAB_SRV_IP:3478) || fail "a: no echo answer"
    pubB=$(lab_exec b $U probe "$pb" $LAB_SRV_IP:3478) || fail "b: no echo answer"
    lab_exec a $U punch "$pa" "$pubB" --low-ttl "$low" --delay "$delay" --for 2.5 >"$T/pa.out" &
    local pida=$!
    sleep 0.3
    lab_exec b $U punch "$pb" "$pubA" --low-ttl "$low" --delay "$delay" --for 2.2 >"$T/pb.out" || rb=1
    wait $pida || ra=1
    [ $ra -eq 0 ] && [ $rb -eq 0 ]
}

# --- home -----------------------------------------------------------------------------
lab_new home
lab_spawn srv "$T/echo.out" $U echo 3478 60
sleep 0.3
pub=$(lab_exec a $U probe 40001 $LAB_SRV_IP:3478) || fail "home: a cannot reach the server"
[ "$pub" = "$LAB_NATA_WAN:40001" ] || fail "home: a seen as $pub, want $LAB_NATA_WAN:40001"
# nobody asked for it: b's datagram to a's mapping from another port stays outside
lab_exec a $U listen 40001 1.0 >"$T/unsolicited.out" &
pid=$!
sleep 0.2
lab_exec b $U send 40009 "$LAB_NATA_WAN:40001" 10
if wait $pid; then fail "home: an unsolicited datagram got in"; fi
punch_pair 0 0 40011 40012 || fail "home: a plain punch should work"
echo "ok 1 home NAT: port kept, unsolicited dropped, plain punch works"
lab_cleanup

# --- open -----------------------------------------------------------------------------
lab_new open
lab_spawn srv "$T/echo.out" $U echo 3478 60
sleep 0.3
if punch_pair 0 0 40021 40022; then fail "open: a plain punch worked (the lab hides the conntrack clash)"; fi
punch_pair 3 0.6 40031 40032 || fail "open: TTL-2 first, then normal: should work"
echo "ok 2 open NAT: plain punch fails (clash), TTL-2 first then normal works"
lab_cleanup

# --- symmetric ------------------------------------------------------------------------
lab_new symmetric
lab_spawn srv "$T/echo1.out" $U echo 3478 60
lab_spawn srv "$T/echo2.out" $U echo 3479 60
sleep 0.3
p1=$(lab_exec a $U probe 40041 $LAB_SRV_IP:3478) || fail "symmetric: no answer"
p2=$(lab_exec a $U probe 40041 $LAB_SRV_IP:3479) || fail "symmetric: no answer"
[ "${p1%:*}" = "$LAB_NATA_WAN" ] || fail "symmetric: seen as $p1"
[ "$p1" != "$p2" ] || fail "symmetric: one local port got one public port ($p1) for two destinations"
echo "ok 3 symmetric NAT: $p1 and $p2 for one local port"
lab_cleanup

# --- samenat --------------------------------------------------------------------------
lab_new samenat
lab_spawn srv "$T/echo.out" $U echo 3478 60
sleep 0.3
pubB=$(lab_exec b $U probe 40052 $LAB_SRV_IP:3478) || fail "samenat: b cannot reach the server"
lab_exec b $U punch 40052 "$LAB_A_IP:40051" --for 2 >"$T/sb.out" &
pid=$!
lab_exec a $U punch 40051 "$LAB_B_IP:40052" --for 2 >"$T/sa.out" || fail "samenat: no LAN path"
wait $pid || fail "samenat: no LAN path back"
lab_exec b $U listen 40052 1.0 >"$T/hairpin.out" &
pid=$!
sleep 0.2
lab_exec a $U send 40053 "$pubB" 10
if wait $pid; then fail "samenat: the NAT loops back its public address"; fi
echo "ok 4 one NAT: LAN path works, no hairpin through $pubB"
lab_cleanup

# --- twolinks -------------------------------------------------------------------------
lab_new twolinks
# reach ROLE DEST_IP: a datagram from m to ROLE at DEST_IP arrives (and the reverse)
reach() {
    local pid
    lab_exec "$1" $U listen 40061 1.5 >"$T/l$1.out" &
    pid=$!
    sleep 0.2
    lab_exec m $U send 40062 "$2:40061" 5
    wait $pid || fail "twolinks: m cannot reach $1 at $2"
}
reach a "$LAB_A_IP"
reach b "$LAB_B_IP"
echo "ok 5 two links: m reaches a and b"
echo "PASS it_lab_nat"
