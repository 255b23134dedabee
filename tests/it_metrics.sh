#!/usr/bin/env bash
# it_metrics.sh: what an admin alerts on, checked with Prometheus' own tool.
#
#   1. promtool (scripts/promtool.sh: on PATH, or taken out of Debian's prometheus
#      package into the build directory) accepts packaging/prometheus/qpc-alerts.yml
#      (check rules), passes its unit tests (test rules: when each alert fires and its
#      text) and accepts the example prometheus.yml (check config).
#   2. A live qpc-server, metrics on loopback, holding one message for a local recipient
#      who does not fetch and one envelope in the outbox for a federation peer that is
#      down. In a private network namespace (root) mDNS runs on its lo, where one other
#      node and one P2P peer announce themselves; without one mDNS is off and its
#      figures are only checked to be 0. Its /metrics passes `promtool check metrics`
#      without a single complaint (HELP, TYPE, names, units), and the values say what
#      happened: the ages of the oldest queued and outbox messages grow and fall to 0
#      when the recipient fetches, the peer's link is down and no federation connection
#      is counted, mDNS counts the node and the peer, build info names the version
#      --version prints, uptime grows.
#   3. packaging/grafana/quicprochat.json parses and has what Grafana needs, and every
#      metric the dashboard or the alert rules name is exported by the live node or is
#      listed in EXPECTED (metrics of lanes not merged yet; an entry the node exports is
#      an error, so the list shrinks as they land).
# Exit 77 (skipped) when no promtool can be had (offline, no apt).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BUILD=${QPC_BUILD:?set QPC_BUILD to the build directory}
SRC=${QPC_SRC:?set QPC_SRC to the source directory}
SRV=$BUILD/qpc-server
TC=$BUILD/qpc_testclient
RULES=$SRC/packaging/prometheus/qpc-alerts.yml
DASH=$SRC/packaging/grafana/quicprochat.json

# Named by the dashboard or the rules, exported by a lane that is not merged yet.
EXPECTED=(
    qpc_punch_requests_total                        # PATHS
    qpc_punch_refused_total                         # PATHS
    qpc_punch_direct_total                          # PATHS
    qpc_punch_time_to_direct_seconds                # PATHS (histogram)
    qpc_relayed_bytes_by_client_total               # PATHS
)

