#!/usr/bin/env bash
# Runs every libFuzzer target in a fuzz build for a bounded time and reports how many
# executions each survived.
#   scripts/fuzz.sh [BUILD_DIR [SECONDS [TARGET]]]     (defaults: build-fuzz 20 all)
# Build first: CC=clang cmake -S . -B build-fuzz -DQPC_FUZZ=ON && cmake --build build-fuzz
# Seeds live in fuzz/corpus/<target>/; new inputs found go to a scratch copy, so the
# checked-in corpus only changes when someone adds to it on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-fuzz}
seconds=${2:-20}
only=${3:-}
status=0
for bin in "$dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    [ -z "$only" ] || [ "$only" = "$name" ] || continue
    work=$(mktemp -d)
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
    log="$work.log"
    if "$bin" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -print_final_stats=1 "$work" >"$log" 2>&1; then
        execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
        echo "fuzz: $name survived ${execs:-?} executions in ${seconds}s"
    else
        echo "fuzz: $name FAILED"; tail -n 40 "$log"; status=1
    fi
    rm -rf "$work" "$log"
done
exit $status
