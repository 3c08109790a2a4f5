#!/usr/bin/env bash
# Installs a build of odl into a temporary prefix and builds the consumer
# example (examples/consumer) against the installed copy: through the CMake
# package (static, shared and host targets) and through pkg-config (shared
# and static), running every binary. Prints "N passed, N failed" last.
# Usage: bash scripts/consumer_test.sh [build-dir]   (default: build)
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "consumer_test: $build is not a configured build directory" >&2; echo "0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d /tmp/odl-consumer.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
log=$tmp/log
passed=0 failed=0

# check NAME COMMAND...: runs the command, output to $log, counts the result.
check() {
    local name=$1; shift
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "ok    $name"
    else
        failed=$((failed + 1)); echo "FAIL  $name"; tail -20 "$log" | sed 's/^/      /'
    fi
}
# run NAME [ENV=VALUE...] BINARY: runs a consumer, shows its output.
run() {
    local name=$1; shift
    check "$name" env "$@"
    sed 's/^/      /' "$log"
}

check "cmake --build $build" cmake --build "$build" -j"$(nproc)"
check "cmake --install $build --prefix <tmp>" cmake --install "$build" --prefix "$prefix"

pc=$(find "$prefix" -name odl.pc -path '*/pkgconfig/*' | head -1)
libdir=$(dirname "$(dirname "$pc")")
check "installed: headers, odl.pc, CMake package, libodl.a, libodl.so.0, libodl_host.a" \
    test -f "$prefix/include/odl/odl.h" -a -f "$prefix/include/odl/data.h" -a -n "$pc" \
      -a -f "$libdir/cmake/odl/odlConfig.cmake" -a -f "$libdir/cmake/odl/odlConfigVersion.cmake" \
      -a -f "$libdir/libodl.a" -a -L "$libdir/libodl.so" -a -e "$libdir/libodl.so.0" -a -f "$libdir/libodl_host.a"
check "installed: bin/odl runs" "$prefix/bin/odl" --help
check "libodl.so has SONAME libodl.so.0" sh -c "readelf -d '$libdir/libodl.so' | grep -q 'SONAME.*\[libodl.so.0\]'"

# CMake package: one build per target.
for target in odl::odl odl::odl_shared odl::odl_host; do
    b=$tmp/cmake-${target#odl::}
    check "find_package(odl): configure with $target" \
        cmake -S examples/consumer -B "$b" -DCMAKE_PREFIX_PATH="$prefix" -DODL_TARGET="$target" -DCMAKE_BUILD_TYPE=Release
    check "find_package(odl): build with $target" cmake --build "$b"
done
check "odl::odl links libodl statically" sh -c "! readelf -d '$tmp/cmake-odl/consumer' | grep -q 'NEEDED.*libodl'"
check "odl::odl_shared needs libodl.so.0" sh -c "readelf -d '$tmp/cmake-odl_shared/consumer' | grep -q 'NEEDED.*\[libodl.so.0\]'"
run "run consumer (CMake, odl::odl)" "$tmp/cmake-odl/consumer"
run "run consumer (CMake, odl::odl_host)" "$tmp/cmake-odl_host/consumer"
run "run consumer (CMake, odl::odl_shared, LD_LIBRARY_PATH)" LD_LIBRARY_PATH="$libdir" "$tmp/cmake-odl_shared/consumer"

# pkg-config, through the example's Makefile (shared by default, `static` target).
export PKG_CONFIG_PATH=$(dirname "$pc")
check "pkg-config --cflags --libs odl" sh -c "pkg-config --cflags --libs odl | grep -q -- '-lodl'"
mkdir -p "$tmp/pc" && cp examples/consumer/main.c examples/consumer/Makefile "$tmp/pc/"
check "pkg-config: make (shared)" make -C "$tmp/pc" consumer
check "pkg-config: make static" make -C "$tmp/pc" static
check "pkg-config build (shared) needs libodl.so.0" sh -c "readelf -d '$tmp/pc/consumer' | grep -q 'NEEDED.*\[libodl.so.0\]'"
check "pkg-config build (static) does not need libodl" sh -c "! readelf -d '$tmp/pc/consumer-static' | grep -q 'NEEDED.*libodl'"
run "run consumer (pkg-config, shared, LD_LIBRARY_PATH)" LD_LIBRARY_PATH="$libdir" "$tmp/pc/consumer"
run "run consumer (pkg-config, static)" "$tmp/pc/consumer-static"
# The one-line command from docs/install.md.
check "pkg-config: one-line cc" sh -c "cc -std=c11 -o '$tmp/pc/one' '$src/examples/consumer/main.c' \$(pkg-config --cflags --libs odl) && LD_LIBRARY_PATH='$libdir' '$tmp/pc/one'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
