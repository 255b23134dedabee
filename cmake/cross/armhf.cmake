# CMake toolchain for Debian armhf (scripts/cross.sh armhf; shared settings: debian-cross.cmake).
set(CMAKE_SYSTEM_PROCESSOR arm)
set(QPC_CROSS_TRIPLET arm-linux-gnueabihf)
set(QPC_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
