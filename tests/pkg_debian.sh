#!/usr/bin/env bash
# pkg_debian.sh: build the Debian packages from this tree and show on this machine that
#   1. dpkg-buildpackage -us -uc -b builds qpc and qpc-server, and lintian finds no error;
#   2. installing them puts the programs on PATH, the man pages, the conffile, the alert
#      rules and dashboard, the unit (enabled; `systemd-analyze verify` accepts it) and
#      the system user in place;
#   3. qpc-server runs as that user with the packaged config and its embedded defaults,
#      and a `qpc` from PATH sends a message through it to a second identity, which then
#      receives it;
#   4. removing keeps the node's data, purging deletes it.
# Then it purges the packages, deletes the user it made and everything else it made.
#
# Not a CTest test (not named it_*.sh): it installs packages system-wide. Run it as root
# on a Debian 12 machine that does not have qpc or qpc-server installed:
#   bash tests/pkg_debian.sh
#
# Where PID 1 is systemd, step 3 is `systemctl start qpc-server` with a runtime drop-in
# that only moves the service into the namespace below (this path has not run yet: the
# machines here have no systemd as PID 1). Where it is not (a container), the node is
# started the way the unit would start it: the unit's own
# ExecStart, User/Group, StateDirectory (/var/lib/quicprochat, mode 0700), UMask, no
# capabilities and no_new_privs, with / read-only but for the state directory
# (ProtectSystem=strict), a private /tmp and hidden homes; the script says which.
# Either way the node runs inside a network namespace with only loopback, so its mDNS
# announcement and ports stay on this machine and clash with nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "pkg_debian: needs root (it installs packages)" >&2; exit 77; }

T=$(mktemp -d /tmp/qpc-pkg.XXXXXX)
chmod 0755 "$T"   # the service user reads nothing here, but qpc runs as root in it
NS=qpcpkg$$
DROPIN=/run/systemd/system/qpc-server.service.d/pkg-test.conf
SERVER_PID=
USE_SYSTEMD=0
USER_EXISTED=0
INSTALLED=0
getent passwd quicprochat >/dev/null && USER_EXISTED=1

