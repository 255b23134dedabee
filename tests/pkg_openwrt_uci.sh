#!/usr/bin/env bash
# pkg_openwrt_uci.sh QPC_SERVER: the OpenWrt init script maps UCI onto the node's settings.
# Run by tests/pkg_files.sh (CTest pkg_files) with the built qpc-server.
#
# There is no OpenWrt here, so the UCI side is a small copy of the semantics of
# OpenWrt's /lib/functions.sh: config_load sources the UCI file with config/option/
# list defined (what uci_load does with `uci export` output, whose syntax is the file's),
# and config_get, config_get_bool, config_foreach and config_list_foreach read the
# CONFIG_<section>_<option> variables those leave, as OpenWrt's do. procd_* calls are
# recorded. Then the TOML the init script writes is checked by qpc-server itself
# (--check-config): each UCI option must arrive as the value and origin expected.
set -euo pipefail
SRV=${1:?usage: pkg_openwrt_uci.sh QPC_SERVER}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=$SRC/packaging/openwrt/quicprochat
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- the UCI and procd side (see the header) -------------------------------------------
CONFIG_SECTIONS=""
CONFIG_NUM_SECTIONS=0
config() {
    CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
    CONFIG_SECTION=${2:-cfg$CONFIG_NUM_SECTIONS}
    CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
    config_set "$CONFIG_SECTION" TYPE "$1"
}
option() { local name=$1; shift; config_set "$CONFIG_SECTION" "$name" "$*"; }
list() {
    local name=$1 len; shift
    config_get len "$CONFIG_SECTION" "${name}_LENGTH" 0
    len=$((len + 1))
    config_set "$CONFIG_SECTION" "${name}_ITEM$len" "$*"
    config_set "$CONFIG_SECTION" "${name}_LENGTH" "$len"
}
package() { :; }
config_set() { eval "CONFIG_${1}_${2}=\$3"; }
config_get() {
    if [ $# -ge 3 ]; then eval "$1=\${CONFIG_${2}_${3}:-\${4:-}}"; else eval "echo \"\${CONFIG_${1}_${2}:-}\""; fi
}
config_get_bool() {
    local v
    config_get v "$2" "$3" "${4:-}"
    case "$v" in
        1|on|true|yes|enabled) v=1 ;;
        0|off|false|no|disabled) v=0 ;;
        *) v=${4:-} ;;
    esac
    eval "$1=\$v"
}
config_foreach() {
    local fn=$1 type=${2:-} s t
    for s in $CONFIG_SECTIONS; do
        config_get t "$s" TYPE
        [ -n "$type" ] && [ "$t" != "$type" ] && continue
        "$fn" "$s"
    done
}
config_list_foreach() {
    local s=$1 o=$2 fn=$3 len c=1 v
    config_get len "$s" "${o}_LENGTH"
    [ -n "$len" ] || return 0
    while [ $c -le "$len" ]; do config_get v "$s" "${o}_ITEM$c"; "$fn" "$v"; c=$((c + 1)); done
}
uci_reset() {
    local v
    for v in $(compgen -v CONFIG_); do unset "$v"; done
    CONFIG_SECTIONS=""; CONFIG_NUM_SECTIONS=0
}
config_load() { uci_reset; . "$UCI_DIR/$1"; }
procd_open_instance() { PROCD=""; }
procd_set_param() { PROCD="$PROCD|$*"; }
procd_close_instance() { echo "$PROCD" >"$T/procd"; }
procd_add_reload_trigger() { echo "$*" >"$T/trigger"; }
chown() { echo "chown $*" >>"$T/chown"; }

# shellcheck source=../packaging/openwrt/quicprochat/files/qpc-server.init
. "$PKG/files/qpc-server.init"

# toml_of UCI_FILE: the TOML the init script writes for it, in $T/out.toml.
toml_of() {
    UCI_DIR=$T/uci
    mkdir -p "$UCI_DIR"
    cp "$1" "$UCI_DIR/quicprochat"
    config_load quicprochat
    qpc_write_toml main >"$T/out.toml"
}
check() {   # check: --check-config of $T/out.toml into $T/check.out
    env -i PATH="$PATH" HOME=/nonexistent "$SRV" --config="$T/out.toml" --check-config \
        >"$T/check.out" 2>"$T/check.err" || fail "qpc-server refuses the TOML: $(cat "$T/check.err")
$(cat "$T/out.toml")"
}
expect() {   # expect KEY VALUE: the effective value, from the file
    grep -qxF "$1 = $2  # file $T/out.toml:$(grep -n "^$1 = " "$T/out.toml" | cut -d: -f1)" "$T/check.out" ||
        fail "$1: want $2 from the file, got: $(grep "^$1 = " "$T/check.out")"
}

