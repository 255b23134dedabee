#!/usr/bin/env bash
# it_paths_nat.sh: one-shot `qpc send` between two NATted hosts, with a qpc-server on the
# "internet" side of the lab (tests/lib/lab.sh), five sends in a row from one data dir:
#   home       (home routers: input and forward dropped unless established): direct
#              every time, each message once
#   open       (no input firewall: the crossing-packet conntrack clash): direct every
#              time, each message once
#   symmetric  (--random-fully): relayed every time, each message once; the node counts
#              the relayed traffic by client in its metrics
# and the node's metrics count the punches it coordinated and the direct paths reported.
# After a one-shot sender exits, the recipient sends nothing more to its port (counted on
# the router). Two processes of one identity (b's `qpc listen` and a `qpc send` from b's
# data directory) each get their relayed path.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
B=${QPC_BUILD:?}
T=$(mktemp -d /tmp/it_paths_nat.XXXXXX)
cleanup() {
    local rc=$?
    lab_cleanup
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
it_require_netns
SRV=$LAB_SRV_IP:7000
Q="--listen 0.0.0.0:7100 --no-mdns --server $SRV"

metrics() { lab_exec srv curl -s "http://$LAB_SRV_IP:9100/metrics"; }
metric() { metrics | awk -v m="$1" '$1 == m { print $2 }'; }
# has PATTERN: the whole page first (a `grep -q` in a pipe would fail curl under pipefail)
has() { grep -q -- "$1" <<<"$(metrics)"; }

# run TOPO WANT N: a sends N messages to b; each must say "delivered ... (WANT" and reach
# b exactly once.
run() {
    local topo=$1 want=$2 n=$3 i out
    lab_new "$topo"
    lab_spawn srv "$T/srv-$topo.out" $B/qpc-server --listen $SRV --data-dir "$T/srv-$topo" \
        --mdns-enabled=false --metrics-listen=$LAB_SRV_IP:9100
    BK=$(lab_exec b $B/qpc --data-dir "$T/b-$topo" identity)
    AK=$(lab_exec a $B/qpc --data-dir "$T/a-$topo" identity)
    it_wait_for "$T/srv-$topo.out" '^connect: ' 20 || fail "$topo: server did not start"
    lab_spawn b "$T/b-$topo.out" $B/qpc --data-dir "$T/b-$topo" $Q listen --json
    it_wait_lines "$T/b-$topo.out" '"connected to server' 1 || fail "$topo: b did not connect"
    for i in $(seq "$n"); do
        out=$(lab_exec a timeout 20 $B/qpc --data-dir "$T/a-$topo" $Q send "$BK" "$topo message $i" \
              2>>"$T/a-$topo.err") || fail "$topo: send $i exited $?: $out"
        echo "$out" >>"$T/a-$topo.out"
        echo "$out" | grep -q "delivered [0-9a-f]\{12\} to ${BK:0:12} ($want" ||
            fail "$topo: send $i was not $want: $out"
    done
    for i in $(seq "$n"); do
        it_wait_lines "$T/b-$topo.out" "\"text\":\"$topo message $i\"" 1 5 || fail "$topo: b never showed message $i"
    done
    sleep 0.5
    for i in $(seq "$n"); do
        [ "$(grep -c "\"text\":\"$topo message $i\"" "$T/b-$topo.out")" -eq 1 ] || fail "$topo: message $i shown more than once"
    done
}

run home "1 hop, via direct link" 5
# the last sender is gone: b sends nothing more to its port (the goodbye was heard)
lab_exec rtr iptables -A FORWARD -p udp -d "$LAB_NATA_WAN" --dport 7100
sleep 0.5
c0=$(lab_exec rtr iptables -nvxL FORWARD | awk '/dpt:7100/ { print $1 }')
sleep 3
c1=$(lab_exec rtr iptables -nvxL FORWARD | awk '/dpt:7100/ { print $1 }')
[ "$((c1 - c0))" -eq 0 ] || fail "home: b sent $((c1 - c0)) packets to the exited sender's port"
[ "$(metric qpc_punch_requests_total)" -ge 5 ] || fail "home: punches not counted"
[ "$(metric qpc_punch_direct_total)" -ge 5 ] || fail "home: direct paths not counted"
has '^qpc_punch_time_to_direct_seconds_bucket{le="+Inf"} [1-9]' || fail "home: no time-to-direct histogram"
echo "ok 1 home routers: 5 sends, each direct, each once"
lab_cleanup

run open "1 hop, via direct link" 5
echo "ok 2 NATs without input firewall: 5 sends, each direct, each once"
lab_cleanup

run symmetric "1 hop, via relay $SRV" 3
has "^qpc_relayed_packets_by_client_total{client=\"${AK:0:16}\"} [1-9]" ||
    fail "symmetric: relayed packets of a not counted by client"
has "^qpc_relayed_bytes_by_client_total{client=\"${BK:0:16}\"} [1-9]" ||
    fail "symmetric: relayed bytes of b not counted by client"
echo "ok 3 symmetric NATs: 3 sends, each relayed, each once; relay metrics by client"
# a listens; b's identity sends from a second process while b's `qpc listen` runs
lab_spawn a "$T/a-listen.out" $B/qpc --data-dir "$T/a-symmetric" $Q listen --json
it_wait_lines "$T/a-listen.out" '"connected to server' 1 || fail "a did not connect"
for i in 1 2; do
    out=$(lab_exec b timeout 20 $B/qpc --data-dir "$T/b-symmetric" --listen 0.0.0.0:7101 --no-mdns           --server $SRV send "$AK" "same identity $i" 2>>"$T/b-send.err") || fail "b's second process: exit $?: $out"
    echo "$out" | grep -q "delivered [0-9a-f]\{12\} to ${AK:0:12} (1 hop, via relay $SRV," || fail "b's second process: $out"
    it_wait_lines "$T/a-listen.out" "\"text\":\"same identity $i\"" 1 5 || fail "a did not show it"
done
[ "$(grep -c '"text":"same identity' "$T/a-listen.out")" -eq 2 ] || fail "a showed the messages more than once"
echo "ok 4 two processes of one identity: the second one's relayed path works"
# under -DQPC_SANITIZE=ON every report (leaks at exit included) fails the test
if grep -l "Sanitizer\|runtime error:" "$T"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo "PASS it_paths_nat"
