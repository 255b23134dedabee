# tests/lib/lab.sh: NAT topologies in network namespaces, routed like the internet.
#
# Sourced by integration tests and benchmarks (after common.sh), never run. The one idea:
# between two NATs there is always a router namespace, never one shared bridge, because
# what makes hole punching fail or work (a crossing packet poisoning the far NAT's
# conntrack, a TTL-2 packet that opens one's own mapping and dies at the next router)
# only happens on a routed path. Every namespace is named lab<PID><role>, every process a
# test starts through lab_spawn is killed and every namespace deleted by lab_cleanup,
# which the caller runs from its EXIT trap (lab_new installs one when the caller has none).
#
#                      srv 192.0.2.1 (qpc-server)
#                              |
#   a --LAN A-- nata ===== rtr (the internet) ===== natb --LAN B-- b
#   10.1.0.2   10.1.0.1   198.51.100.1 | 203.0.113.1   10.2.0.1   10.2.0.2
#              (LAN A also has fd01::/64, LAN B fd02::/64: no global IPv6 routing)
#
# Topologies (lab_new TOPO):
#   home      both NATs MASQUERADE, INPUT and FORWARD dropped unless established/related
#             (a home router)
#   open      both NATs MASQUERADE with no filter at all (the "no input firewall" NAT)
#   symmetric both NATs MASQUERADE --random-fully (a new port per destination) with the
#             home router's filter
#   samenat   a (10.1.0.2) and b (10.1.0.3) both behind nata (home); no natb. The NAT
#             does not loop packets to its own public address back (no hairpin).
#   twolinks  as home, plus m with eth0 10.1.0.9 on LAN A and eth1 10.2.0.9 on LAN B (a
#             laptop or router on two links, not forwarding); m's default route is LAN A
#
# After lab_new: LAB_A_IP, LAB_B_IP (LAN addresses), LAB_M_IP1/LAB_M_IP2 (twolinks),
# LAB_SRV_IP, LAB_NATA_WAN, LAB_NATB_WAN, LAB_TOPO, and LAB_HOSTS (roles made).
# Usage:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
#   it_require_netns; lab_new home
#   lab_exec a ping -c1 192.0.2.1
#   lab_spawn srv "$T/srv.out" qpc-server --listen 192.0.2.1:7000 ...

LAB_P=lab$$
LAB_HOSTS=()
LAB_PIDS=()
LAB_SRV_IP=192.0.2.1
LAB_NATA_WAN=198.51.100.1
LAB_NATB_WAN=203.0.113.1

# lab_ns ROLE: the namespace name of a role (a, b, m, nata, natb, rtr, srv).
lab_ns() { echo "$LAB_P$1"; }

# lab_exec ROLE CMD...: run CMD inside ROLE's namespace.
lab_exec() {
    local r=$1
    shift
    ip netns exec "$LAB_P$r" "$@"
}

# lab_spawn ROLE OUT CMD...: start CMD in ROLE's namespace in the background, stdout to
# OUT and stderr to OUT with .out replaced by .err; its PID is in LAB_LAST_PID and is
# killed by lab_cleanup.
lab_spawn() {
    local r=$1 out=$2
    shift 2
    ip netns exec "$LAB_P$r" "$@" >"$out" 2>"${out%.out}.err" &
    LAB_LAST_PID=$!
    LAB_PIDS+=("$LAB_LAST_PID")
}

# lab_cleanup: kill what lab_spawn started, delete every namespace. Never fails.
lab_cleanup() {
    local p r
    for p in "${LAB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${LAB_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    LAB_PIDS=()
    for r in "${LAB_HOSTS[@]}"; do ip netns del "$LAB_P$r" 2>/dev/null || true; done
    LAB_HOSTS=()
    return 0
}

