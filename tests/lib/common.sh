# tests/lib/common.sh: helpers shared by the integration scripts tests/it_*.sh.
#
# Sourced, never run (CMake only globs tests/it_*.sh, so this is not a test). The one
# idea: every helper here is best-effort where it cleans up (it never fails, so it is
# safe inside an EXIT trap under `set -euo pipefail`) and bounded where it waits (it
# returns 1 after the timeout instead of hanging). What a failure means is left to the
# caller's own fail(), so each script keeps its exact assertions and messages.
# Usage, right after `set -euo pipefail`:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# it_wait_for FILE PATTERN SECONDS: 0 once FILE has a line matching the extended regex
# PATTERN, 1 after SECONDS (polled every 0.1 s; FILE need not exist yet).
it_wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# it_wait_lines FILE PATTERN N [SECONDS]: 0 once FILE has at least N lines matching the
# basic regex PATTERN, 1 after SECONDS (default 15).
it_wait_lines() {
    local i n
    for ((i = 0; i < ${4:-15} * 10; i++)); do
        n=$(grep -c -- "$2" "$1" 2>/dev/null || true)
        [ "${n:-0}" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

# it_kill_all SIGNAL [PID...]: send SIGNAL (e.g. TERM, KILL) to every PID, then reap each.
# Empty or already-gone PIDs are fine; never fails.
it_kill_all() {
    local sig=$1 p
    shift
    # Children first: a PID may be a `timeout` wrapper, and killing the wrapper alone
    # would leave the program it runs behind.
    for p in "$@"; do pkill -"$sig" -P "$p" 2>/dev/null || true; done
    for p in "$@"; do kill -"$sig" "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
    return 0
}

# it_netns_del [NAMESPACE...]: delete each network namespace (and with it the veth ends
# inside it); a namespace that was never made is fine; never fails.
it_netns_del() {
    local ns
    for ns in "$@"; do ip netns del "$ns" 2>/dev/null || true; done
    return 0
}

# it_netns_purge PREFIX: what a run left behind in namespaces named PREFIX*, for a
# driver killed hard (mesh_lab.py's own cleanup did not run): kill -9 each process in
# them, then delete them. Never fails.
it_netns_purge() {
    local ns p
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$1" || true); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    return 0
}

# it_mesh_lab_stop PID PREFIX DIR: the cleanup of a script driving tests/lib/mesh_lab.py
# in the background as PID (empty once it has been waited for) with namespace prefix
# PREFIX and output in DIR: stop and reap the lab, purge its namespaces, and copy DIR to
# $MESH_LAB_KEEP when that is set (the nodes' output, to look at). The caller removes
# DIR. Never fails.
it_mesh_lab_stop() {
    [ -z "$1" ] || kill "$1" 2>/dev/null || true
    [ -z "$1" ] || wait "$1" 2>/dev/null || true
    it_netns_purge "$2"
    [ -z "${MESH_LAB_KEEP:-}" ] || cp -a "$3" "$MESH_LAB_KEEP" || true
    return 0
}

# it_built_from BUILD: print the commit (git describe, "-dirty" if so) of the source tree
# the build directory BUILD was configured from, not of this script's tree; "?" if unknown.
it_built_from() {
    local src
    src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null)
    [ -n "$src" ] && git -C "$src" describe --always --dirty 2>/dev/null || echo '?'
}

# it_dump_logs LINES [FILE...]: for each FILE that exists print "--- NAME" and its last
# LINES lines ("all": the whole file). For failure reports; never fails.
it_dump_logs() {
    local lines=$1 f
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "--- $(basename "$f")"
        if [ "$lines" = all ]; then cat "$f"; else tail -n "$lines" "$f"; fi
    done
    return 0
}

# it_veth_link NS_A NS_B VETH_A VETH_B CIDR_A CIDR_B: join the existing namespaces NS_A
# and NS_B by one veth pair (VETH_A in NS_A with CIDR_A, VETH_B in NS_B with CIDR_B), both
# ends up and multicast on. Interface names at most 15 characters, unique per namespace.
it_veth_link() {
    # made straight inside the namespaces: no moment where a veth end sits in the host's
    # namespace, where deleting the two namespaces would not remove it
    ip link add "$3" netns "$1" type veth peer name "$4" netns "$2"
    ip -n "$1" addr add "$5" dev "$3"
    ip -n "$2" addr add "$6" dev "$4"
    ip -n "$1" link set "$3" multicast on up
    ip -n "$2" link set "$4" multicast on up
}

# it_veth_pair NS_A NS_B VETH_A VETH_B CIDR_A CIDR_B: make namespaces NS_A and NS_B
# (lo up in each) joined as it_veth_link does. Names must be unique per run (use $$).
# The caller deletes both namespaces on exit.
it_veth_pair() {
    ip netns add "$1"
    ip netns add "$2"
    ip -n "$1" link set lo up
    ip -n "$2" link set lo up
    it_veth_link "$@"
}

# it_veth_extend NS_OLD NS_NEW VETH_OLD VETH_NEW CIDR_OLD CIDR_NEW: make namespace NS_NEW
# (lo up) joined to the existing NS_OLD as it_veth_link does: the next link of a chain.
# The caller deletes NS_NEW on exit.
it_veth_extend() {
    ip netns add "$2"
    ip -n "$2" link set lo up
    it_veth_link "$@"
}

# it_netns_make PREFIX NODE...: a namespace PREFIX<node> for each NODE, lo up and no IP
# forwarding (only qpc's own forwarding passes a message on). The caller deletes them on
# exit (it_netns_del).
it_netns_make() {
    local prefix=$1 n
    shift
    for n in "$@"; do
        ip netns add "$prefix$n"
        ip -n "$prefix$n" link set lo up
        ip netns exec "$prefix$n" sysctl -qw net.ipv4.ip_forward=0
    done
}

# it_ring_make PREFIX NET NODE...: a ring of namespaces PREFIX<node> (lo up, no IP
# forwarding: only qpc's own forwarding passes a message on), each node joined to the
# next and the last to the first by a veth pair of its own /24: edge i (1-based) is
# v<x><y> = NET.i.1 in x and v<y><x> = NET.i.2 in y. NET is "10.214" and the like,
# unique per test. The caller deletes the namespaces on exit (it_netns_del).
it_ring_make() {
    local prefix=$1 net=$2 i x y
    shift 2
    it_netns_make "$prefix" "$@"
    local nodes=("$@")
    for ((i = 0; i < ${#nodes[@]}; i++)); do
        x=${nodes[$i]}
        y=${nodes[$(( (i + 1) % ${#nodes[@]} ))]}
        it_veth_link "$prefix$x" "$prefix$y" "v$x$y" "v$y$x" "$net.$((i + 1)).1/24" "$net.$((i + 1)).2/24"
    done
}

# it_route_of NODE DEST: the line `qpc route` prints for DEST (a peer id) in NODE's data
# directory $T/NODE, "" when there is none. Reads the caller's $B (build) and $T.
it_route_of() { "$B/qpc" --data-dir "$T/$1" route | grep "^$2 " || true; }

# it_via_of NODE DEST HOPS: the next hop of NODE's live announced route of HOPS hops to
# DEST ("dest peer NEXT HOPS announce seqno age", nothing after: not retracted), "" otherwise.
it_via_of() {
    it_route_of "$1" "$2" | awk -v h="$3" '$2 == "peer" && $4 == h && $5 == "announce" && NF == 7 {print $3}'
}

# it_bridge_add NS: make namespace NS holding an up bridge br0: a LAN for it_bridge_node.
it_bridge_add() {
    ip netns add "$1"
    ip -n "$1" link add br0 type bridge
    ip -n "$1" link set br0 up
}

# it_bridge_node BRIDGE_NS NS VETH CIDR: make namespace NS plugged into br0 of BRIDGE_NS:
# interface eth0 in NS (CIDR, multicast on, up, and lo up), its peer VETH on the bridge.
it_bridge_node() {
    ip netns add "$2"
    ip -n "$1" link add "$3" type veth peer name eth0 netns "$2"
    ip -n "$1" link set "$3" master br0 up
    ip -n "$2" addr add "$4" dev eth0
    ip -n "$2" link set eth0 multicast on up
    ip -n "$2" link set lo up
}

# it_make_pki DIR: make the federation test PKI (tests/data/make_fed_certs.sh, certtool)
# in DIR: ca.der, node-a/node-b/rogue .der and .key.der. Needs QPC_SRC. Returns its status.
it_make_pki() {
    sh "${QPC_SRC:?set QPC_SRC to the source directory}/tests/data/make_fed_certs.sh" "$1"
}

# it_skip REASON: end the test as skipped (CTest counts exit 77 as "Not Run", never as
# passed; CMakeLists.txt sets SKIP_RETURN_CODE 77 for every it_*.sh).
it_skip() {
    echo "SKIP: $1"
    exit 77
}

# it_require_netns: skip the test unless this process can make network namespaces
# (root, and a kernel and container that allow it). Tests that build hosts call it first.
it_require_netns() {
    [ "$(id -u)" -eq 0 ] || it_skip "needs root to make network namespaces"
    local probe="qpc-probe-$$"
    ip netns add "$probe" 2>/dev/null || it_skip "cannot make network namespaces here (ip netns add failed)"
    ip netns del "$probe" 2>/dev/null || true
}

# A REPL in a real terminal: it_tmux_start SESSION COMMAND starts COMMAND in a detached
# tmux session (220x60); it_tmux_screen SESSION prints its scrollback;
# it_tmux_wait SESSION PATTERN [SECONDS] is 0 once the screen matches the extended regex
# PATTERN, 1 after SECONDS (default 15); it_tmux_type SESSION LINE types LINE and Enter.
# The caller kills the session in its cleanup (tmux kill-session -t SESSION).
#
# it_tmux_private DIR: this test's own tmux server, with its socket under DIR, that stays
# up while it has no session. Tests run two at a time, and on one shared server a test's
# kill-session could end the server just as another's new-session connects ("server
# exited unexpectedly"); a test that restarts its REPL races the same way with itself.
# The caller ends it in its cleanup with 'tmux kill-server' (before removing DIR).
it_tmux_private() {
    export TMUX_TMPDIR="$1"
    tmux -f /dev/null start-server \; set-option -s exit-empty off
}
it_tmux_start() { tmux new-session -d -s "$1" -x 220 -y 60 "$2"; }
it_tmux_screen() { tmux capture-pane -p -t "$1" -S -3000; }
it_tmux_wait() {
    local i
    for ((i = 0; i < ${3:-15} * 10; i++)); do
        it_tmux_screen "$1" | grep -Eq -- "$2" && return 0
        sleep 0.1
    done
    return 1
}
it_tmux_type() { tmux send-keys -t "$1" -l -- "$2"; tmux send-keys -t "$1" Enter; }

# it_port_base [COUNT]: print a port P such that P..P+COUNT-1 (default 10) are free for
# both UDP and TCP on 127.0.0.1 right now. The range stays below Linux's ephemeral ports
# (32768 and up), where every client socket bound to port 0 lands: a fixed test port in
# that range can be taken at any moment by another test's client, which is how tests
# that run side by side (ctest -j2) used to fail with "cannot listen". Still a check, not
# a reservation: two tests starting in the same instant can pick the same range, which
# the random start makes unlikely.
it_port_base() {
    python3 - "${1:-10}" <<'PYEOF'
import random, socket, sys
count = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000 - count)
    socks = []
    try:
        for p in range(base, base + count):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("it_port_base: no free range of %d ports found" % count)
PYEOF
}
