#!/usr/bin/env bash
# it_mdns_netns.sh: mDNS between two network namespaces joined by a veth pair.
#
# Namespace A runs mdns_announce (qpc_mdns_announce with server=10.201.0.1:7000,
# domain=nodeA.mesh.local). In namespace B, Debian's python3-zeroconf (an independent
# mDNS implementation) must find the instance and its three TXT records, and so must
# our own mdns_browse. Then the announcer is stopped with SIGTERM and mdns_browse must
# see the instance go away (goodbye packets). Last, a node in B that claims a host name
# and an instance name already held in A must rename both. And a node started before its
# interface has an address announces once the address appears. Traffic stays inside the two
# namespaces.
#
# Needs root (ip netns). Env: QPC_BUILD (build dir with the tools).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
PY=/usr/bin/python3          # Debian's python with python3-zeroconf, not a pyenv one
NS_A=qpc-mdns-a-$$
NS_B=qpc-mdns-b-$$
VETH_A=qmA$$                 # interface names are limited to 15 characters
VETH_B=qmB$$
TMP=$(mktemp -d)
ANNOUNCER_PID=
BROWSER_PID=
TWIN_A_PID=
TWIN_B_PID=
LATE_PID=

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    it_kill_all TERM $ANNOUNCER_PID $BROWSER_PID $TWIN_A_PID $TWIN_B_PID $LATE_PID
    it_netns_del "$NS_A" "$NS_B"
    [ $rc -eq 0 ] || it_dump_logs all "$TMP"/*
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

it_require_netns
[ -x "$BUILD/mdns_announce" ] && [ -x "$BUILD/mdns_browse" ] || fail "tools not built in $BUILD"
$PY -c 'import zeroconf' || fail "python3-zeroconf is not installed for $PY"

# --- two namespaces, one link ------------------------------------------------------
it_veth_pair "$NS_A" "$NS_B" "$VETH_A" "$VETH_B" 10.201.0.1/24 10.201.0.2/24

# --- announcer in A ------------------------------------------------------------------
ip netns exec "$NS_A" "$BUILD/mdns_announce" -i "$VETH_A" -H "qpc-a$$" -n nodeA -p 7000 \
    -s 10.201.0.1:7000 -d nodeA.mesh.local >"$TMP/announce.out" 2>"$TMP/announce.err" &
ANNOUNCER_PID=$!
it_wait_for "$TMP/announce.out" "^established nodeA on qpc-a$$\\.local$" 20 || fail "announcer did not establish nodeA"
echo "ok: announcer established in $NS_A"

# --- (1) python3-zeroconf in B -----------------------------------------------------
cat >"$TMP/zc_browse.py" <<'PYEOF'
import sys, threading
from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

TYPE = "_quicprochat._udp.local."
done = threading.Event()

def on_change(zeroconf, service_type, name, state_change):
    if state_change is not ServiceStateChange.Added:
        return
    info = zeroconf.get_service_info(service_type, name, timeout=5000)
    if info is None:
        return
    print("name", name)
    print("port", info.port)
    for addr in info.parsed_addresses():
        print("address", addr)
    for key, value in info.properties.items():
        print("TXT %s=%s" % (key.decode(), (value or b"").decode()))
    sys.stdout.flush()
    done.set()

zc = Zeroconf()
try:
    ServiceBrowser(zc, TYPE, handlers=[on_change])
    found = done.wait(20)
finally:
    zc.close()
sys.exit(0 if found else 1)
PYEOF
timeout 40 ip netns exec "$NS_B" $PY "$TMP/zc_browse.py" >"$TMP/zeroconf.out" 2>"$TMP/zeroconf.err" \
    || fail "python3-zeroconf did not resolve the service"
for want in '^name nodeA\._quicprochat\._udp\.local\.$' '^port 7000$' '^address 10\.201\.0\.1$' \
            '^TXT ver=1$' '^TXT server=10\.201\.0\.1:7000$' '^TXT domain=nodeA\.mesh\.local$'; do
    grep -qE "$want" "$TMP/zeroconf.out" || fail "python3-zeroconf output lacks /$want/"
done
echo "ok: python3-zeroconf resolved nodeA with ver, server and domain"

# --- (2) our own browser in B, then the goodbye --------------------------------------
timeout 60 ip netns exec "$NS_B" "$BUILD/mdns_browse" -i "$VETH_B" -H "qpc-b$$" -t 45 -r nodeA \
    >"$TMP/browse.out" 2>"$TMP/browse.err" &
BROWSER_PID=$!
it_wait_for "$TMP/browse.out" '^\+ name=nodeA ' 20 || fail "mdns_browse did not find nodeA"
line=$(grep -E '^\+ name=nodeA ' "$TMP/browse.out" | head -1)
for want in "address=10.201.0.1 " "port=7000 " "ver=1 " "server=10.201.0.1:7000 " \
            "domain=nodeA.mesh.local" "host=qpc-a$$.local "; do
    case "$line" in *"$want"*) ;; *) fail "mdns_browse line lacks '$want': $line" ;; esac
done
echo "ok: mdns_browse resolved nodeA: $line"

kill -TERM "$ANNOUNCER_PID"
rc=0; wait "$ANNOUNCER_PID" || rc=$?
ANNOUNCER_PID=
[ $rc -eq 0 ] || fail "announcer exited with $rc after SIGTERM"
grep -q '^withdrawn$' "$TMP/announce.out" || fail "announcer did not report withdrawal"

rc=0; wait "$BROWSER_PID" || rc=$?
BROWSER_PID=
[ $rc -eq 0 ] || fail "mdns_browse did not see nodeA leave (exit $rc)"
grep -qE '^- name=nodeA ' "$TMP/browse.out" || fail "no removal line for nodeA"
echo "ok: mdns_browse saw nodeA withdrawn"

# --- (3) names taken on the link are renamed -----------------------------------------
ip netns exec "$NS_A" "$BUILD/mdns_announce" -i "$VETH_A" -H "qpc-c$$" -n twin -p 7000 \
    -s 10.201.0.1:7000 >"$TMP/twin_a.out" 2>"$TMP/twin_a.err" &
TWIN_A_PID=$!
it_wait_for "$TMP/twin_a.out" "^established twin on qpc-c$$\\.local$" 20 || fail "twin A did not establish"
ip netns exec "$NS_B" "$BUILD/mdns_announce" -i "$VETH_B" -H "qpc-c$$" -n twin -p 7000 \
    -s 10.201.0.2:7000 >"$TMP/twin_b.out" 2>"$TMP/twin_b.err" &
TWIN_B_PID=$!
it_wait_for "$TMP/twin_b.out" "^established " 30 || fail "twin B did not establish"
grep -qx "established twin #2 on qpc-c$$-2.local" "$TMP/twin_b.out" \
    || fail "twin B did not rename host and instance: $(cat "$TMP/twin_b.out")"
[ "$(cat "$TMP/twin_a.out")" = "established twin on qpc-c$$.local" ] \
    || fail "twin A, the first owner, changed its names: $(cat "$TMP/twin_a.out")"
echo "ok: a second node renamed itself to 'twin #2' on qpc-c$$-2.local"

# --- (4) an address that appears later is published ------------------------------------
VETH_C=qmC$$
VETH_D=qmD$$
ip link add "$VETH_C" type veth peer name "$VETH_D"
ip link set "$VETH_C" netns "$NS_A"
ip link set "$VETH_D" netns "$NS_B"
ip -n "$NS_B" addr add 10.201.1.2/24 dev "$VETH_D"
ip -n "$NS_A" link set "$VETH_C" multicast on up
ip -n "$NS_B" link set "$VETH_D" multicast on up
ip netns exec "$NS_A" "$BUILD/mdns_announce" -i "$VETH_C" -H "qpc-l$$" -n late -p 7000 \
    -s 10.201.1.1:7000 >"$TMP/late.out" 2>"$TMP/late.err" &
LATE_PID=$!
sleep 2
! grep -q '^established' "$TMP/late.out" || fail "announced a host name with no address"
ip -n "$NS_A" addr add 10.201.1.1/24 dev "$VETH_C"
it_wait_for "$TMP/late.out" "^established late on qpc-l$$\\.local$" 30 \
    || fail "node did not announce after its address appeared"
timeout 40 ip netns exec "$NS_B" "$BUILD/mdns_browse" -i "$VETH_D" -t 30 -r never-removed \
    >"$TMP/late_browse.out" 2>"$TMP/late_browse.err" &
BROWSER_PID=$!
it_wait_for "$TMP/late_browse.out" '^\+ name=late host=qpc-l[0-9]+\.local address=10\.201\.1\.1 ' 20 \
    || fail "browser did not resolve the late address"
echo "ok: a node announced once its interface got an address"
echo "PASS"
