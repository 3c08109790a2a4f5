#!/usr/bin/env bash
# tests/tflite_test.sh — TFLite import and export against ArmNN's reference
# backend (python3-pyarmnn, CpuRef), the independent runtime.
#
#   bash tests/tflite_test.sh PATH/TO/odl SOURCE_DIR [MODELS_DIR]
#
# MODELS_DIR holds the MLPerf Tiny reference models (kws_ref_model.tflite,
# ad01_fp32.tflite, ad01_int8.tflite); default: SOURCE_DIR/tests/data/mlperf_tiny,
# or $ODL_TFLITE_MODELS. Without them the fixture checks are skipped (said
# so), the rest still runs.
#
# 1. Fixtures on 100 random inputs each: ad01_fp32 within 1e-4 of the largest
#    output and the reconstruction error ranking the inputs identically;
#    ad01_int8 and the KWS DS-CNN run by odl in int8 (odl predict --int8)
#    against ArmNN's int8 outputs (tolerances in docs/tflite.md: ArmNN's
#    CpuRef requantises through float at every layer, odl with TFLite's
#    integer arithmetic, so one-step differences can add up over depth).
# 2. Round trips: each model exported with odl export --tflite (FP32, and the
#    int8 models also in int8, and an INT8 base with an FP32 head) runs in ArmNN
#    within 1e-4 of odl, and re-imports to bit-identical outputs.
# 3. Adaptation then export: the KWS model with two new classes learned from
#    synthetic data, and a PyTorch CNN (ONNX) adapted on Fashion-MNIST; a
#    3-channel PyTorch model with concat, squeeze-and-excitation, hard swish,
#    average pool and a padding SAME cannot express.
# 3c. INT8 ADD, MUL and CONCATENATION: a PyTorch model with a residual add,
#    a concatenation and a product, quantised by odl, exported in int8 and
#    imported back as int8 nodes; with --int8-head (all int8) against ArmNN.
# 5. The +-1 criterion per layer: every operator of the int8 KWS and
#    autoencoder alone, and single-layer PyTorch models (conv, depthwise,
#    dense, add, mul, avgpool, concat, sigmoid, tanh, hard swish) quantised
#    with --int8-head, each within
#    1 step of ArmNN; whole models within the steps docs/tflite.md measures.
# 4. Hostile files: truncated, bad offsets, vtable and vector out of range,
#    schema version 2, an operator odl does not import: one "odl: " line
#    each, no output file left.
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash tests/tflite_test.sh PATH/TO/odl SOURCE_DIR [MODELS_DIR]" >&2
    exit 2
fi
ODL=$1
SRC=$2
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
MODELS=${3:-${ODL_TFLITE_MODELS:-$SRC/tests/data/mlperf_tiny}}
PY=/usr/bin/python3
ARMNN="$PY $SRC/tests/tflite_armnn.py"
GEN="$PY $SRC/tests/tflite_models.py"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_tflite_test.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2