lab_add_ns() {
    LAB_HOSTS+=("$1")     # before it exists: cleanup deletes it even if making it fails
    ip netns add "$LAB_P$1"
    ip -n "$LAB_P$1" link set lo up
    # no IPv6 duplicate address detection: addresses are usable at once
    ip netns exec "$LAB_P$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# lab_wire A IFA ADDR_A B IFB ADDR_B: a veth pair between namespaces A and B, made
# straight inside them (no end ever sits in the host's namespace).
lab_wire() {
    ip link add "$2" netns "$LAB_P$1" type veth peer name "$5" netns "$LAB_P$4"
    ip -n "$LAB_P$1" addr add "$3" dev "$2"
    ip -n "$LAB_P$4" addr add "$6" dev "$5"
    ip -n "$LAB_P$1" link set "$2" up
    ip -n "$LAB_P$4" link set "$5" up
}

# lab_lan NAT CIDR4 CIDR6: a bridge br0 in NAT's namespace (the LAN), with those addresses.
lab_lan() {
    ip -n "$LAB_P$1" link add br0 type bridge
    ip -n "$LAB_P$1" addr add "$2" dev br0
    ip -n "$LAB_P$1" addr add "$3" dev br0 nodad
    ip -n "$LAB_P$1" link set br0 up
}

# lab_host ROLE NAT IF ADDR4 ADDR6 [GW4]: ROLE's interface IF on NAT's LAN (its peer end
# enslaved to br0), multicast on; with GW4 it is ROLE's default route.
lab_host() {
    local port="${1}${3}"
    ip link add "$port" netns "$LAB_P$2" type veth peer name "$3" netns "$LAB_P$1"
    ip -n "$LAB_P$2" link set "$port" master br0 up
    ip -n "$LAB_P$1" addr add "$4" dev "$3"
    ip -n "$LAB_P$1" addr add "$5" dev "$3" nodad
    ip -n "$LAB_P$1" link set "$3" multicast on up
    [ -z "${6:-}" ] || ip -n "$LAB_P$1" route add default via "$6"
}

# lab_nat NAT KIND: address translation on NAT's wan interface, and its filter.
lab_nat() {
    local rf=
    [ "$2" = symmetric ] && rf=--random-fully
    lab_exec "$1" sysctl -qw net.ipv4.ip_forward=1
    lab_exec "$1" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE $rf
    [ "$2" = open ] && return 0
    lab_exec "$1" iptables -A INPUT -i lo -j ACCEPT
    lab_exec "$1" iptables -A INPUT -i br0 -j ACCEPT
    lab_exec "$1" iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    lab_exec "$1" iptables -P INPUT DROP
    # br0 -> br0: hosts on one LAN (bridged frames meet this chain where br_netfilter is on)
    lab_exec "$1" iptables -A FORWARD -i br0 -o br0 -j ACCEPT
    lab_exec "$1" iptables -A FORWARD -i br0 -o wan -j ACCEPT
    lab_exec "$1" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    lab_exec "$1" iptables -P FORWARD DROP
}

# lab_site X N WANNET WANIP KIND: NAT natX on the router (its wan WANIP on WANNET.0/24,
# the router at .254), LAN N (10.N.0.0/24, fd0N::/64) behind it with host X at .2.
lab_site() {
    lab_add_ns "nat$1"
    lab_wire rtr "to$1" "$3.254/24" "nat$1" wan "$4/24"
    lab_exec "nat$1" ip route add default via "$3.254"
    lab_lan "nat$1" "10.$2.0.1/24" "fd0$2::1/64"
    lab_nat "nat$1" "$5"
    lab_add_ns "$1"
    lab_host "$1" "nat$1" eth0 "10.$2.0.2/24" "fd0$2::2/64" "10.$2.0.1"
}

# lab_new TOPO: builds TOPO (see the top of this file).
lab_new() {
    local kind=$1
    LAB_TOPO=$kind
    [ "$(trap -p EXIT)" ] || trap lab_cleanup EXIT
    case "$kind" in home|open|symmetric|samenat|twolinks) ;; *) echo "lab: unknown topology $kind" >&2; return 2;; esac
    [ "$kind" = twolinks ] && kind=home
    lab_add_ns rtr
    lab_add_ns srv
    lab_exec rtr sysctl -qw net.ipv4.ip_forward=1
    lab_wire rtr tos 192.0.2.254/24 srv eth0 $LAB_SRV_IP/24
    lab_exec srv ip route add default via 192.0.2.254
    lab_site a 1 198.51.100 $LAB_NATA_WAN "$kind"
    LAB_A_IP=10.1.0.2
    if [ "$LAB_TOPO" = samenat ]; then
        lab_add_ns b
        lab_host b nata eth0 10.1.0.3/24 fd01::3/64 10.1.0.1
        LAB_B_IP=10.1.0.3
        return 0
    fi
    lab_site b 2 203.0.113 $LAB_NATB_WAN "$kind"
    LAB_B_IP=10.2.0.2
    if [ "$LAB_TOPO" = twolinks ]; then
        lab_add_ns m
        lab_host m nata eth0 10.1.0.9/24 fd01::9/64 10.1.0.1
        lab_host m natb eth1 10.2.0.9/24 fd02::9/64
        LAB_M_IP1=10.1.0.9
        LAB_M_IP2=10.2.0.9
    fi
}

# lab_conntrack NAT: the NAT's UDP conntrack entries, one per line (for failure reports).
lab_conntrack() {
    lab_exec "$1" conntrack -L -p udp 2>/dev/null || true
}
