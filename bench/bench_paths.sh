#!/usr/bin/env bash
# bench_paths.sh [BUILD] [N] [TOPOLOGY...]: how long a user waits for a message, per
# topology of the NAT lab (tests/lib/lab.sh; default: home open samenat symmetric).
#
# For each topology: a qpc-server on the internet side, b listening behind its NAT, and
# from a's data directory N one-shot `qpc send` (fork to "delivered"), then N REPL
# sessions each timing its first /mesh send (typed to "delivered"), after a warm-up send
# so a's directory knows b as it would after first contact. Prints median, p99, max and
# the paths taken. Needs root (namespaces); run by hand, never by CTest: figures depend on
# the machine and its load (the process-start line gives the floor).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../tests/lib/common.sh"
source "$HERE/../tests/lib/lab.sh"
B=$(cd "${1:-$HERE/../build}" && pwd)
N=${2:-20}
shift 2 2>/dev/null || shift $#
TOPOS=("$@")
[ ${#TOPOS[@]} -gt 0 ] || TOPOS=(home open samenat symmetric)
T=$(mktemp -d /tmp/bench_paths.XXXXXX)
trap 'lab_cleanup; rm -rf "$T"' EXIT
it_require_netns
SRV=$LAB_SRV_IP:7000

echo "bench_paths: $N samples each, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for topo in "${TOPOS[@]}"; do
    lab_new "$topo"
    lab_spawn srv "$T/srv-$topo.out" "$B/qpc-server" --listen $SRV --data-dir "$T/srv-$topo" \
        --mdns-enabled=false --metrics-listen=
    BK=$(lab_exec b "$B/qpc" --data-dir "$T/b-$topo" identity)
    lab_exec a "$B/qpc" --data-dir "$T/a-$topo" identity >/dev/null
    it_wait_for "$T/srv-$topo.out" '^connect: ' 20
    Q=(--listen 0.0.0.0:7100 --no-mdns --server $SRV)
    lab_spawn b "$T/b-$topo.out" "$B/qpc" --data-dir "$T/b-$topo" "${Q[@]}" listen --json
    it_wait_lines "$T/b-$topo.out" '"connected to server' 1
    echo "== $topo"
    python3 "$HERE/bench_paths.py" start "$(lab_ns a)" "$N" "$B/qpc"
    python3 "$HERE/bench_paths.py" send "$(lab_ns a)" 1 "$B/qpc" --data-dir "$T/a-$topo" "${Q[@]}" -- "$BK" |
        sed 's/^qpc send              /first contact (send)  /'
    python3 "$HERE/bench_paths.py" send "$(lab_ns a)" "$N" "$B/qpc" --data-dir "$T/a-$topo" "${Q[@]}" -- "$BK"
    python3 "$HERE/bench_paths.py" repl "$(lab_ns a)" "$N" "$B/qpc" --data-dir "$T/a-$topo" "${Q[@]}" -- "$BK"
    lab_cleanup
done
