# CMake toolchain for Debian arm64 (scripts/cross.sh arm64; shared settings: debian-cross.cmake).
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(QPC_CROSS_TRIPLET aarch64-linux-gnu)
set(QPC_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
