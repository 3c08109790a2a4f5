#!/usr/bin/env bash
# tests/imported_flows_test.sh — every flow after import works on an
# imported model: a PyTorch residual network with batch norm (trained for
# a few seconds on Fashion-MNIST classes 0-7, tests/imported_res_model.py),
# imported from ONNX, and the same model exported to TFLite and imported
# back. On each:
#   odl adapt --new-classes --unfreeze 1   classes 8, 9 learnt: the all-10
#                                          accuracy rises, the file re-loads
#   odl session (an event log)             classes 8, 9 taught: the update is
#                                          accepted, the saved version re-loads
#                                          with a higher all-10 accuracy
#   odl quantize --calib                   INT8 within 1 point of FP32 (odl
#                                          predict --int8 on 2,000 test samples)
#   odl export-c                           the C array compiles, holds the file
#   Python odl.import_model + Learner      feedback, a gated update, save, load
# and an INT8 TFLite import (the quantised model exported in int8): the same
# INT8 outputs, adapt --unfreeze 1, export over its INT8 base, export-c.
#
#   bash tests/imported_flows_test.sh PATH/TO/odl SOURCE_DIR
#
# Needs Fashion-MNIST (ODL_FASHION_DIR) and python3-torch / python3-onnx;
# ODL_NO_PYTHON=1 skips the binding's checks (sanitised builds). The last
# line is "N passed, N failed".
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash tests/imported_flows_test.sh PATH/TO/odl SOURCE_DIR" >&2
    exit 2
fi
ODL=$1
SRC=$2
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
PY=/usr/bin/python3
FASHION=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$FASHION/train-images-idx3-ubyte" ] && [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
    echo "imported_flows_test.sh: no Fashion-MNIST at $FASHION (set ODL_FASHION_DIR)" >&2
    exit 1
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_imported_flows.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1: $2"; }
run() { "$ODL" "$@" >out.txt 2>err.txt; rc=$?; }
# accuracy (percent) of MODEL on the test split: eval's first line
acc() { # MODEL [eval options...]
    "$ODL" eval "$@" --data "$FASHION" 2>/dev/null | sed -nE '1s/^accuracy ([0-9.]+)%.*/\1/p'
}
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

if ! $PY -c 'import torch, onnx' 2>/dev/null; then
    echo "FAIL setup: python3-torch / python3-onnx missing"
    exit 1
fi
$PY "$SRC/tests/imported_res_model.py" "$FASHION" res.onnx >gen.txt 2>&1 || { bad "generate" "$(tail -3 gen.txt)"; echo "0 passed, 1 failed"; exit 1; }
run import res.onnx -o onnx.odl
[ $rc -eq 0 ] && ok "import the ONNX residual network" || bad "import onnx" "$(cat err.txt)"
run export onnx.odl --tflite res.tflite
[ $rc -eq 0 ] && run import res.tflite -o tflite.odl
[ $rc -eq 0 ] && ok "export it to TFLite and import that" || bad "tflite round trip" "$(cat err.txt)"

# a CSV of user examples: rows of NAME's classes from the training split
$PY - "$FASHION" <<'PY' || bad "user data" "python failed"
import gzip, os, sys
import numpy as np
d = sys.argv[1]
def idx(stem):
    p = os.path.join(d, stem)
    p = p if os.path.exists(p) else p + ".gz"
    b = (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * k:8 + 4 * k], "big") for k in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)
x = idx("train-images-idx3-ubyte").reshape(-1, 784) / 255.0
y = idx("train-labels-idx1-ubyte")
rng = np.random.default_rng(3)
new = rng.permutation(np.flatnonzero(y >= 8))[:300]
old = rng.permutation(np.flatnonzero(y < 8))[:600]
for name, rows in (("new.csv", new), ("old.csv", old)):
    with open(name, "w") as f:
        for i in rows:
            f.write("%d," % y[i] + ",".join("%.4f" % v for v in x[i]) + "\n")
tx, ty = idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte")
np.save("test_x.npy", (tx[:2000] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28))
np.save("test_y.npy", ty[:2000].astype(np.int64))
# a session's event log: 200 predictions, then the user labels 64 examples
# of the two classes the model does not know (test split 2000+), an update
# learns them, the version is saved
with open("events.csv", "w") as f:
    f.write("# imported model: the user teaches classes 8 and 9\n")
    for i in range(200):
        f.write("predict,orig,%d\n" % i)
    for i in [j for j in range(2000, len(ty)) if ty[j] >= 8][:64]:
        f.write("label,orig,%d,%d\n" % (i, ty[i]))
    f.write("update\nsave,session-v2.odl\n")
PY
# accuracy (percent) on test_x.npy's classes 0-7 from odl predict [--int8]
acc_npy() { # MODEL [--int8]
    "$ODL" predict "$@" --data test_x.npy -o pred.npy >/dev/null 2>&1 || return
    $PY -c 'import numpy as np; p, y = np.load("pred.npy"), np.load("test_y.npy"); k = y < 8
print("%.2f" % (100 * (p[k].argmax(1) == y[k]).mean()))'
}

