# CMake toolchain: aarch64 Linux with Debian's cross compiler
# (apt-get install g++-aarch64-linux-gnu). Target libraries (Highway,
# pthreadpool, gtest) come from an arm64 sysroot unpacked from Debian's arm64
# packages by tools/arm64/make_sysroot.sh; pass it as
#   -DCOCOPIE_ARM64_SYSROOT=/abs/path/to/sysroot
# The C library and headers are the cross toolchain's own
# (/usr/aarch64-linux-gnu), so the sysroot needs no libc6-dev.
#
# An Android build swaps this file for the NDK's:
#   -DCMAKE_TOOLCHAIN_FILE=$ANDROID_NDK/build/cmake/android.toolchain.cmake
#   -DANDROID_ABI=arm64-v8a -DANDROID_PLATFORM=android-26
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Debian's multiarch layout: libraries in <prefix>/lib/aarch64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(COCOPIE_ARM64_SYSROOT "" CACHE PATH "arm64 sysroot from make_sysroot.sh")
# try_compile projects re-read this file: hand the variable on to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES COCOPIE_ARM64_SYSROOT)
set(CMAKE_FIND_ROOT_PATH "${COCOPIE_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
