#!/usr/bin/env bash
# The test suite: a Release build (and a consumer built against its installed
# copy, scripts/consumer_test.sh), then the same tests under AddressSanitizer
# and UndefinedBehaviorSanitizer, then the fast tests under valgrind.
# Usage: bash scripts/test.sh [--quick]   (--quick: the Release run only)
set -euo pipefail
cd "$(dirname "$0")/.."
# libonnx-testdata: ONNX's operator suite; python3-torch, -torchvision, -onnx:
# odl against PyTorch on real architectures (tests/torch, tests/onnx_test.sh);
# python3-pyarmnn, libarmnn-cpuref-backend22: ArmNN, the TFLite reference (tests/tflite_test.sh);
# python3-venv: pip installs; jupyter-nbconvert, -nbclient, -ipykernel, -matplotlib: the notebook;
# python3-distributed: Dask, the fleet simulation (tests/fleet)
bash scripts/deps.sh valgrind python3 pkg-config chromium fonts-dejavu-core libonnx-testdata python3-onnx \
    python3-torch python3-torchvision python3-pyarmnn libarmnn-cpuref-backend22 python3-venv \
    jupyter-nbconvert python3-nbclient python3-ipykernel python3-matplotlib python3-distributed
jobs=$(nproc)

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" >/dev/null
(cd build && ctest --output-on-failure -j"$jobs")

echo "== install, then build examples/consumer against the installed copy (CMake package, pkg-config)"
bash scripts/consumer_test.sh build

echo "== pip install ./python into venvs (Debian's python3, and the other python3 on PATH if any)"
bash scripts/pip_test.sh build

echo "== the notebook, executed headless (examples/notebooks/on_device_learning.ipynb)"
bash scripts/notebook_test.sh build
[ "${1:-}" = "--quick" ] && exit 0

echo "== Cortex-M4F under QEMU (mps2-an386, 128 KB RAM): firmware, unit tests on target, cost check"
if [ "${ODL_SKIP_MCU:-0}" = 1 ]; then echo "skipped (ODL_SKIP_MCU=1)"; else bash ports/cortex-m/run.sh; fi

echo "== ASan + UBSan build"
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DODL_SANITIZE=ON >/dev/null
cmake --build build-san -j"$jobs" >/dev/null
(cd build-san && ctest --output-on-failure -j"$jobs")

echo "== valgrind (memcheck) on the unit tests"
status=0
for t in test_model test_file test_golden test_posix_io test_onnx_suite test_delta; do
    if [ -x build/$t ]; then
        valgrind -q --error-exitcode=99 --leak-check=full ./build/$t >/tmp/odl-vg-$t.log 2>&1 || { status=1; echo "valgrind: $t failed"; tail -30 /tmp/odl-vg-$t.log; }
        tail -1 /tmp/odl-vg-$t.log
    fi
done
echo "== fuzzing (libFuzzer + ASan/UBSan): model file, learner state, store medium, dataset readers"
if [ "${ODL_SKIP_FUZZ:-0}" = 1 ]; then echo "skipped (ODL_SKIP_FUZZ=1)"; else bash scripts/fuzz.sh 15 || status=1; fi
exit $status
