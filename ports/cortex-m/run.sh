#!/usr/bin/env bash
# ports/cortex-m/run.sh — builds the core, the firmware and the core's unit
# tests for a Cortex-M4F and runs them under qemu-system-arm -M mps2-an386
# (docs/mcu.md). Exits non-zero on any failure (a fault, a failed check, a
# RAM budget overrun at link time, a cost more than 10% over baseline.txt).
# The last line is "N passed, N failed" over the programs run and the checks.
#
#   bash ports/cortex-m/run.sh              # everything
#   ODL_SKIP_MCU=1 bash ports/cortex-m/run.sh   # skip (prints why, exit 0)
#   bash ports/cortex-m/run.sh --record     # rewrite baseline.txt from this run
#
# Environment: ODL_MCU_BUILD (default build-mcu), ODL_HOST_BUILD (the host
# build whose odl tool makes the model; default build, built if missing),
# ODL_FASHION_DIR, ODL_MCU_TESTS (unit tests to run on the target).
set -euo pipefail
if [ "${ODL_SKIP_MCU:-0}" = 1 ]; then
    echo "== cortex-m: skipped (ODL_SKIP_MCU=1)"
    exit 0
fi
cd "$(dirname "$0")/../.."
ROOT=$PWD
PORT=$ROOT/ports/cortex-m
BUILD=${ODL_MCU_BUILD:-$ROOT/build-mcu}
HOST=${ODL_HOST_BUILD:-$ROOT/build}
DATA=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
TESTS=${ODL_MCU_TESTS:-test_golden test_model test_replay test_quant test_qkernels test_state test_ewc_lwf test_drift}
RECORD=0
[ "${1:-}" = "--record" ] && RECORD=1
t_start=$(date +%s)

echo "== cortex-m: toolchain and emulator"
bash scripts/deps.sh gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm python3 python3-numpy python3-torch
arm-none-eabi-gcc --version | head -1
qemu-system-arm --version | head -1

echo "== cortex-m: host tool, base model, embedded data"
mkdir -p "$BUILD/gen"
if [ ! -x "$HOST/odl" ]; then
    cmake -S . -B "$HOST" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$HOST" -j"$(nproc)" --target odl_cli >/dev/null
fi
ODL=$HOST/odl
# the base: edge-cnn, 1 epoch on 12,000 images (seconds), then INT8 layers
if [ ! -s "$BUILD/gen/base-int8.odl" ]; then
    "$ODL" train --data "$DATA" --arch edge-cnn --epochs 1 --limit 12000 --seed 0 -o "$BUILD/gen/base.odl" --quiet >/dev/null
    "$ODL" quantize "$BUILD/gen/base.odl" --calib "$DATA" --calib-samples 200 --seed 0 -o "$BUILD/gen/base-int8.odl" >/dev/null
fi
# the new-class scenario's base: the same, on classes 0-7 only (8 outputs)
if [ ! -s "$BUILD/gen/base8-int8.odl" ]; then
    "$ODL" train --data "$DATA" --arch edge-cnn --epochs 1 --limit 12000 --seed 0 --classes 0-7 -o "$BUILD/gen/base8.odl" --quiet >/dev/null
    "$ODL" quantize "$BUILD/gen/base8.odl" --calib "$DATA" --calib-samples 200 --seed 0 -o "$BUILD/gen/base8-int8.odl" >/dev/null
fi
# odl export-c; until the tool dispatches it, the same command through a shim
if "$ODL" export-c --help >/dev/null 2>&1; then
    EXPORT=("$ODL" export-c)
else
    cc -std=c11 -O2 -I"$ROOT/include" -I"$ROOT/tools/odl" "$PORT/gen/export_main.c" "$ROOT/tools/odl/cmd_export.c" \
        "$ROOT/tools/odl/cli.c" "$HOST/libodl_host.a" "$HOST/libodl.a" -lz -lm -o "$BUILD/gen/odl-export-c"
    EXPORT=("$BUILD/gen/odl-export-c")
fi
"${EXPORT[@]}" "$BUILD/gen/base-int8.odl" -o "$BUILD/gen/model_data.c.new" --header "$BUILD/gen/model_data.h.new" --name odl_base
"${EXPORT[@]}" "$BUILD/gen/base8-int8.odl" -o "$BUILD/gen/model8_data.c.new" --header "$BUILD/gen/model8_data.h.new" --name odl_base8
python3 "$PORT/gen/gen_data.py" "$DATA" "$BUILD/gen/data.c.new" "$BUILD/gen/data.h.new" --old 200 --per-class 10 --test 500
for f in model_data.c model_data.h model8_data.c model8_data.h data.c data.h; do   # keep timestamps when unchanged
    cmp -s "$BUILD/gen/$f.new" "$BUILD/gen/$f" && rm "$BUILD/gen/$f.new" || mv "$BUILD/gen/$f.new" "$BUILD/gen/$f"
