# debian-cross.cmake: the part of a CMake toolchain file that every Debian cross target
# shares. A per-architecture file (armhf.cmake, ...) sets CMAKE_SYSTEM_PROCESSOR,
# QPC_CROSS_TRIPLET and QPC_CROSS_QEMU, then includes this one; scripts/cross.sh makes
# the sysroot and passes it as -DCMAKE_SYSROOT.
#
# The one idea: the target's libraries are Debian's own packages for that architecture,
# unpacked into a sysroot (not installed with dpkg multiarch, see scripts/cross.sh), so
# the compiler, pkg-config and qemu-user all look there and nowhere on the host. Host
# programs (protoc-c: its C output is the same for every architecture) still come from
# the host.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${QPC_CROSS_TRIPLET}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${QPC_CROSS_TRIPLET})
if(NOT CMAKE_SYSROOT)
  message(FATAL_ERROR "give -DCMAKE_SYSROOT=DIR (scripts/cross.sh makes one)")
endif()

# The target's .pc files only; their -I and -L paths are inside the sysroot.
set(ENV{PKG_CONFIG_LIBDIR}
    "${CMAKE_SYSROOT}/usr/lib/${QPC_CROSS_TRIPLET}/pkgconfig:${CMAKE_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CMAKE_SYSROOT}")
unset(ENV{PKG_CONFIG_PATH})

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)

# CTest runs each test_* program through qemu-user, which finds the target's ld.so and
# libraries under -L.
find_program(QPC_CROSS_QEMU_PATH NAMES ${QPC_CROSS_QEMU}-static ${QPC_CROSS_QEMU} REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${QPC_CROSS_QEMU_PATH} -L ${CMAKE_SYSROOT})
