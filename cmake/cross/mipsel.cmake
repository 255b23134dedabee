# CMake toolchain for Debian mipsel (scripts/cross.sh mipsel; shared settings: debian-cross.cmake).
set(CMAKE_SYSTEM_PROCESSOR mipsel)
set(QPC_CROSS_TRIPLET mipsel-linux-gnu)
set(QPC_CROSS_QEMU qemu-mipsel)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