cleanup() {
    local rc=$?
    it_kill_all TERM $SERVER_PID
    if [ $USE_SYSTEMD -eq 1 ]; then
        systemctl stop qpc-server 2>/dev/null || true
        rm -f "$DROPIN"
        systemctl daemon-reload 2>/dev/null || true
    fi
    if [ $INSTALLED -eq 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq qpc qpc-server >/dev/null 2>&1 || true
    fi
    if [ $USER_EXISTED -eq 0 ] && getent passwd quicprochat >/dev/null; then
        userdel quicprochat 2>/dev/null || true
        groupdel quicprochat 2>/dev/null || true
    fi
    it_netns_del "$NS"
    [ $rc -eq 0 ] || it_dump_logs 40 "$T"/*.log "$T"/*.out "$T"/*.err
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

for p in qpc qpc-server; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed'; then
        fail "$p is already installed; this script would replace and purge it"
    fi
done
[ $USER_EXISTED -eq 0 ] || fail "a user 'quicprochat' exists already; this script would delete it"

# --- 1. build ------------------------------------------------------------------------------
bash "$SRC/scripts/install-deps.sh"
tools=(debhelper devscripts lintian dpkg-dev)
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A copy of the working tree (tracked and new files, without build trees), so the
# packages show what is here now and the build leaves nothing in the source tree.
mkdir "$T/src"
(cd "$SRC" && git ls-files -co --exclude-standard | grep -v '^build' | tar -cf - -T -) |
    tar -xf - -C "$T/src"
(cd "$T/src" && dpkg-checkbuilddeps) || fail "build dependencies missing (see above)"
t0=$(date +%s)
(cd "$T/src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$T/build.log" 2>&1 ||
    fail "dpkg-buildpackage failed"
echo "ok 1: dpkg-buildpackage -us -uc -b built $(cd "$T" && ls ./*.deb | grep -v dbgsym | xargs -n1 basename | paste -sd' ') in $(($(date +%s) - t0))s"
grep -E 'tests passed, .* failed out of' "$T/build.log" | sed 's/^/      unit tests in the build: /'

lintian --pedantic --display-info "$T"/quicprochat_*.changes >"$T/lintian.out" 2>&1 || true
grep -v '^running with root privileges' "$T/lintian.out" | sed 's/^/      lintian: /' || true
if grep -q '^E: ' "$T/lintian.out"; then fail "lintian reports errors"; fi
echo "ok 1: lintian: $(grep -c '^E: ' "$T/lintian.out" || true) errors, $(grep -c '^W: ' "$T/lintian.out" || true) warnings"

# --- 2. install ----------------------------------------------------------------------------
INSTALLED=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$T"/qpc_*_"$(dpkg --print-architecture)".deb \
    "$T"/qpc-server_*_"$(dpkg --print-architecture)".deb >"$T/install.log" 2>&1 || fail "install failed"
[ "$(command -v qpc)" = /usr/bin/qpc ] || fail "qpc is not on PATH"
[ -x /usr/sbin/qpc-server ] || fail "no /usr/sbin/qpc-server"
man -w qpc >/dev/null && man -w 8 qpc-server >/dev/null || fail "man pages not found by man"
[ -f /etc/quicprochat/qpc-server.toml ] || fail "no /etc/quicprochat/qpc-server.toml"
[ -f /usr/share/quicprochat/prometheus/qpc-alerts.yml ] && [ -f /usr/share/quicprochat/grafana/quicprochat.json ] ||
    fail "no alert rules or dashboard in /usr/share/quicprochat"
dpkg-query -W -f='${Conffiles}' qpc-server | grep -q /etc/quicprochat/qpc-server.toml ||
    fail "the config is not a conffile"
getent passwd quicprochat | grep -q ':/var/lib/quicprochat:/usr/sbin/nologin$' ||
    fail "no system user quicprochat: $(getent passwd quicprochat || true)"
[ "$(id -u quicprochat)" -lt 1000 ] || fail "quicprochat is not a system user"
[ -L /etc/systemd/system/multi-user.target.wants/qpc-server.service ] ||
    fail "qpc-server.service is not enabled"
systemd-analyze verify /lib/systemd/system/qpc-server.service >"$T/verify.out" 2>&1 ||
    fail "systemd-analyze verify: $(cat "$T/verify.out")"
exposure=$(systemd-analyze security --offline=yes /lib/systemd/system/qpc-server.service 2>/dev/null |
           sed -n 's/.*Overall exposure level for qpc-server.service: *\([0-9.]* [A-Z]*\).*/\1/p')
echo "ok 2: installed: /usr/bin/qpc, /usr/sbin/qpc-server, man pages, conffile, monitoring files, user quicprochat (uid $(id -u quicprochat)), unit enabled, systemd-analyze verify clean, exposure ${exposure:-?}"

# --- 3. the service runs, qpc sends through it --------------------------------------------
unit=/lib/systemd/system/qpc-server.service
unit_get() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
[ "$(unit_get User)" = quicprochat ] && [ "$(unit_get StateDirectory)" = quicprochat ] ||
    fail "the unit's User/StateDirectory changed; this script follows them"
exec_start=$(unit_get ExecStart)
ip netns add "$NS"
ip -n "$NS" link set lo up
if [ "$(ps -p 1 -o comm=)" = systemd ]; then
    # The packaged unit as it is, moved into the namespace by a runtime drop-in.
    echo "      PID 1 is systemd: systemctl start qpc-server (in namespace $NS via $DROPIN)"
    mkdir -p "$(dirname "$DROPIN")"
    printf '[Service]\nNetworkNamespacePath=/run/netns/%s\n' "$NS" >"$DROPIN"
    systemctl daemon-reload
    systemctl start qpc-server || fail "systemctl start qpc-server"
    USE_SYSTEMD=1
    for ((i = 0; i < 200; i++)); do
        journalctl -u qpc-server -o cat --no-pager >"$T/server.out" 2>/dev/null || true
        grep -q '^connect: ' "$T/server.out" && break
        sleep 0.1
    done
    cp "$T/server.out" "$T/server.err"
else
    echo "      PID 1 is $(ps -p 1 -o comm=), not systemd: starting the node as the unit would"
    # StateDirectory=quicprochat, StateDirectoryMode=0700: made and owned for the user.
    install -d -o quicprochat -g quicprochat -m 0700 /var/lib/quicprochat
    ip netns exec "$NS" unshare --mount --propagation private bash -c '
        set -e
        mount --bind /var/lib/quicprochat /var/lib/quicprochat   # StateDirectory: writable
        mount -t tmpfs -o mode=1777 tmpfs /tmp                    # PrivateTmp
        for d in /home /root /run/user; do                        # ProtectHome
            if [ -d $d ]; then mount -t tmpfs -o mode=0755 tmpfs $d; fi
        done
        mount -o remount,bind,ro /                                # ProtectSystem=strict
        cd /var/lib/quicprochat                                   # WorkingDirectory
        umask 0077                                                # UMask
        exec setpriv --reuid=quicprochat --regid=quicprochat --init-groups --no-new-privs \
            --bounding-set=-all --inh-caps=-all --ambient-caps=-all -- '"$exec_start"'
    ' >"$T/server.out" 2>"$T/server.err" &
    SERVER_PID=$!
    it_wait_for "$T/server.out" '^connect: ' 20 || fail "the node did not start"
fi
grep -q '^connect: ' "$T/server.out" || fail "the node did not start"
SPID=$(pgrep -u quicprochat -x qpc-server | head -n 1)
[ -n "$SPID" ] || fail "no qpc-server process of user quicprochat"
grep -q '^CapEff:[[:space:]]*0*$' "/proc/$SPID/status" && grep -q '^CapBnd:[[:space:]]*0*$' "/proc/$SPID/status" ||
    fail "the node has capabilities: $(grep ^Cap "/proc/$SPID/status")"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$SPID/status" || fail "no_new_privs is not set"
grep -q '^data: *\/var\/lib\/quicprochat$' "$T/server.out" || fail "data dir: $(grep ^data "$T/server.out")"
grep -q '^listening: *0\.0\.0\.0:7000 ' "$T/server.out" || fail "not the default listen address"
[ "$(stat -c '%U %a' /var/lib/quicprochat/identity.json)" = "quicprochat 600" ] ||
    fail "identity.json: $(stat -c '%U %a' /var/lib/quicprochat/identity.json)"
[ -f /var/lib/quicprochat/queue.db ] || fail "no queue.db in the state directory"
PEER=$(sed -n 's/^peer id: *//p' "$T/server.out")
echo "ok 3: qpc-server runs as quicprochat (pid $SPID, no capabilities, no_new_privs), peer id ${PEER:0:16}..., data in /var/lib/quicprochat"

SADDR=127.0.0.1:7000
Q=(--listen 127.0.0.1:0 --no-mdns --direct-timeout-ms 600 --server "$SADDR")
inns() { ip netns exec "$NS" "$@"; }
BOB=$(inns qpc --data-dir "$T/bob" identity)
rc=0
inns timeout 60 qpc --data-dir "$T/alice" "${Q[@]}" send "$BOB" "hello through the packaged node" \
    >"$T/send.out" 2>"$T/send.err" || rc=$?
[ $rc -eq 3 ] || fail "send through the node: exit $rc, want 3 (held by the server)"
grep -q "held .* by $SADDR" "$T/send.out" || fail "no 'held by the server' line: $(cat "$T/send.out")"
inns timeout 60 qpc --data-dir "$T/bob" "${Q[@]}" listen --json --count 1 --timeout 30 \
    >"$T/listen.out" 2>"$T/listen.err" || fail "bob did not receive"
grep -q '"text":"hello through the packaged node","path":"server"' "$T/listen.out" ||
    fail "bob: $(cat "$T/listen.out")"
echo "ok 3: /usr/bin/qpc sent through the node; the second identity received it (path server)"

if [ $USE_SYSTEMD -eq 1 ]; then
    systemctl stop qpc-server
    [ "$(systemctl show -p ExecMainStatus --value qpc-server)" = 0 ] ||
        fail "the node exited with $(systemctl show -p ExecMainStatus --value qpc-server) on stop"
    journalctl -u qpc-server -o cat --no-pager >"$T/server.err" 2>/dev/null || true
else
    kill -TERM "$SPID"
    rc=0
    timeout 20 tail --pid="$SPID" -f /dev/null || true
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    [ $rc -eq 0 ] || fail "the node exited with $rc after SIGTERM"
fi
grep -q 'stopped' "$T/server.err" || fail "no 'stopped' in the node's log"
echo "ok 3: SIGTERM stopped the node (exit 0)"

# --- 4. remove keeps the data, purge deletes it ---------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq qpc qpc-server >"$T/remove.log" 2>&1 || fail "remove failed"
[ ! -e /usr/sbin/qpc-server ] && [ ! -e /usr/bin/qpc ] || fail "programs left after remove"
[ -f /var/lib/quicprochat/identity.json ] && [ -f /var/lib/quicprochat/queue.db ] ||
    fail "remove deleted the node's data"
[ -f /etc/quicprochat/qpc-server.toml ] || fail "remove deleted the conffile"
dpkg-query -W -f='${db:Status-Abbrev}' qpc-server | grep -q '^rc' || fail "qpc-server is not in state rc"
echo "ok 4: remove: programs gone; identity, queue and config kept"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq qpc qpc-server >"$T/purge.log" 2>&1 || fail "purge failed"
INSTALLED=0
[ ! -e /var/lib/quicprochat ] || fail "purge left /var/lib/quicprochat"
[ ! -e /etc/quicprochat ] || fail "purge left /etc/quicprochat"
[ ! -e /etc/systemd/system/multi-user.target.wants/qpc-server.service ] || fail "purge left the enable link"
for p in qpc qpc-server; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in ''|un*) ;; *) fail "$p is still in dpkg state '$st' after purge" ;; esac
done
echo "ok 4: purge: data, config and enable link gone"
echo "pkg_debian: all passed"