done

echo "== cortex-m: KWS: the imported INT8 DS-CNN (MLPerf Tiny) and synthetic MFCC-shaped inputs"
"$ODL" import "$ROOT/tests/data/mlperf_tiny/kws_ref_model.tflite" -o "$BUILD/gen/kws.odl" >/dev/null
cc -std=c11 -O2 -I"$ROOT/include" -I"$ROOT/tools/odl" "$PORT/gen/kws_prefix.c" "$ROOT/tools/odl/cli.c" \
    "$HOST/libodl_host.a" "$HOST/libodl.a" -lz -lm -o "$BUILD/gen/kws_prefix"
"$BUILD/gen/kws_prefix" "$BUILD/gen/kws.odl" head "$BUILD/gen/kws-prefix.odl" >/dev/null   # INT8 nodes 0..18: the dense layer (19) is the head
"${EXPORT[@]}" "$BUILD/gen/kws.odl" -o "$BUILD/gen/kws_model.c.new" --header "$BUILD/gen/kws_model.h.new" --name odl_kws
"${EXPORT[@]}" "$BUILD/gen/kws-prefix.odl" -o "$BUILD/gen/kws_prefix_model.c.new" --header "$BUILD/gen/kws_prefix_model.h.new" --name odl_kws_pre
/usr/bin/python3 "$PORT/gen/gen_kws.py" "$ODL" "$BUILD/gen/kws.odl" "$BUILD/gen/kws_data.c.new" "$BUILD/gen/kws_data.h.new"   # numpy: Debian's python3-numpy
# an imported PyTorch residual network (ONNX), quantised below its head, for resnet.elf
if [ ! -s "$BUILD/gen/rn-int8.odl" ]; then
    /usr/bin/python3 "$PORT/gen/torch_resnet.py" "$BUILD/gen/rn.onnx" --data "$DATA" >/dev/null
    "$ODL" import "$BUILD/gen/rn.onnx" -o "$BUILD/gen/rn.odl" >/dev/null
    "$ODL" quantize "$BUILD/gen/rn.odl" --calib "$DATA" --calib-samples 200 --seed 0 -o "$BUILD/gen/rn-int8.odl" >/dev/null
fi
"${EXPORT[@]}" "$BUILD/gen/rn-int8.odl" -o "$BUILD/gen/rn_model.c.new" --header "$BUILD/gen/rn_model.h.new" --name odl_rn
for f in kws_model.c kws_model.h kws_prefix_model.c kws_prefix_model.h kws_data.c kws_data.h rn_model.c rn_model.h; do
    cmp -s "$BUILD/gen/$f.new" "$BUILD/gen/$f" && rm "$BUILD/gen/$f.new" || mv "$BUILD/gen/$f.new" "$BUILD/gen/$f"
done

echo "== cortex-m: build (arm-none-eabi-gcc, Cortex-M4F, RAM budget 128 KB)"
make -s -C "$PORT" -j"$(nproc)" BUILD="$BUILD" TESTS="$TESTS" all >"$BUILD/make.log" 2>&1 || { cat "$BUILD/make.log"; exit 1; }
arm-none-eabi-size "$BUILD/firmware.elf"

qemu() {  # qemu ELF LOG: runs to completion (semihosting exit code), 15 min at most
    timeout 900 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
        -semihosting-config enable=on,target=native -icount shift=0 -kernel "$1" >"$2" 2>&1
}

passed=0
failed=0
echo "== cortex-m: firmware under QEMU"
set +e
qemu "$BUILD/firmware.elf" "$BUILD/firmware.log"
rc=$?
set -e
cat "$BUILD/firmware.log"
if [ $rc -eq 0 ] && tail -1 "$BUILD/firmware.log" | grep -q ' 0 failed$'; then
    passed=$((passed + 1)); echo "ok      firmware"
else
    failed=$((failed + 1)); echo "not ok  firmware (exit $rc)"
fi

echo "== cortex-m: INT8 kernels of the prefix, one call each (bench_qkernels)"
set +e
qemu "$BUILD/bench_qkernels.elf" "$BUILD/bench_qkernels.log"
rc=$?
set -e
cat "$BUILD/bench_qkernels.log"
if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "ok      bench_qkernels"
else
    failed=$((failed + 1)); echo "not ok  bench_qkernels (exit $rc)"
fi

