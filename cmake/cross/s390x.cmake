# CMake toolchain for Debian s390x (scripts/cross.sh s390x; shared settings: debian-cross.cmake).
set(CMAKE_SYSTEM_PROCESSOR s390x)
set(QPC_CROSS_TRIPLET s390x-linux-gnu)
set(QPC_CROSS_QEMU qemu-s390x)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
