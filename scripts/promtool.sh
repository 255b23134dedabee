#!/usr/bin/env bash
# scripts/promtool.sh CACHE_DIR: prints the path of a promtool to check the alert rules and
# the metrics with (tests/it_metrics.sh), installing one into CACHE_DIR when needed.
#
# Order: $PROMTOOL if set, a promtool on PATH, CACHE_DIR/promtool from an earlier run,
# else promtool taken out of Debian's prometheus package: `apt-get download` fetches the
# .deb (19 MB) and only /usr/bin/promtool is extracted into CACHE_DIR. The package is not
# installed, because installing it would also enable and start a Prometheus server on
# :9090 on every developer's machine (and it is 96 MB installed); so it is not in
# scripts/deps.txt either. Exit 1 with the reason on stderr when no promtool can be had
# (offline, no apt): the test then skips.
set -euo pipefail
cache=${1:?usage: promtool.sh CACHE_DIR}

if [ -n "${PROMTOOL:-}" ]; then
    [ -x "$PROMTOOL" ] || { echo "promtool.sh: PROMTOOL=$PROMTOOL is not executable" >&2; exit 1; }
    echo "$PROMTOOL"
    exit 0
fi
if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi
if [ -x "$cache/promtool" ]; then
    echo "$cache/promtool"
    exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    { echo "promtool.sh: no promtool, and no apt-get/dpkg-deb to fetch Debian's" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; as root it warns that the _apt
# user cannot write there, which is harmless.
if ! (cd "$work" && apt-get download -q prometheus >"$work/apt.log" 2>&1); then
    echo "promtool.sh: apt-get download prometheus failed:" >&2
    tail -n 3 "$work/apt.log" >&2
    exit 1
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
[ -x "$work/root/usr/bin/promtool" ] || { echo "promtool.sh: no usr/bin/promtool in the package" >&2; exit 1; }
"$work/root/usr/bin/promtool" --version >/dev/null 2>&1 ||
    { echo "promtool.sh: the extracted promtool does not run here" >&2; exit 1; }
mv "$work/root/usr/bin/promtool" "$cache/promtool.new"
mv "$cache/promtool.new" "$cache/promtool"   # atomic: two test runs may fetch at once
echo "$cache/promtool"
