#!/usr/bin/env bash
# cross.sh ARCH: build quicprochat for a Debian architecture other than the host's and
# run its unit tests (tests/test_*.c) under qemu-user.
#
#   scripts/cross.sh s390x      # big-endian, 64-bit
#   scripts/cross.sh armhf      # 32-bit ARM: 32-bit size_t, long and time_t
#   scripts/cross.sh arm64 | mipsel
#
# Installs what it needs on the host (root or sudo): Debian's cross toolchain
# (crossbuild-essential-ARCH), qemu-user-static and mmdebstrap. The target's libraries,
# the ARCH build of every library -dev package in scripts/deps.txt, are unpacked by
# mmdebstrap into a sysroot (build-cross-ARCH/sysroot), not installed with
# `dpkg --add-architecture`: bookworm's security archive (LTS) no longer builds s390x or
# mipsel, so the host's updated Multi-Arch: same packages (libssl3, linux-libc-dev, ...)
# have no matching ARCH version and apt could co-install them only by downgrading or
# removing host packages (python3, the JDK). The sysroot leaves the host untouched.
#
# Builds qpc, qpc-server and the test_* programs in build-cross-ARCH with
# cmake/cross/ARCH.cmake; protoc-c runs on the host (its C output is the same for every
# architecture). The unit tests run through qemu-user with a preloaded library that
# corrects what qemu 7.2 translates wrongly for some guests (cmake/cross/qemu-workarounds.c).
# The integration scripts (tests/it_*.sh) are not run: they start many processes,
# namespaces and host tools (tmux, python3-zeroconf), which is the host test run's job.
# Prints the stripped sizes of qpc and qpc-server and how long each step took.
# Exit status: 0 when every unit test passed or was skipped with a printed reason.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/cross.sh armhf|arm64|mipsel|s390x" >&2; exit 2; }
[ $# -eq 1 ] || usage
arch=$1
case "$arch" in
    armhf)  triplet=arm-linux-gnueabihf ;;
    arm64)  triplet=aarch64-linux-gnu ;;
    mipsel) triplet=mipsel-linux-gnu ;;
    s390x)  triplet=s390x-linux-gnu ;;
    *) usage ;;
esac
build=build-cross-$arch
jobs=$(nproc 2>/dev/null || echo 2)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
t_start=$(date +%s)

# --- what to install ----------------------------------------------------------------
bash scripts/install-deps.sh      # host tools: cmake, protoc-c, pkg-config, uthash headers
host_pkgs=(crossbuild-essential-"$arch" qemu-user-static mmdebstrap)
missing=()
for pkg in "${host_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "cross: installing ${missing[*]}"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Every -dev package of deps.txt (libraries and headers), for ARCH; the fuzzing runtime
# (libclang-rt) is only used by the host's fuzz build. libc6-dev: the sysroot's C library.
target_pkgs=libc6-dev
while read -r pkg; do
    case "$pkg" in
        libclang-rt-*) ;;
        *-dev) target_pkgs+=",$pkg" ;;
    esac
done < scripts/deps.txt
sysroot=$PWD/$build/sysroot
if [ ! -f "$sysroot/.packages" ] || [ "$(cat "$sysroot/.packages")" != "$target_pkgs" ]; then
    echo "cross: unpacking $target_pkgs for $arch into $sysroot"
    rm -rf "$sysroot"
    mkdir -p "$build"
    sources=/etc/apt/sources.list.d/debian.sources   # the host's mirror (deb822)
    [ -f "$sources" ] || sources="deb http://deb.debian.org/debian bookworm main"
    # extract: download ARCH packages with their dependencies and unpack them; no
    # maintainer scripts run, so no emulation is needed.
    $sudo mmdebstrap --quiet --variant=extract --architectures="$arch" \
        --include="$target_pkgs" bookworm "$sysroot" "$sources"
    # The linker follows symlinks on the host: point absolute ones (libfoo.so ->
    # /lib/TRIPLET/libfoo.so.N) into the sysroot.
    find "$sysroot" -type l -lname '/*' | while read -r link; do
        target=$(readlink "$link")
        $sudo ln -sfn "$sysroot$target" "$link"
    done
    echo "$target_pkgs" | $sudo tee "$sysroot/.packages" >/dev/null
fi
t_deps=$(date +%s)

# --- build ----------------------------------------------------------------------------
tests=()
for src in tests/test_*.c; do tests+=("$(basename "$src" .c)"); done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/cross/$arch.cmake" -DCMAKE_SYSROOT="$sysroot" >/dev/null
cmake --build "$build" -j"$jobs" --target qpc qpc-server "${tests[@]}"
# qemu-user 7.2 translates a few socket options wrongly for some guests; the preloaded
# library (cmake/cross/qemu-workarounds.c says what and why) puts them right.
"$triplet-gcc" --sysroot="$sysroot" -Wall -Wextra -Werror -O2 -shared -fPIC \
    -o "$build/qemu-workarounds.so" cmake/cross/qemu-workarounds.c -ldl
export QEMU_SET_ENV=LD_PRELOAD=$PWD/$build/qemu-workarounds.so
t_build=$(date +%s)
elf=$(readelf -h "$build/qpc-server")
echo "== $arch: $(sed -n 's/^ *\(Class\|Data\|Machine\): *//p' <<<"$elf" | paste -sd, -)"
workarounds=""
grep -q 'big endian' <<<"$elf" && workarounds+="no UDP GSO/GRO, PKTINFO ifindex byte order; "
grep -q 'ELF64' <<<"$elf" && workarounds+="64-bit ip_mreqn; "
echo "== qemu-user workarounds preloaded: ${workarounds:-none}"

# --- unit tests under qemu-user ---------------------------------------------------------
# CTest prefixes each test with CMAKE_CROSSCOMPILING_EMULATOR (the toolchain's qemu).
# A test that cannot run here exits 77 and says why; CTest lists it as skipped.
log=$(mktemp)
rc=0
ctest --test-dir "$build" -R '^test_' -j"$jobs" --output-on-failure \
    2>&1 | tee "$log" || rc=$?
t_test=$(date +%s)
# CTest counts a skipped test among "tests passed"; it lists it as "(Skipped)".
skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$log" || true)
line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" | tail -n 1 || true)
rm -f "$log"
if [ -n "$line" ]; then
    failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
    summary="$((total - failed - skipped)) passed, $skipped skipped, $failed failed (of $total)"
    [ "$total" -gt 0 ] || rc=1
else
    summary="ctest printed no summary"
    rc=1
fi

# --- sizes ------------------------------------------------------------------------------
sizes=""
for prog in qpc qpc-server; do
    "$triplet-strip" -o "$build/$prog.stripped" "$build/$prog"
    sizes+="$prog $(stat -c %s "$build/$prog.stripped") B  "
done

echo "== cross $arch summary =="
echo "unit tests: $summary"
echo "stripped:   $sizes"
echo "time:       deps $((t_deps - t_start))s, build $((t_build - t_deps))s, tests $((t_test - t_build))s, total $((t_test - t_start))s"
exit $rc
