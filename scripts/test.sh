#!/usr/bin/env bash
# The one test command (README.md): installs what is missing, builds, then
#   1. runs every libFuzzer target for a short bounded time (QPC_FUZZ_SECONDS, default 10),
#   2. runs all tests (ctest) on a normal build,
#   3. runs all tests again with AddressSanitizer + UndefinedBehaviorSanitizer,
#   4. builds for s390x (big-endian) and runs the unit tests under qemu-user
#      (scripts/cross.sh; about 3 minutes with its installs; QPC_CROSS=0 leaves it out).
# Exits non-zero if anything fails. Build trees: build/, build-asan/, build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${QPC_FUZZ_SECONDS:-10}

configure_and_build() {  # dir, cmake args...
    local dir=$1; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

echo "== fuzz: each target ${fuzz_seconds}s =="
CC=clang configure_and_build build-fuzz -DQPC_FUZZ=ON
bash scripts/fuzz.sh build-fuzz "$fuzz_seconds"

summary=()
total_passed=0
total_failed=0
total_skipped=0
run_ctest() {  # dir, label
    local log; log=$(mktemp)
    local rc=0 line failed total skipped
    ctest --test-dir "$1" -j"$jobs" --output-on-failure 2>&1 | tee "$log" || rc=$?
    line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" | tail -n 1)
    # CTest counts a skipped test (exit 77) in "tests passed"; it lists it as "(Skipped)".
    skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$log" || true)
    rm -f "$log"
    if [ -z "$line" ]; then
        summary+=("$2: ctest printed no summary"); total_failed=$((total_failed + 1)); return 1
    fi
    failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
    total_passed=$((total_passed + total - failed - skipped))
    total_failed=$((total_failed + failed))
    total_skipped=$((total_skipped + skipped))
    [ "$skipped" -gt 0 ] && line="$line ($skipped skipped)"
    summary+=("$2: $line")
    return $rc
}

echo "== tests: normal build =="
configure_and_build build
rc=0
run_ctest build normal || rc=1

echo "== tests: AddressSanitizer + UndefinedBehaviorSanitizer =="
configure_and_build build-asan -DQPC_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest build-asan sanitizers || rc=1
unset ASAN_OPTIONS UBSAN_OPTIONS

if [ "${QPC_CROSS:-1}" != 0 ]; then
    echo "== tests: big-endian (s390x unit tests under qemu-user) =="
    if bash scripts/cross.sh s390x; then
        summary+=("s390x: unit tests passed")
    else
        summary+=("s390x: unit tests FAILED (scripts/cross.sh s390x)"); rc=1
    fi
fi

echo "== summary =="
printf '%s\n' "${summary[@]}"
echo "tests: $total_passed passed, $total_skipped skipped, $total_failed failed"
exit $rc