for m in onnx tflite; do
    M=$m.odl
    [ -f "$M" ] || { bad "$m" "no imported model"; continue; }
    # an 8-class model: on all 10 test classes (1,000 each) it is right on 8/10 of what it knows at most
    base8=$(acc "$M" --classes 0-7)
    base=$(awk -v a="$base8" 'BEGIN { printf "%.2f", a * 0.8 }')
    [ -n "$base8" ] && gt "$base8" 60 && ok "$m: imported model knows classes 0-7 ($base8%; $base% on all 10)" ||
        bad "$m: base accuracy" "'$base8' on classes 0-7"

    # ---- adapt: new classes 8, 9 with replay, one layer below the head unfrozen
    run adapt "$M" --data new.csv --replay-from old.csv --new-classes --unfreeze 1 --epochs 4 --seed 0 -o "$m-a.odl"
    if [ $rc -ne 0 ]; then
        bad "$m: adapt --unfreeze 1" "$(cat err.txt)"
    else
        a=$(acc "$m-a.odl")
        [ -n "$a" ] && gt "$a" "$base" && gt "$a" 55 && ok "$m: adapt --new-classes --unfreeze 1: all-10 accuracy $base% -> $a%" ||
            bad "$m: adapt gains nothing" "$base -> '$a'"
        # the unfrozen layer moved, the one below did not: compare parameters
        "$ODL" info "$m-a.odl" >info.txt 2>&1 && grep -qi "trainable" info.txt && ok "$m: the adapted file re-loads (odl info)" ||
            bad "$m: adapted file" "$(head -3 info.txt)"
    fi

    # ---- session: an event log in which the user teaches classes 8 and 9
    mkdir -p "sess-$m"
    run session --model "$M" --data "$FASHION" --events events.csv --max-classes 10 --quiet --out-dir "sess-$m"
    if [ $rc -eq 0 ] && grep -q "update accepted" out.txt && [ -f "sess-$m/session-v2.odl" ]; then
        s10=$(acc "sess-$m/session-v2.odl")
        [ -n "$s10" ] && gt "$s10" "$base" && ok "$m: session accepts the update; the saved version re-loads: all-10 $base% -> $s10%" ||
            bad "$m: session's saved version" "all-10 $base -> '$s10'"
    else
        bad "$m: session" "rc $rc: $(tail -3 out.txt) $(cat err.txt)"
    fi

    # ---- quantize: INT8 within 1 point of FP32 on the test slice
    run quantize "$M" --calib "$FASHION" -o "$m-q.odl"
    if [ $rc -ne 0 ]; then
        bad "$m: quantize --calib" "$(cat err.txt)"
    else
        f=$(acc_npy "$m-q.odl")
        q=$(acc_npy "$m-q.odl" --int8)
        [ -n "$f" ] && [ -n "$q" ] && within "$q" "$f" 1 && grep -q "quantised layers 0\.\." out.txt &&
            ok "$m: quantize: INT8 $q% vs FP32 $f% (test samples 0-1999 of classes 0-7)" ||
            bad "$m: quantize" "INT8 '$q' vs FP32 '$f'"
    fi

    # ---- export-c: the array compiles and holds the file
    run export-c "$M" -o "$m.c" --name imported_model --header "$m.h"
    if [ $rc -eq 0 ] && cc -std=c11 -Wall -Werror -c "$m.c" -o "$m.o" 2>cc.txt; then
        n=$(grep -oE '[0-9]+' <<<"$(grep -m1 -E 'imported_model_len|_len *=' "$m.c")" | tail -1)
        ok "$m: export-c compiles ($(stat -c %s "$M") bytes of .odl${n:+, array length $n})"
    else
        bad "$m: export-c" "rc $rc: $(cat err.txt cc.txt 2>/dev/null | head -3)"
    fi
done