for fw in kws resnet; do   # imported models: kws.c (TFLite INT8), resnet.c (PyTorch via ONNX)
    echo "== cortex-m: $fw firmware under QEMU (an imported model learning)"
    arm-none-eabi-size "$BUILD/$fw.elf"
    set +e
    qemu "$BUILD/$fw.elf" "$BUILD/$fw.log"
    rc=$?
    set -e
    cat "$BUILD/$fw.log"
    if [ $rc -eq 0 ] && tail -1 "$BUILD/$fw.log" | grep -q ' 0 failed$'; then
        passed=$((passed + 1)); echo "ok      $fw"
    else
        failed=$((failed + 1)); echo "not ok  $fw (exit $rc)"
    fi
done

echo "== cortex-m: no double precision in the firmware (the M4F's FPU is single precision)"
if python3 "$PORT/check_no_double.py" "$BUILD/firmware.elf" "$PORT/double_allowed.txt" &&
    python3 "$PORT/check_no_double.py" "$BUILD/kws.elf" "$PORT/double_allowed.txt" | tail -1 &&
    python3 "$PORT/check_no_double.py" "$BUILD/resnet.elf" "$PORT/double_allowed.txt" | tail -1; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

echo "== cortex-m: unit tests on the target"
pids=()
for t in $TESTS; do
    ( set +e; qemu "$BUILD/$t.elf" "$BUILD/$t.log"; echo $? >"$BUILD/$t.rc" ) &  # a failure is reported below, not by set -e
    pids+=($!)
    if [ ${#pids[@]} -ge "$(nproc)" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait
for t in $TESTS; do
    rc=$(cat "$BUILD/$t.rc")
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$BUILD/$t.log" | tail -1 || true)
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1)); echo "ok      $t on target: $line; $(tail -1 "$BUILD/$t.log")"
    else
        failed=$((failed + 1)); echo "not ok  $t on target (exit $rc): $line"
        grep -E 'not ok|FAIL|FAULT' "$BUILD/$t.log" | head -20 || true
    fi
done

echo "== cortex-m: sizes and instruction counts against ports/cortex-m/baseline.txt (+10% allowed)"
{
    arm-none-eabi-size -A "$BUILD/firmware.elf" | awk '
        $1 == ".text" || $1 == ".ARM.exidx" || $1 == ".init_array" || $1 == ".fini_array" || $1 == ".data" { flash += $2 }
        $1 == ".data" || $1 == ".bss" || $1 == ".stack" { ram += $2 }
        END { printf "flash_bytes %d\nram_static_bytes %d\n", flash, ram }'
    arm-none-eabi-size -A "$BUILD/fw/model_data.o" "$BUILD/fw/model8_data.o" "$BUILD/fw/data.o" | awk '$1 ~ /^\.rodata/ { s += $2 } END { printf "flash_data_bytes %d\n", s }'
    arm-none-eabi-size -A "$BUILD/libodl.a" | awk '$1 ~ /^\.text/ || $1 ~ /^\.rodata/ { s += $2 } END { printf "core_code_bytes %d\n", s }'
    grep -h '^COST ' "$BUILD/firmware.log" "$BUILD/bench_qkernels.log" | awk '{ print $2, $3 }'
    for fw in kws resnet; do
        arm-none-eabi-size -A "$BUILD/$fw.elf" | awk -v p="$fw" '
            $1 == ".text" || $1 == ".ARM.exidx" || $1 == ".init_array" || $1 == ".fini_array" || $1 == ".data" { flash += $2 }
            $1 == ".data" || $1 == ".bss" || $1 == ".stack" { ram += $2 }
            END { printf "%s_flash_bytes %d\n%s_ram_static_bytes %d\n", p, flash, p, ram }'
        grep '^COST ' "$BUILD/$fw.log" | awk '{ print $2, $3 }'
    done
} >"$BUILD/measured.txt"
if [ $RECORD = 1 ]; then
    {
        echo "# Recorded by 'bash ports/cortex-m/run.sh --record' ($(arm-none-eabi-gcc -dumpversion), $(qemu-system-arm --version | head -1))."
        echo "# A CI run fails when a value grows more than 10% over the one here. Instructions are"
        echo "# QEMU -icount shift=0 counts (SysTick, calibrated), so they are repeatable."
        cat "$BUILD/measured.txt"
    } >"$PORT/baseline.txt"
    echo "recorded $PORT/baseline.txt"
fi
if python3 "$PORT/check_baseline.py" "$PORT/baseline.txt" "$BUILD/measured.txt"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
echo "cortex-m: $(( $(date +%s) - t_start )) s"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