passed=0
failed=0
ok() { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
run() {
    timeout 300 "$ODL" "$@" >out.txt 2>err.txt
    rc=$?
}
# ArmNN on MODEL: x/ref .npy files and the output's int8 parameters (one process per model)
armnn() { # NAME MODEL
    $ARMNN run "$2" --n 100 --seed 7 --x "$1.x.npy" --ref "$1.ref.npy" --qx "$1.qx.npy" 2>/dev/null | tail -1 >"$1.info"
    [ -s "$1.ref.npy" ] && [ -s "$1.x.npy" ]
}
qparams() { $PY -c "import json,sys; d=json.load(open('$1.info')); print(d['out_scale'], d['out_zp'])"; }
compare() { # NAME ARGS... (the compare's last line is ok/FAIL)
    local name=$1
    shift
    $ARMNN compare "$@" --name "$name" >cmp.txt 2>&1
    sed 's/^/    /' cmp.txt | head -4
    if tail -1 cmp.txt | grep -q '^ok$'; then ok "$name"; else fail "$name" "$(head -1 cmp.txt)"; fi
}

# ArmNN on an all-int8 MODEL's int8 result (the tensor its last DEQUANTIZE
# reads) against odl predict --int8 on ODL (the same file imported)
int8cmp() { # NAME MODEL ODL TOL MIN_WITHIN1
    $GEN int8-out "$2" "$1.o.tflite"
    armnn "$1" "$1.o.tflite" || fail "armnn $1" "no output"
    run predict "$3" --int8 --data "$1.x.npy" -o "$1.odl.npy"
    # shellcheck disable=SC2046
    compare "$1 vs ArmNN (int8, max $4 steps, ${5}+ within 1)" "$1.ref.npy" "$1.odl.npy" --int8 $(qparams "$1") \
        --tol "$4" --min-within1 "$5"
}
# operators FIRST..LAST of MODEL alone, imported by odl as int8, against ArmNN within 1 step
layer() { # NAME MODEL FIRST LAST
    local ops
    ops=$($GEN slice "$2" "$1.tflite" "$3" "$4") || { fail "slice $1" "operators $3..$4"; return; }
    run import "$1.tflite" -o "$1.odl"
    if [ $rc -ne 0 ] || ! grep -q "every node runs in int8" out.txt; then
        fail "$1 imports as int8" "$(cat out.txt err.txt | head -2)"
        return
    fi
    armnn "$1" "$1.tflite" || fail "armnn $1" "no output"
    run predict "$1.odl" --int8 --data "$1.x.npy" -o "$1.odl.npy"
    # shellcheck disable=SC2046
    compare "$1 (operators $3..$4, codes $ops) vs ArmNN within 1 step" "$1.ref.npy" "$1.odl.npy" --int8 $(qparams "$1") --tol 1
}

if ! $PY -c 'import pyarmnn' 2>/dev/null; then
    echo "FAIL setup: python3-pyarmnn is not installed (bash scripts/deps.sh python3-pyarmnn libarmnn-cpuref-backend22)"
    exit 1
fi

# ---- 1. the MLPerf Tiny fixtures -------------------------------------------
if [ -f "$MODELS/ad01_fp32.tflite" ] && [ -f "$MODELS/ad01_int8.tflite" ] && [ -f "$MODELS/kws_ref_model.tflite" ]; then
    run import "$MODELS/ad01_fp32.tflite" -o ad32.odl
    [ $rc -eq 0 ] && ok "import ad01_fp32" || fail "import ad01_fp32" "$(cat err.txt)"
    armnn ad32 "$MODELS/ad01_fp32.tflite" || fail "armnn ad01_fp32" "no output"
    run predict ad32.odl --data ad32.x.npy -o ad32.odl.npy
    compare "ad01_fp32 vs ArmNN (1e-4, ranking)" ad32.ref.npy ad32.odl.npy --rank ad32.x.npy

    run import "$MODELS/ad01_int8.tflite" -o ad8.odl
    if [ $rc -eq 0 ] && grep -q "every node runs in int8" out.txt; then ok "import ad01_int8 (int8)"; else
        fail "import ad01_int8 (int8)" "$(cat out.txt err.txt)"; fi
    armnn ad8 "$MODELS/ad01_int8.tflite" || fail "armnn ad01_int8" "no output"
    run predict ad8.odl --int8 --data ad8.x.npy -o ad8.odl.npy
    # shellcheck disable=SC2046
    compare "ad01_int8 in int8 vs ArmNN (max 3 steps, 99% within 1, Spearman >= 0.999)" ad8.ref.npy ad8.odl.npy \
        --int8 $(qparams ad8) --tol 3 --min-within1 0.99 --rank ad8.x.npy --min-spearman 0.999

    run import "$MODELS/kws_ref_model.tflite" -o kws.odl
    if [ $rc -eq 0 ] && grep -q "every node runs in int8" out.txt; then ok "import kws (int8)"; else
        fail "import kws (int8)" "$(cat out.txt err.txt)"; fi
    armnn kws "$MODELS/kws_ref_model.tflite" || fail "armnn kws" "no output"
    # the logits (the subgraph output moved before the softmax): no softmax amplification
    logits=$($PY -c "
import sys; sys.path.insert(0, '$SRC/tests'); import tflite_models as t
f = t.FB(open('$MODELS/kws_ref_model.tflite', 'rb').read()); sg = f.elem(f.ref(f.u32(0), 2), 0)
ops = f.ref(sg, 3); last = f.elem(ops, f.u32(ops) - 1); ins = f.ref(last, 1); print(f.u32(ins + 4))")
    $GEN repoint "$MODELS/kws_ref_model.tflite" kwsl.tflite "$logits"
    armnn kwsl kwsl.tflite || fail "armnn kws logits" "no output"
    run predict kws.odl --int8 --data kwsl.x.npy -o kwsl.odl.npy
    # shellcheck disable=SC2046
    compare "kws int8 logits vs ArmNN (max 2 steps, 99% within 1)" kwsl.ref.npy kwsl.odl.npy --int8 $(qparams kwsl) \
        --tol 2 --min-within1 0.99
    run predict kws.odl --int8 --softmax --data kws.x.npy -o kws.odl.npy
    # shellcheck disable=SC2046
    compare "kws int8 + float softmax vs ArmNN (same top class on 98%)" kws.ref.npy kws.odl.npy --int8 $(qparams kws) \
        --tol 255 --min-top1 0.98

    # ---- 2. round trips of the fixtures (FP32: the int8 files' FP32 equivalent)
    for m in ad32 kws; do
        sm=""
        [ $m = kws ] && sm=--softmax
        run export $m.odl --fp32 --tflite $m.exp.tflite
        [ $rc -eq 0 ] && [ -s $m.exp.tflite ] || fail "export $m" "$(cat err.txt)"
        armnn ${m}e $m.exp.tflite || fail "armnn export $m" "no output"
        run predict $m.odl $sm --data ${m}e.x.npy -o ${m}e.odl.npy
        compare "$m exported, ArmNN vs odl (1e-4)" ${m}e.ref.npy ${m}e.odl.npy
        run import $m.exp.tflite -o $m.re.odl
        run predict $m.re.odl $sm --data ${m}e.x.npy -o ${m}e.re.npy
        if cmp -s ${m}e.re.npy ${m}e.odl.npy; then ok "$m re-imported: identical outputs"; else
            fail "$m re-imported" "outputs differ"; fi
    done

    # ---- 2b. INT8 export: the int8 layers as int8 operators (then DEQUANTIZE)
    run export ad8.odl --tflite ad8.exp.tflite
    armnn ad8e ad8.exp.tflite || fail "armnn int8 export ad01" "no output"
    run predict ad8.odl --int8 --data ad8e.x.npy -o ad8e.odl.npy
    # shellcheck disable=SC2046
    compare "ad01_int8 exported in int8, ArmNN vs odl (max 3 steps, 99% within 1)" ad8e.ref.npy ad8e.odl.npy \
        --steps "$(qparams ad8 | cut -d' ' -f1)" --tol 3 --min-within1 0.99
    run import ad8.exp.tflite -o ad8.re.odl
    run predict ad8.re.odl --int8 --data ad8e.x.npy -o ad8e.re.npy
    if cmp -s ad8e.re.npy ad8e.odl.npy; then ok "ad01_int8 int8 export re-imported: identical int8 outputs"; else
        fail "ad01_int8 int8 re-import" "outputs differ"; fi
    run export kws.odl --tflite kws8.exp.tflite
    armnn kws8e kws8.exp.tflite || fail "armnn int8 export kws" "no output"
    run predict kws.odl --int8 --softmax --data kws8e.x.npy -o kws8e.odl.npy
    compare "kws exported in int8 (float softmax), ArmNN vs odl (same top class on 98%)" kws8e.ref.npy kws8e.odl.npy \
        --tol 1 --min-top1 0.98
    run import kws8.exp.tflite -o kws8.re.odl
    run predict kws8.re.odl --int8 --softmax --data kws8e.x.npy -o kws8e.re.npy
    if cmp -s kws8e.re.npy kws8e.odl.npy; then ok "kws int8 export re-imported: identical outputs"; else
        fail "kws int8 re-import" "outputs differ"; fi

    # ---- 3a. KWS with two new classes from synthetic data, exported
    $PY -c "
import numpy as np
rng = np.random.default_rng(0); P = rng.standard_normal((14, 490))
with open('syn.csv', 'w') as f:
    for i in range(280):
        c = i % 14
        f.write(','.join([str(c)] + ['%.5f' % v for v in P[c] + 0.5 * rng.standard_normal(490)]) + '\n')"
    run adapt kws.odl --data syn.csv --strategy naive --new-classes --epochs 3 -o kws14.odl
    [ $rc -eq 0 ] || fail "adapt kws --new-classes" "$(cat err.txt)"
    run export kws14.odl --tflite kws14.tflite
    armnn kws14 kws14.tflite || fail "armnn kws14" "no output"
    run predict kws14.odl --softmax --data kws14.x.npy -o kws14.odl.npy
    compare "kws + 2 new classes exported, ArmNN vs odl (1e-4)" kws14.ref.npy kws14.odl.npy
    if $PY -c "import numpy as np; assert np.load('kws14.ref.npy').shape == (100, 14)"; then ok "kws14 has 14 outputs in ArmNN"; else
        fail "kws14 outputs" "not 14"; fi
    # INT8 base (from the imported int8 model) + the trained FP32 head
    run export kws14.odl --int8-base kws.odl --tflite kws14q.tflite
    armnn kws14q kws14q.tflite || fail "armnn kws14 int8 base" "no output"
    run import kws14q.tflite -o kws14q.odl
    if [ $rc -eq 0 ] && grep -q "int8 base: nodes 0..18" out.txt; then ok "kws14 INT8 base + FP32 head re-imported"; else
        fail "kws14 INT8 base re-import" "$(cat out.txt err.txt)"; fi
    run predict kws14q.odl --int8 --softmax --data kws14q.x.npy -o kws14q.odl.npy
    compare "kws + 2 classes, INT8 base + FP32 head, ArmNN vs odl (same top class on 98%)" kws14q.ref.npy \
        kws14q.odl.npy --tol 1 --min-top1 0.98
    # INT8 base + INT8 head (--int8-head, ranges from the adaptation data): all int8
    run export kws14.odl --int8-base kws.odl --int8-head --calib syn.csv --tflite kws14h.tflite
    [ $rc -eq 0 ] && grep -q "int8 head: nodes 19..19" out.txt && ok "kws14 --int8-head exported" || \
        fail "kws14 --int8-head" "$(cat out.txt err.txt)"
    run import kws14h.tflite -o kws14h.odl
    if [ $rc -eq 0 ] && grep -q "every node runs in int8" out.txt; then ok "kws14 INT8 head re-imported all int8"; else
        fail "kws14 INT8 head re-import" "$(cat out.txt err.txt)"; fi
    # the head alone is TFLite-exact against ArmNN; the base's one-step
    # differences before it (ArmNN requantises through float) grow through it
    layer kws14h_head kws14h.tflite 10 10
    layer kws14h_base kws14h.tflite 0 9
    int8cmp kws14h_logits kws14h.tflite kws14h.odl 11 0.96
    armnn kws14hs kws14h.tflite || fail "armnn kws14 int8 head" "no output"
    run predict kws14h.odl --int8 --softmax --data kws14hs.x.npy -o kws14hs.odl.npy
    compare "kws + 2 classes, all int8 (+ float softmax), ArmNN vs odl (same top class on 98%)" kws14hs.ref.npy \
        kws14hs.odl.npy --tol 1 --min-top1 0.98

    # ---- 5. the +-1 criterion layer by layer: every operator of both int8
    # models alone (their own weights and parameters) within 1 step of ArmNN
    for k in 0 1 2 3 4 5 6 7 8 9 11; do layer "kws_op$k" "$MODELS/kws_ref_model.tflite" $k $k; done
    for k in 0 1 2 3 4 5 6 7 8 9; do layer "ad01_op$k" "$MODELS/ad01_int8.tflite" $k $k; done
else
    echo "skip fixtures: $MODELS has no MLPerf Tiny models (set ODL_TFLITE_MODELS)"
fi

# ---- 3b. PyTorch models through ONNX, adapted, exported --------------------
if $PY -c 'import torch, onnx' 2>/dev/null; then
    $GEN torch-cnn cnn.onnx >/dev/null 2>&1 && run import cnn.onnx -o cnn.odl
    [ $rc -eq 0 ] || fail "import torch cnn" "$(cat err.txt)"
    run adapt cnn.odl --data /usr/share/datasets/fashion-mnist --limit 300 --strategy naive --new-classes --epochs 2 -o cnn10.odl
    [ $rc -eq 0 ] || fail "adapt cnn on Fashion-MNIST" "$(cat err.txt)"
    run export cnn10.odl --tflite cnn10.tflite
    armnn cnn10 cnn10.tflite || fail "armnn cnn10" "no output"
    run predict cnn10.odl --data cnn10.x.npy -o cnn10.odl.npy
    compare "PyTorch CNN adapted on Fashion-MNIST (8+2 classes) exported, ArmNN vs odl (1e-4)" cnn10.ref.npy cnn10.odl.npy
    run import cnn10.tflite -o cnn10.re.odl
    run predict cnn10.re.odl --data cnn10.x.npy -o cnn10.re.npy
    if cmp -s cnn10.re.npy cnn10.odl.npy; then ok "cnn10 re-imported: identical outputs"; else fail "cnn10 re-imported" "outputs differ"; fi

    $GEN torch-mix mix.onnx >/dev/null 2>&1 && run import mix.onnx -o mix.odl
    run export mix.odl --tflite mix.tflite
    armnn mix mix.tflite || fail "armnn mix" "no output"
    run predict mix.odl --data mix.x.npy -o mix.odl.npy
    compare "PyTorch 3-channel mix (concat, SE, hard swish, pads) exported, ArmNN vs odl (1e-4)" mix.ref.npy mix.odl.npy
    run import mix.tflite -o mix.re.odl
    run predict mix.re.odl --data mix.x.npy -o mix.re.npy
    if cmp -s mix.re.npy mix.odl.npy; then ok "mix re-imported: identical outputs"; else fail "mix re-imported" "outputs differ"; fi

    # ---- 3c. INT8 ADD, MUL, CONCATENATION: a PyTorch residual/concat/product
    # model quantised by odl, exported in int8, imported back as int8 nodes
    $GEN torch-res res.onnx >/dev/null 2>&1 && run import res.onnx -o res.odl
    [ $rc -eq 0 ] || fail "import torch res" "$(cat err.txt)"
    run quantize res.odl --calib /usr/share/datasets/fashion-mnist -o res8.odl
    run export res8.odl --tflite res8.tflite
    run import res8.tflite -o res8re.odl
    if [ $rc -eq 0 ] && grep -q "int8 base: nodes 0..16" out.txt; then ok "res int8 export: add, concat, mul import as int8"; else
        fail "res int8 import" "$(cat out.txt err.txt)"; fi
    $PY -c "import numpy as np; np.save('resx.npy', np.random.default_rng(3).standard_normal((50, 784)).astype(np.float32))"
    run predict res8.odl --int8 --data resx.npy -o res8.a.npy
    run predict res8re.odl --int8 --data resx.npy -o res8.b.npy
    if cmp -s res8.a.npy res8.b.npy; then ok "res int8 re-imported: identical outputs"; else fail "res int8 re-import" "outputs differ"; fi
    # adapted in FP32, exported over its INT8 base (--int8-base): add, concat, mul int8, the head FP32
    run adapt res.odl --data /usr/share/datasets/fashion-mnist --limit 300 --strategy naive --epochs 1 -o resa.odl
    run export resa.odl --int8-base res8.odl --tflite resa8.tflite
    run import resa8.tflite -o resa8.odl
    if [ $rc -eq 0 ] && grep -q "int8 base: nodes 0..16" out.txt; then ok "res adapted, --int8-base: int8 graph base"; else
        fail "res adapted --int8-base" "$(cat out.txt err.txt)"; fi
    armnn resa8 resa8.tflite || fail "armnn resa8" "no output"
    run predict resa8.odl --int8 --data resa8.x.npy -o resa8.odl.npy
    compare "res adapted, INT8 graph base + FP32 head, ArmNN vs odl (same top class on 98%)" resa8.ref.npy \
        resa8.odl.npy --tol 1 --min-top1 0.98
    run export res.odl --int8-head --calib /usr/share/datasets/fashion-mnist --tflite resh.tflite
    run import resh.tflite -o resh.odl
    if [ $rc -eq 0 ] && grep -q "every node runs in int8" out.txt; then ok "res --int8-head: all int8"; else
        fail "res --int8-head" "$(cat out.txt err.txt)"; fi
    int8cmp res_int8 resh.tflite resh.odl 1 0.8
    rm -f nocal.tflite
    run export res.odl --int8-head --tflite nocal.tflite
    if [ $rc -eq 2 ] && grep -q "needs --calib" err.txt && [ ! -e nocal.tflite ]; then ok "--int8-head without --calib refused"; else
        fail "--int8-head without --calib" "rc $rc: $(cat err.txt)"; fi
    # an INT8 base with an FP32 head (odl quantize's) gets its head quantised
    run export res8.odl --int8-head --calib /usr/share/datasets/fashion-mnist --tflite res8h.tflite
    run import res8h.tflite -o res8h.odl
    if [ $rc -eq 0 ] && grep -q "every node runs in int8" out.txt; then ok "res8 --int8-head: all int8"; else
        fail "res8 --int8-head" "$(cat out.txt err.txt)"; fi
    int8cmp res8_int8 res8h.tflite res8h.odl 1 0.8
    run export resh.odl --tflite resh2.tflite
    run import resh2.tflite -o resh2.odl
    run predict resh.odl --int8 --data resx.npy -o resh.a.npy
    run predict resh2.odl --int8 --data resx.npy -o resh.b.npy
    if cmp -s resh.a.npy resh.b.npy; then ok "res all-int8 export re-imported: identical outputs"; else
        fail "res all-int8 re-import" "outputs differ"; fi

    # ---- 5b. single-layer int8 models (PyTorch, quantised by --int8-head)
    $GEN calib-csv cal432.csv 300 432 1
    for kind in conv depthwise dense add mul avgpool concat sigmoid tanh hardswish; do
        $GEN torch-single $kind one_$kind.onnx >/dev/null 2>&1 && run import one_$kind.onnx -o one_$kind.odl
        run export one_$kind.odl --int8-head --calib cal432.csv --tflite one_$kind.tflite
        [ $rc -eq 0 ] || { fail "single $kind export" "$(cat err.txt)"; continue; }
        run import one_$kind.tflite -o one8_$kind.odl
        grep -q "every node runs in int8" out.txt || { fail "single $kind int8 import" "$(cat out.txt err.txt)"; continue; }
        int8cmp "single_$kind" one_$kind.tflite one8_$kind.odl 1 1
        case $kind in sigmoid|tanh|hardswish) # the int8 import exports back as int8: the same outputs
            run export one8_$kind.odl --tflite rt_$kind.tflite
            [ $rc -eq 0 ] && run import rt_$kind.tflite -o rt_$kind.odl
            run predict rt_$kind.odl --int8 --data "single_$kind.x.npy" -o rt_$kind.npy
            if [ $rc -eq 0 ] && grep -q "every node runs in int8" <("$ODL" import rt_$kind.tflite -o rt_$kind.odl 2>&1) &&
                cmp -s rt_$kind.npy "single_$kind.odl.npy"; then ok "single $kind: int8 import exported and re-imported, identical"
            else fail "single $kind int8 round trip" "$(cat err.txt)"; fi ;;
        esac
    done
    # an INT8 sigmoid whose output parameters TFLite's LOGISTIC does not take is refused by the writer
    if [ -f one8_sigmoid.odl ]; then
        $PY - one8_sigmoid.odl badsig.odl <<'PY'
import struct, sys, zlib
b = bytearray(open(sys.argv[1], "rb").read())
# the QLAY chunk of node 0 (chunks after the 16-byte header: type, crc, length,
# payload padded to 16): its output scale (payload offset 12) 1/256 -> 1/200
i = 16
while b[i:i + 4] != b"QLAY":
    i += 16 + ((struct.unpack_from("<Q", b, i + 8)[0] + 15) & ~15)
p, n = i + 16, struct.unpack_from("<Q", b, i + 8)[0]
assert struct.unpack_from("<I", b, p)[0] == 0 and struct.unpack_from("<f", b, p + 12)[0] == 1.0 / 256
struct.pack_into("<f", b, p + 12, 1.0 / 200)
struct.pack_into("<I", b, i + 4, zlib.crc32(bytes(b[p:p + n]), zlib.crc32(bytes(b[i:i + 4] + b[i + 8:i + 16]))))
open(sys.argv[2], "wb").write(bytes(b))
PY
        run export badsig.odl --tflite badsig.tflite
        if [ $rc -ne 0 ] && grep -q "node 0 (sigmoid): int8 output scale 0.005" err.txt && [ ! -e badsig.tflite ]; then
            ok "an int8 sigmoid with other output parameters is refused: $(cut -c1-100 err.txt)"
        else fail "int8 sigmoid with other parameters" "rc $rc: $(cat out.txt err.txt)"; fi
    fi
else
    fail "torch" "python3-torch / python3-onnx missing"
fi

# ---- 4. hostile files --------------------------------------------------------
src=mix.tflite
[ -f "$MODELS/kws_ref_model.tflite" ] && src="$MODELS/kws_ref_model.tflite"
if [ -f "$src" ]; then
    last=$($GEN hostile "$src" hostile)
    for f in hostile/*.tflite; do
        name=$(basename "$f" .tflite)
        rm -f h.odl
        run import "$f" -o h.odl
        lines=$(wc -l <err.txt)
        if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -q '^odl: ' err.txt && [ ! -e h.odl ]; then
            ok "hostile $name: $(cut -c1-110 err.txt)"
        else
            fail "hostile $name" "rc $rc, $lines error lines, output left: $([ -e h.odl ] && echo yes || echo no)"
        fi
    done
    if grep -q "operator $last (SPLIT)" <("$ODL" import hostile/unsupported_op.tflite -o h.odl 2>&1); then
        ok "unsupported operator named with its index"
    else
        fail "unsupported operator" "the error does not name operator $last (SPLIT)"
    fi
    printf 'xxxxTFL3' >tiny.tflite
    run import tiny.tflite -o h.odl
    [ $rc -ne 0 ] && grep -q '^odl: ' err.txt && ok "8-byte file refused" || fail "8-byte file" "rc $rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