# --- every key is mapped, and named in the shipped config ------------------------------------
"$SRV" --help | sed -n 's/^  --\([a-z-]*\)=.*/\1/p' | tr - _ | sort >"$T/keys"
for k in $QPC_STRING_KEYS $QPC_BOOL_KEYS $QPC_INT_KEYS $QPC_LIST_KEYS federation_peers; do echo "$k"; done |
    sort >"$T/mapped"
diff -u "$T/keys" "$T/mapped" || fail "the init script's key lists differ from qpc-server --help"
while read -r k; do
    [ "$k" = federation_peers ] && k=federation_peer
    grep -qE "^[[:space:]]*#?[[:space:]]*(option|list|config) $k\b" "$PKG/files/quicprochat.config" ||
        fail "files/quicprochat.config does not mention $k"
done <"$T/keys"
echo "ok: the init script maps all $(wc -l <"$T/keys") keys of qpc-server --help; the UCI file names each"

# --- the shipped config: data_dir, the rest default -----------------------------------------
toml_of "$PKG/files/quicprochat.config"
check
expect data_dir '"/etc/quicprochat"'
[ "$(grep -c '# default$' "$T/check.out")" -eq "$(($(wc -l <"$T/keys") - 1))" ] ||
    fail "the shipped UCI config changes more than data_dir: $(grep -v '# default$' "$T/check.out")"
echo "ok: the shipped /etc/config/quicprochat gives data_dir /etc/quicprochat and every default"

# --- every kind of option --------------------------------------------------------------------
cat >"$T/full.uci" <<'EOF'
package quicprochat

config server 'main'
	option enabled '1'
	option listen '[::]:7100'
	option data_dir '/srv/q "odd" \dir'
	option log_level 'debug'
	option mdns_enabled 'yes'
	list mdns_interfaces 'br-lan'
	list mdns_interfaces 'bat0'
	option federation_enabled 'no'
	# federation off: on, --check-config would open the CA files named below (absent here)
	option federation_domain 'node1.mesh.local'
	option federation_listen '0.0.0.0:7101'
	option federation_trust 'ca'
	option federation_cert '/etc/quicprochat/fed.der'
	option federation_key '/etc/quicprochat/fed.key.der'
	option federation_ca '/etc/quicprochat/ca.der'
	option metrics '0'
	option metrics_listen '127.0.0.1:9999'
	option max_frame_size '2_097_152'
	option max_envelope_size '65536'
	option queue_quota '500'
	option queue_max_bytes '1048576000'
	option default_ttl '3600'
	option max_ttl '7200'
	option relay_enabled 'off'
	option relay_rate_limit '100'
	option idle_timeout_ms '60000'
	option max_client_connections '500'
	option max_connections_per_client '4'
	option quic_retry_threshold '0'

config federation_peer
	option domain 'node2.mesh.local'
	option address '10.0.0.2:7001'

config federation_peer 'third'
	option domain 'node3.mesh.local'
	option address '[fd00::3]:7001'
EOF
toml_of "$T/full.uci"
check
expect listen '"[::]:7100"'
expect data_dir '"/srv/q \"odd\" \\dir"'
expect log_level '"debug"'
expect mdns_enabled true
expect mdns_interfaces '["br-lan", "bat0"]'
expect federation_enabled false
expect federation_domain '"node1.mesh.local"'
expect federation_listen '"0.0.0.0:7101"'
expect federation_cert '"/etc/quicprochat/fed.der"'
expect metrics_listen '""'
expect max_frame_size 2097152
expect max_envelope_size 65536
expect queue_quota 500
expect queue_max_bytes 1048576000
expect default_ttl 3600
expect max_ttl 7200
expect relay_enabled false
expect relay_rate_limit 100
expect idle_timeout_ms 60000
expect max_client_connections 500
expect max_connections_per_client 4
expect quic_retry_threshold 0
grep -q '^\[federation_peers\]  # file' "$T/check.out" &&
    grep -qx '"node2.mesh.local" = "10.0.0.2:7001"' "$T/check.out" &&
    grep -qx '"node3.mesh.local" = "\[fd00::3\]:7001"' "$T/check.out" ||
    fail "federation peers: $(sed -n '/federation_peers/,$p' "$T/check.out")"