# ---- an INT8 TFLite import: the quantised model exported in int8, imported
# back as an INT8 base, adapted, exported again over the same INT8 base
if [ -f onnx-q.odl ]; then
    run export onnx-q.odl --tflite q8.tflite
    [ $rc -eq 0 ] && run import q8.tflite -o q8.odl
    if [ $rc -eq 0 ] && grep -q "int8 base: nodes 0\.\." out.txt; then
        a=$(acc_npy onnx-q.odl --int8)
        b=$(acc_npy q8.odl --int8)
        [ -n "$a" ] && [ "$a" = "$b" ] && ok "int8 tflite: imported as an INT8 base, the same INT8 accuracy ($a%)" ||
            bad "int8 tflite import" "INT8 '$a' before export, '$b' after"
        base8=$(acc q8.odl --classes 0-7)
        base=$(awk -v a="$base8" 'BEGIN { printf "%.2f", a * 0.8 }')
        run adapt q8.odl --data new.csv --replay-from old.csv --new-classes --unfreeze 1 --epochs 4 --seed 0 -o q8-a.odl
        a10=$([ $rc -eq 0 ] && acc q8-a.odl)
        [ -n "$a10" ] && gt "$a10" "$base" && ok "int8 tflite: adapt --new-classes --unfreeze 1: all-10 $base% -> $a10%" ||
            bad "int8 tflite: adapt" "rc $rc, $base -> '$a10': $(cat err.txt)"
        run export q8-a.odl --int8-base q8.odl --tflite q8-a.tflite
        [ $rc -eq 0 ] && run import q8-a.tflite -o q8-a2.odl
        r10=$([ $rc -eq 0 ] && "$ODL" predict q8-a2.odl --int8 --data test_x.npy -o p.npy >/dev/null 2>&1 &&
              $PY -c 'import numpy as np; print("%.2f" % (100 * (np.load("p.npy").argmax(1) == np.load("test_y.npy")).mean()))')
        [ -n "$r10" ] && gt "$r10" "$base" && ok "int8 tflite: the adapted model exported over its INT8 base re-imports (INT8 base + FP32 head: $r10% on all 10, test samples 0-1999)" ||
            bad "int8 tflite: adapted export" "rc $rc, '$r10': $(cat err.txt)"
        run export-c q8.odl -o q8.c
        [ $rc -eq 0 ] && cc -std=c11 -Wall -Werror -c q8.c -o q8.o 2>cc.txt && ok "int8 tflite: export-c compiles" ||
            bad "int8 tflite: export-c" "$(cat err.txt cc.txt 2>/dev/null | head -3)"
    else
        bad "int8 tflite export and import" "rc $rc: $(cat out.txt err.txt | tail -3)"
    fi
fi

# ---- Python: odl.import_model of the ONNX file and of the TFLite one, a Learner
# the binding loads libodl_py.so from beside the tool (not in a sanitised build)
export ODL_LIBRARY
ODL_LIBRARY=$(dirname "$ODL")
PYDIR=$SRC/python
if [ -n "${ODL_NO_PYTHON:-}" ]; then
    echo "skip python: ODL_NO_PYTHON is set (a sanitised build: python3 cannot load its library)"
elif [ ! -e "$ODL_LIBRARY/libodl_py.so" ]; then
    bad "python" "no libodl_py.so beside $ODL"
elif ODL_TOOL=$ODL PYTHONPATH=$PYDIR $PY -c 'import odl' 2>/dev/null; then
    # --unfreeze 1 counts parameterised nodes back from the head: the dense
    # layer below it learnt, every convolution below that kept its weights
    for m in onnx tflite; do
        [ -f "$m-a.odl" ] || continue
        if PYTHONPATH=$PYDIR $PY - "$m.odl" "$m-a.odl" >py.txt 2>&1 <<'PY'
import sys
import numpy as np
import odl
a = odl.load(sys.argv[1]).get_weights(trainable_only=False)
b = odl.load(sys.argv[2]).get_weights(trainable_only=False)
assert len(a) == len(b) >= 6, (len(a), len(b))
assert a[-2].shape[0] == 8 and b[-2].shape[0] == 10, (a[-2].shape, b[-2].shape)  # the head grew
moved = not np.array_equal(a[-4], b[-4]) and not np.array_equal(a[-3], b[-3])
kept = all(np.array_equal(x, y) for x, y in zip(a[:-4], b[:-4]))
assert moved and kept, (moved, kept)
print("head grown 8 -> 10 outputs, the dense layer below changed, %d tensors below unchanged" % (len(a) - 4))
PY
        then ok "$m: --unfreeze 1: $(tail -1 py.txt)"; else bad "$m: --unfreeze 1" "$(tail -3 py.txt)"; fi
    done
    for f in res.onnx res.tflite; do
        if ODL_TOOL=$ODL PYTHONPATH=$PYDIR $PY - "$f" "$ODL" >py.txt 2>&1 <<'PY'
import sys
import numpy as np
import odl
m = odl.import_model(sys.argv[1], tool=sys.argv[2])
x, y = np.load("test_x.npy"), np.load("test_y.npy")
old = y < 8
acc0 = m.evaluate(x[old], y[old])["accuracy"]
assert acc0 > 0.6, acc0
L = odl.Learner(m, seed=0, drift=False)
L.seed(x[old][:300], y[old][:300])
# feedback on classes the model already knows (drifted: gain 0.7, +0.2)
sh = np.clip(x[old][300:500] * 0.7 + 0.2, 0, 1).astype(np.float32)
before = m.evaluate(sh[120:], y[old][420:500])["accuracy"]
L.feedback(sh[:120], y[old][300:420])
u = L.update()
assert u.accepted, u.decision
L.save("learner.odl")
m2 = odl.load("learner.odl")
acc1 = m2.evaluate(sh[120:], y[old][420:500])["accuracy"]
assert acc1 >= before, (before, acc1)
print("import %s: accuracy %.3f; Learner: %s; saved, re-loaded: drifted held-out %.3f -> %.3f"
      % (sys.argv[1], acc0, u.decision, before, acc1))
PY
        then ok "python: $(tail -1 py.txt)"; else bad "python $f" "$(tail -5 py.txt)"; fi
    done
else
    bad "python" "the odl package does not load (ODL_TOOL=$ODL PYTHONPATH=$PYDIR ODL_LIBRARY=$ODL_LIBRARY)"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