TMP=$(mktemp -d)
NS=
PIDS=()
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
    local rc=$?
    it_kill_all TERM "${PIDS[@]}"
    [ $rc -eq 0 ] || it_dump_logs 30 "$TMP"/*.err "$TMP"/*.out "$TMP/promtool.txt"
    [ -n "$NS" ] && it_netns_del "$NS"
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

PROMTOOL=$(bash "$SRC/scripts/promtool.sh" "$BUILD/tools" 2>"$TMP/promtool.err") ||
    it_skip "no promtool: $(cat "$TMP/promtool.err")"
echo "promtool: $PROMTOOL ($("$PROMTOOL" --version 2>&1 | head -n 1))"

# --- 1. the rules ---------------------------------------------------------------------------
"$PROMTOOL" check rules "$RULES" >"$TMP/promtool.txt" 2>&1 || fail "promtool check rules: $(cat "$TMP/promtool.txt")"
grep -q "SUCCESS" "$TMP/promtool.txt" || fail "promtool check rules said: $(cat "$TMP/promtool.txt")"
(cd "$SRC/packaging/prometheus" && "$PROMTOOL" test rules qpc-alerts.test.yml) >"$TMP/promtool.txt" 2>&1 ||
    fail "promtool test rules: $(cat "$TMP/promtool.txt")"
(cd "$SRC/packaging/prometheus" && "$PROMTOOL" check config prometheus.yml) >"$TMP/promtool.txt" 2>&1 ||
    fail "promtool check config: $(cat "$TMP/promtool.txt")"
echo "ok 1 rules: check rules, test rules, check config"

# --- 2. a live node -------------------------------------------------------------------------
RUN=()
if [ "$(id -u)" -eq 0 ] && ip netns add "qpcm$$" 2>/dev/null; then
    NS=qpcm$$
    ip -n "$NS" link set lo up
    RUN=(ip netns exec "$NS")
    MDNS=(--mdns-enabled=true --mdns-interfaces=lo)
else
    echo "note: no network namespace here: mDNS off, its figures only checked to be 0"
    MDNS=(--mdns-enabled=false)
fi
BASE=$(it_port_base 4)
P=$BASE; F=$((BASE + 1)); M=$((BASE + 2)); DOWN=$((BASE + 3))
it_make_pki "$TMP/pki" || fail "cannot make the test PKI"

HOME=$TMP "${RUN[@]}" "$SRV" --data-dir="$TMP/a" --listen=127.0.0.1:$P --metrics-listen=127.0.0.1:$M \
    "${MDNS[@]}" --federation-enabled --federation-domain=a.mesh.test \
    --federation-listen=127.0.0.1:$F --federation-cert="$TMP/pki/node-a.der" \
    --federation-key="$TMP/pki/node-a.key.der" --federation-ca="$TMP/pki/ca.der" \
    --federation-peers="b.mesh.test=127.0.0.1:$DOWN" >"$TMP/node.out" 2>"$TMP/node.err" &
PIDS+=($!)
it_wait_for "$TMP/node.out" '^connect: ' 20 || fail "the node did not start"

scrape() { "${RUN[@]}" curl -sf "http://127.0.0.1:$M/metrics"; }
# value NAME_WITH_LABELS [FILE]: the sample's value in FILE (default: a fresh scrape).
value() {
    if [ $# -gt 1 ]; then awk -v m="$1" '$1 == m {print $2}' "$2"; else scrape | awk -v m="$1" '$1 == m {print $2}'; fi
}
# wait_value NAME AWK_CONDITION SECONDS: 0 once the sample satisfies the condition on v.
wait_value() {
    local i v
    for ((i = 0; i < $3 * 10; i++)); do
        v=$(value "$1")
        [ -n "$v" ] && awk -v v="$v" "BEGIN { exit !($2) }" && return 0
        sleep 0.1
    done
    return 1
}

if [ -n "$NS" ]; then
    "${RUN[@]}" "$BUILD/mdns_announce" -i lo -H "qpc-n$$" -n othernode -p 7000 -s 127.0.0.1:7000 \
        -d other.mesh.test >"$TMP/announce-node.out" 2>"$TMP/announce-node.err" &
    PIDS+=($!)
    "${RUN[@]}" "$BUILD/mdns_announce" -i lo -H "qpc-p$$" -n "peer-$$" -p 41000 -t _quicprochat-p2p._udp \
        -x ver=1 -x peer="$(printf '%064d' 7)" -x p2p=127.0.0.1:41000 \
        >"$TMP/announce-peer.out" 2>"$TMP/announce-peer.err" &
    PIDS+=($!)
fi

CAROL=$("$TC" -i "$TMP/carol.json" id)   # Carol never fetches until step 4
BOB=$("$TC" -i "$TMP/bob.json" id)
"${RUN[@]}" timeout 30 "$TC" -S 127.0.0.1:$P -i "$TMP/alice.json" send "$CAROL" 1 >"$TMP/send-local.out" \
    || fail "send to a local recipient"
grep -q "summary sent=1 OK=1$" "$TMP/send-local.out" || fail "want OK: $(tail -n 1 "$TMP/send-local.out")"
"${RUN[@]}" timeout 30 "$TC" -S 127.0.0.1:$P -i "$TMP/alice.json" send "$BOB@b.mesh.test" 1 >"$TMP/send-remote.out" \
    || fail "send to the peer domain"
grep -q "summary sent=1 DEFERRED=1$" "$TMP/send-remote.out" || fail "want DEFERRED: $(tail -n 1 "$TMP/send-remote.out")"

wait_value qpc_queue_oldest_message_age_seconds 'v >= 2' 20 || fail "queue age did not reach 2 s: $(value qpc_queue_oldest_message_age_seconds)"
wait_value qpc_outbox_oldest_message_age_seconds 'v >= 2' 20 || fail "outbox age did not reach 2 s: $(value qpc_outbox_oldest_message_age_seconds)"
if [ -n "$NS" ]; then
    wait_value qpc_mdns_established 'v == 1' 20 || fail "mDNS not established: $(value qpc_mdns_established)"
    wait_value qpc_mdns_nodes 'v == 1' 20 || fail "qpc_mdns_nodes is $(value qpc_mdns_nodes), want 1"
    wait_value qpc_mdns_peers 'v == 1' 20 || fail "qpc_mdns_peers is $(value qpc_mdns_peers), want 1"
fi
scrape >"$TMP/m1.txt" || fail "metrics endpoint"
sleep 1.1
scrape >"$TMP/m2.txt" || fail "metrics endpoint"

# promtool check metrics prints nothing and exits 0 when every family is clean.
"$PROMTOOL" check metrics <"$TMP/m2.txt" >"$TMP/promtool.txt" 2>&1 || fail "promtool check metrics: $(cat "$TMP/promtool.txt")"
[ ! -s "$TMP/promtool.txt" ] || fail "promtool check metrics complained: $(cat "$TMP/promtool.txt")"
echo "ok 2 promtool check metrics: $(grep -c '^# TYPE ' "$TMP/m2.txt") families, no complaint"

# Every family has HELP and TYPE, every sample belongs to a declared family (promtool
# checks the first; this checks the pair by name, and no sample without its TYPE).
python3 - "$TMP/m2.txt" <<'EOF' || fail "families"
import re, sys
help_, type_, samples = set(), {}, set()
for line in open(sys.argv[1]):
    if line.startswith("# HELP "):
        help_.add(line.split()[2])
    elif line.startswith("# TYPE "):
        _, _, name, t = line.split()
        type_[name] = t
    elif line.strip():
        samples.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
bad = [n for n in type_ if n not in help_] + [n for n in help_ if n not in type_]
for s in samples:
    fam = s if s in type_ else re.sub(r"_(bucket|sum|count)$", "", s)
    if fam not in type_:
        bad.append("sample without a family: " + s)
if bad:
    sys.exit("FAIL: " + ", ".join(bad))
EOF

VERSION=$("$SRV" --version | awk '{print $2}')
grep -q "^qpc_build_info{version=\"$VERSION\",.*} 1$" "$TMP/m2.txt" || fail "build info: $(grep qpc_build_info "$TMP/m2.txt")"
U1=$(value qpc_uptime_seconds "$TMP/m1.txt"); U2=$(value qpc_uptime_seconds "$TMP/m2.txt")
awk -v a="$U1" -v b="$U2" 'BEGIN { exit !(a > 0 && b >= a + 1) }' || fail "uptime $U1 then $U2"
START=$(value process_start_time_seconds "$TMP/m2.txt")
awk -v s="$START" -v now="$(date +%s)" 'BEGIN { exit !(s > now - 120 && s <= now) }' || fail "start time $START"
[ "$(value qpc_queued_messages "$TMP/m2.txt")" = 1 ] || fail "queued messages: $(value qpc_queued_messages "$TMP/m2.txt")"
[ "$(value qpc_outbox_depth "$TMP/m2.txt")" = 1 ] || fail "outbox depth: $(value qpc_outbox_depth "$TMP/m2.txt")"
[ "$(value qpc_queue_max_bytes "$TMP/m2.txt")" = 268435456 ] || fail "queue limit: $(value qpc_queue_max_bytes "$TMP/m2.txt")"
[ "$(value qpc_outbox_max_messages "$TMP/m2.txt")" = 100000 ] || fail "outbox limit"
# The peer is down: its link says so, and no federation connection is counted.
[ "$(value 'qpc_federation_peer_up{domain="b.mesh.test"}' "$TMP/m2.txt")" = 0 ] ||
    fail "peer_up while b is down: $(grep 'peer_up{' "$TMP/m2.txt")"
[ "$(value 'qpc_connections{service="federation"}' "$TMP/m2.txt")" = 0 ] || fail "federation connections while b is down"
A1=$(value qpc_queue_oldest_message_age_seconds "$TMP/m1.txt"); A2=$(value qpc_queue_oldest_message_age_seconds "$TMP/m2.txt")
awk -v a="$A1" -v b="$A2" 'BEGIN { exit !(a >= 2 && b >= a + 1 && b < 120) }' || fail "queue age $A1 then $A2"
if [ -z "$NS" ]; then
    for m in qpc_mdns_enabled qpc_mdns_established qpc_mdns_nodes qpc_mdns_peers; do
        [ "$(value $m "$TMP/m2.txt")" = 0 ] || fail "$m is $(value $m "$TMP/m2.txt") with mDNS off"
    done
else
    [ "$(value qpc_mdns_enabled "$TMP/m2.txt")" = 1 ] || fail "qpc_mdns_enabled"
fi
echo "ok 3 values: queue age $A1 -> $A2 s, outbox age $(value qpc_outbox_oldest_message_age_seconds "$TMP/m2.txt") s, uptime $U1 -> $U2 s, mDNS nodes $(value qpc_mdns_nodes "$TMP/m2.txt") peers $(value qpc_mdns_peers "$TMP/m2.txt")"

# Carol fetches and acks: her queue, and with it the oldest age, is empty.
"${RUN[@]}" timeout 30 "$TC" -S 127.0.0.1:$P -i "$TMP/carol.json" fetch -a >"$TMP/fetch.out" || fail "Carol's fetch"
grep -q '^msg ' "$TMP/fetch.out" || fail "Carol got nothing"
wait_value qpc_queue_oldest_message_age_seconds 'v == 0' 10 || fail "queue age after the ack: $(value qpc_queue_oldest_message_age_seconds)"
[ "$(value qpc_queued_messages)" = 0 ] || fail "queue not empty after the ack"
echo "ok 4 the recipient fetched: oldest queued age 0"

# --- 3. the dashboard and the names ---------------------------------------------------------
python3 - "$DASH" "$RULES" "$TMP/m2.txt" "${EXPECTED[@]}" <<'EOF' || fail "dashboard or rules"
import json, re, sys
dash_path, rules_path, live_path, expected = sys.argv[1], sys.argv[2], sys.argv[3], set(sys.argv[4:])
errors = []
dash = json.load(open(dash_path))
for key in ("title", "uid", "panels", "schemaVersion", "templating"):
    if key not in dash:
        errors.append("dashboard has no " + key)
exprs = [a.get("expr", "") for a in dash.get("annotations", {}).get("list", [])]
exprs += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
ids = set()
def walk(panels):
    for p in panels:
        if p.get("id") in ids:
            errors.append("panel id %s twice" % p.get("id"))
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not all(k in g for k in ("h", "w", "x", "y")) or g["x"] + g["w"] > 24:
            errors.append("panel %r: bad gridPos %r" % (p.get("title"), g))
        if p.get("type") == "row":
            walk(p.get("panels", []))
            continue
        if not p.get("title") or not p.get("targets"):
            errors.append("panel %r has no title or targets" % p.get("title"))
        for t in p.get("targets", []):
            if not t.get("expr") or not t.get("refId"):
                errors.append("panel %r: target without expr or refId" % p.get("title"))
            exprs.append(t.get("expr", ""))
walk(dash["panels"])

families = {}
for line in open(live_path):
    if line.startswith("# TYPE "):
        _, _, name, t = line.split()
        families[name] = t
def known(name):
    for cand in (name, re.sub(r"_(bucket|sum|count)$", "", name)):
        if cand in families or cand in expected:
            return True
    return False
NAME = re.compile(r"\b(qpc_[a-z0-9_]+|process_start_time_seconds)\b")
# Rules are read as text: any metric named there (expressions, descriptions) must exist.
rules_names = set(NAME.findall(open(rules_path).read()))
dash_names = set(n for e in exprs for n in NAME.findall(e))
for where, names in (("dashboard", dash_names), ("alert rules", rules_names)):
    for n in sorted(names):
        if not known(n):
            errors.append("%s names %s, which the node does not export" % (where, n))
for n in sorted(expected):
    if n in families:
        errors.append("%s is exported now: remove it from EXPECTED in tests/it_metrics.sh" % n)
if errors:
    sys.exit("FAIL: " + "\n  ".join(errors))
print("ok 5 dashboard: %d panels, %d metrics named (dashboard %d, rules %d), %d expected from other lanes"
      % (len(ids), len(dash_names | rules_names), len(dash_names), len(rules_names), len(expected)))
EOF
echo "PASS it_metrics"