# peers needs federation on, which this file keeps off: it is checked on its own below
[ "$(grep -v '^peers = ' "$T/check.out" | grep -c '# default$')" -eq 0 ] || fail "options not carried: $(grep '# default$' "$T/check.out")"
echo "ok: every option (strings with quotes, lists, booleans in UCI spellings, numbers, metrics 0, two federation peers) reaches the node"

# an option instead of a list: its words are the list
printf "config server 'main'\n\toption mdns_interfaces 'bat0 br-mesh'\n" >"$T/opt.uci"
toml_of "$T/opt.uci"
check
expect mdns_interfaces '["bat0", "br-mesh"]'
echo "ok: option mdns_interfaces 'bat0 br-mesh' is the list of both"

printf "config server 'main'\n\toption federation_enabled '1'\n\tlist peers '10.0.0.2:7001'\n\tlist peers '[fd00::3]:7001'\n" >"$T/peers.uci"
toml_of "$T/peers.uci"
check
expect peers '["10.0.0.2:7001", "[fd00::3]:7001"]'
echo "ok: list peers (static peers, with federation on) reaches the node"

# --- what cannot be a value is refused by the script, with a message ------------------------------
refused() {   # refused UCI-TEXT MESSAGE-PATTERN
    printf '%b' "$1" >"$T/bad.uci"
    if toml_of "$T/bad.uci" 2>"$T/bad.err"; then fail "accepted: $1"; fi
    grep -q "$2" "$T/bad.err" || fail "message for '$1': $(cat "$T/bad.err")"
}
refused "config server 'main'\n\toption queue_quota 'many'\n" "queue_quota 'many' is not a whole number"
refused "config server 'main'\n\toption relay_enabled 'maybe'\n" "relay_enabled 'maybe' is not a boolean"
refused "config server 'main'\nconfig federation_peer\n\toption domain 'x.mesh'\n" "needs both domain and address"
echo "ok: a non-number, a non-boolean and a half federation_peer are refused by name"

# --- start_service: procd gets the node, its user, respawn and the files to watch -------------------
printf "config server 'main'\n\toption data_dir '%s/data'\n" "$T" >"$T/start.uci"
cp "$T/start.uci" "$T/uci/quicprochat"
# shellcheck disable=SC2034 # read by start_service
CONF_DIR=$T/etc CONF=$T/etc/qpc-server.toml
start_service
service_triggers
procd=$(cat "$T/procd")
[[ "$procd" == *"|command /usr/sbin/qpc-server --config=$T/etc/qpc-server.toml"* ]] || fail "procd command: $procd"
[[ "$procd" == *"|user quicprochat"* && "$procd" == *"|no_new_privs 1"* ]] || fail "procd user: $procd"
[[ "$procd" == *"|respawn 3600 5 5"* ]] || fail "procd respawn: $procd"
[[ "$procd" == *"|file /etc/config/quicprochat"* ]] || fail "procd file: $procd"
[ "$(cat "$T/trigger")" = quicprochat ] || fail "reload trigger: $(cat "$T/trigger")"
[ -d "$T/data" ] && [ "$(stat -c %a "$T/data")" = 700 ] || fail "data dir not made 0700"
grep -qx "chown quicprochat:quicprochat $T/data" "$T/chown" || fail "data dir not given to quicprochat"
cp "$T/etc/qpc-server.toml" "$T/out.toml"
check
expect data_dir "\"$T/data\""
printf "config server 'main'\n\toption enabled '0'\n" >"$T/uci/quicprochat"
rm -f "$T/procd"
start_service
[ ! -e "$T/procd" ] || fail "enabled '0' still started the node"
echo "ok: start_service gives procd the node with its TOML, user quicprochat, no_new_privs, respawn; enabled '0' starts nothing"
