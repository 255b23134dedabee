#!/usr/bin/env bash
# pkg_files.sh: the packaging files agree with the programs (CTest: pkg_files).
#   - docs/man/qpc.1 and qpc-server.8 are what scripts/man-sync.py renders from --help;
#   - packaging/qpc-server.toml is valid, names every server key, and sets nothing but
#     data_dir, which is the unit's StateDirectory;
#   - the configured qpc-server.service reads that file, and systemd-analyze accepts it;
#   - debian/changelog and the OpenWrt Makefile carry the programs' version;
#   - the OpenWrt init script is valid sh and maps every server key from UCI
#     (tests/pkg_openwrt_uci.sh runs the mapping).
# Reads the source tree and the build only; installs nothing.
set -euo pipefail
BUILD=$(cd "${QPC_BUILD:?set QPC_BUILD to the build directory}" && pwd)
SRC=${QPC_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- man pages ----------------------------------------------------------------------------
python3 "$SRC/scripts/man-sync.py" --check "$BUILD" || fail "man pages drifted from --help"
echo "ok: man pages match --help"

# --- sample config --------------------------------------------------------------------------
CONF=$SRC/packaging/qpc-server.toml
"$BUILD/qpc-server" --help | sed -n 's/^  --\([a-z-]*\)=.*/\1/p' | tr - _ >"$T/keys"
[ "$(wc -l <"$T/keys")" -ge 20 ] || fail "could not read the keys from qpc-server --help"
env -i PATH="$PATH" HOME=/nonexistent "$BUILD/qpc-server" --config="$CONF" --check-config \
    >"$T/check.out" 2>"$T/check.err" || fail "sample config refused: $(cat "$T/check.err")"
while read -r key; do
    if [ "$key" = federation_peers ]; then
        grep -qE '^# \[federation_peers\]' "$CONF" || fail "sample config lacks [federation_peers]"
        continue
    fi
    grep -qE "^(# )?$key = " "$CONF" || fail "sample config does not name '$key'"
    line=$(grep -E "^$key = " "$T/check.out") || fail "--check-config does not print '$key'"
    if [ "$key" = data_dir ]; then
        [[ "$line" == 'data_dir = "/var/lib/quicprochat"  # file '* ]] || fail "data_dir: $line"
    else
        [[ "$line" == *'# default' ]] || fail "the sample config changes '$key': $line"
    fi
done <"$T/keys"
echo "ok: packaging/qpc-server.toml is valid, names all $(wc -l <"$T/keys") keys, sets only data_dir"

# --- systemd unit ---------------------------------------------------------------------------
UNIT=$BUILD/qpc-server.service
[ -f "$UNIT" ] || fail "no $UNIT (CMake makes it from packaging/qpc-server.service.in)"
grep -qx 'StateDirectory=quicprochat' "$UNIT" || fail "StateDirectory is not quicprochat"
grep -qx 'User=quicprochat' "$UNIT" || fail "User is not quicprochat"
grep -q '^u quicprochat ' "$SRC/packaging/quicprochat.sysusers" || fail "sysusers.d does not make quicprochat"
grep -qE '^ExecStart=/.*/qpc-server --config=/.*/quicprochat/qpc-server\.toml$' "$UNIT" ||
    fail "ExecStart: $(grep ExecStart "$UNIT")"
if command -v systemd-analyze >/dev/null; then
    # verify wants the binary at ExecStart's path: this build's, in a copy of the unit
    sed "s#^ExecStart=[^ ]*#ExecStart=$BUILD/qpc-server#" "$UNIT" >"$T/qpc-server.service"
    systemd-analyze verify --man=no "$T/qpc-server.service" >"$T/verify.out" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$T/verify.out")"
    echo "ok: qpc-server.service: systemd-analyze verify clean"
else
    echo "skip: systemd-analyze is not installed: the unit is not verified"
fi

# --- versions ---------------------------------------------------------------------------------
version=$("$BUILD/qpc" --version | awk '{print $NF}')
deb=$(sed -n '1s/^quicprochat (\([^)-]*\)\(-[^)]*\)\?).*/\1/p' "$SRC/debian/changelog")
[ "$deb" = "$version" ] || fail "debian/changelog says $deb, the programs $version"
owrt=$(sed -n 's/^PKG_VERSION:=//p' "$SRC/packaging/openwrt/quicprochat/Makefile")
[ "$owrt" = "$version" ] || fail "packaging/openwrt/quicprochat/Makefile says $owrt, the programs $version"
echo "ok: debian/changelog and the OpenWrt Makefile say $version"

# --- OpenWrt --------------------------------------------------------------------------------
INIT=$SRC/packaging/openwrt/quicprochat/files/qpc-server.init
sh -n "$INIT" || fail "qpc-server.init: sh syntax"
if command -v busybox >/dev/null; then busybox sh -n "$INIT" || fail "qpc-server.init: busybox sh syntax"; fi
if command -v shellcheck >/dev/null; then
    shellcheck -s sh "$INIT" || fail "qpc-server.init: shellcheck"
    echo "ok: qpc-server.init: sh -n and shellcheck clean"
else
    echo "ok: qpc-server.init: sh -n clean (shellcheck not installed: not run)"
fi
bash "$SRC/tests/pkg_openwrt_uci.sh" "$BUILD/qpc-server" || fail "UCI mapping"
echo "pkg_files: all passed"
