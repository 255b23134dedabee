#!/usr/bin/env bash
# Builds an optimised tree (build-bench/) and runs every benchmark in bench/, or the ones
# named:  scripts/bench.sh [bench_envelope bench_store ...]
# Benchmarks print figures (medians of several runs); nothing here asserts on timings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
if [ $# -gt 0 ]; then names=("$@"); else names=(); for b in build-bench/bench_*; do [ -x "$b" ] && names+=("$(basename "$b")"); done; fi
for name in "${names[@]}"; do
    echo "== $name =="
    "build-bench/$name"
done
