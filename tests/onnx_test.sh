#!/usr/bin/env bash
# tests/onnx_test.sh — odl import and odl predict end to end.
#
#   bash tests/onnx_test.sh PATH/TO/odl SOURCE_DIR
#
# 1. Models odl must refuse (tests/onnx_models.py writes them): each is one
#    "odl: " line naming the node, tensor or input and what is missing;
#    truncated, garbage and oversized files too; no output file is left.
# 2. Models it must import: --head auto and --head TENSOR (a cut point, or
#    an error listing them), the tensor names kept in the file.
# 3. A small residual CNN, a DS-CNN and a squeeze-and-excitation block
#    exported from PyTorch at test time
#    (random weights, batch norm with non-trivial statistics, eval mode):
#    odl predict on 50 random inputs matches PyTorch within 1e-4 of the
#    largest output magnitude, as .npy and as CSV; --softmax gives
#    probabilities.
# Prints "ok NAME" / "FAIL NAME: WHY"; exits non-zero if anything failed.
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash tests/onnx_test.sh PATH/TO/odl SOURCE_DIR" >&2
    exit 2
fi
ODL=$1
SRC=$2
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
PY=/usr/bin/python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_onnx_test.XXXXXX") || exit 2
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

# expect_error NAME NEEDLE... -- ARGS: one "odl: " line on stderr holding
# every NEEDLE, a non-zero exit below 124 (no crash), no output file.
expect_error() {
    local name=$1
    shift
    local needles=()
    while [ "$1" != "--" ]; do
        needles+=("$1")
        shift
    done
    shift
    rm -f out.odl
    run "$@"
    local line
    line=$(cat err.txt)
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 124 ]; then
        fail "$name" "exit status $rc: $(head -c 300 err.txt)"
        return
    fi
    if [ "$(wc -l <err.txt)" -ne 1 ] || [ "${line#odl: }" = "$line" ]; then
        fail "$name" "not one 'odl: ' line: $(head -c 300 err.txt | tr '\n' '|')"
        return
    fi
    for n in "${needles[@]}"; do
        case $line in *"$n"*) ;; *) fail "$name" "'$line' does not mention '$n'"; return ;; esac
    done
    if [ -e out.odl ] || [ -e out.odl.tmp ]; then
        fail "$name" "an output file was left behind"
        return
    fi
    ok "$name"
}

if ! $PY "$SRC/tests/onnx_models.py" "$WORK" >py.txt 2>&1; then
    echo "FAIL onnx_models.py: $(tail -3 py.txt)"
    exit 1
fi

# 1. refusals
expect_error unsupported_op "node 0 'the_erf'" "Erf" "not supported" -- import bad_op.onnx -o out.odl
expect_error unsupported_attr "'the_conv'" "attribute 'foo'" -- import bad_attr.onnx -o out.odl
expect_error pool_dilation "'the_maxpool'" "MaxPool" "dilations" -- import bad_pool_dilation.onnx -o out.odl
expect_error external_data "'wext'" "external" -- import bad_external.onnx -o out.odl
expect_error float16 "'w16'" "float16" -- import bad_float16.onnx -o out.odl
expect_error dynamic_shape "'x'" "dynamic" "--input-shape" -- import bad_dynamic.onnx -o out.odl
expect_error fixed_batch "batch of 8" -- import bad_batch.onnx -o out.odl
expect_error huge_dims "100000000" -- import bad_huge.onnx -o out.odl
expect_error rank5 "rank 5" -- import bad_rank5.onnx -o out.odl
expect_error old_opset "opset 8" "9 to 17" -- import bad_opset.onnx -o out.odl
expect_error new_opset "opset 18" -- import bad_opset18.onnx -o out.odl
expect_error matmul_two_tensors "'mm'" "MatMul" -- import bad_matmul.onnx -o out.odl
expect_error input_shape_rank "does not fit" -- import ok_mlp.onnx -o out.odl --input-shape 6x2x1
expect_error input_shape_conflict "fixes at 16" -- import ok_cnn.onnx -o out.odl --input-shape 1x16x17
# the dynamic model imports once its shape is given
run import bad_dynamic.onnx -o dyn.odl --input-shape 3x5x7
if [ "$rc" -eq 0 ] && grep -q "input 3x5x7" out.txt; then ok dynamic_shape_fixed; else
    fail dynamic_shape_fixed "rc $rc: $(head -c 300 err.txt)"; fi
# broken files
head -c 200 ok_cnn.onnx >trunc.onnx
expect_error truncated "trunc.onnx" -- import trunc.onnx -o out.odl
head -c 4096 /dev/urandom >garbage.onnx
printf '\x08\x07\x12\xff\xff\xff\xff\x0f' >badlen.onnx
expect_error bad_length "badlen.onnx" -- import badlen.onnx -o out.odl
run import garbage.onnx -o out.odl
if [ "$rc" -ne 0 ] && [ "$rc" -lt 124 ] && [ ! -e out.odl ]; then ok garbage; else fail garbage "rc $rc"; fi
printf 'xxxxTFL3xxxxxxxx' >model.tflite
# a TFLite file goes to the TFLite reader, which names the bad table
expect_error tflite "model.tflite" "table at byte" "outside" -- import model.tflite -o out.odl
: >empty.onnx
expect_error empty "empty.onnx" -- import empty.onnx -o out.odl
cp ok_cnn.onnx big.onnx
truncate -s 2M big.onnx
expect_error size_limit2 "limit" -- import big.onnx -o out.odl --max-mb 1
expect_error missing_file "nope.onnx" -- import nope.onnx -o out.odl
expect_error head_not_found "--head nope" "cut points" "prob" -- import ok_cnn.onnx -o out.odl --head nope
expect_error head_not_cut "not a cut point" -- import ok_cnn.onnx -o out.odl --head hs

# 2. imports
for m in ok_cnn ok_cnn_opset11 ok_mlp; do
    run import $m.onnx -o $m.odl
    if [ "$rc" -eq 0 ] && [ -s $m.odl ]; then ok "import_$m"; else fail "import_$m" "rc $rc: $(head -c 300 err.txt)"; fi
done
run import ok_cnn.onnx -o head.odl --head flat
if [ "$rc" -eq 0 ] && grep -q "tensor .* 'flat'" out.txt; then ok head_tensor; else fail head_tensor "rc $rc: $(cat out.txt err.txt | head -c 300)"; fi
if grep -aq "hsw" ok_cnn.odl && grep -aq "prob" ok_cnn.odl; then ok names_kept; else fail names_kept "no ONNX tensor name in the .odl file"; fi
run import ok_cnn.onnx --help
if [ "$rc" -eq 0 ] && grep -q "usage: odl import" out.txt; then ok import_help; else fail import_help "rc $rc"; fi
run predict --help
if [ "$rc" -eq 0 ] && grep -q "usage: odl predict" out.txt; then ok predict_help; else fail predict_help "rc $rc"; fi

# the same model from opsets 13 and 11 predicts the same
run predict ok_cnn.odl --data x_cnn.npy -o p13.npy --softmax
r1=$rc
run predict ok_cnn_opset11.odl --data x_cnn.npy -o p11.npy --softmax
if [ "$r1" -eq 0 ] && [ "$rc" -eq 0 ] && $PY - <<'EOF'; then ok predict_opsets_agree; else fail predict_opsets_agree "rc $r1/$rc: $(head -c 300 err.txt)"; fi
import numpy as np, sys
a, b = np.load("p13.npy"), np.load("p11.npy")
assert a.shape == (7, 5) and a.dtype == np.float32, (a.shape, a.dtype)
assert np.allclose(a.sum(1), 1, atol=1e-5), "softmax model: rows should sum to 1"
assert np.array_equal(a, b)
EOF
run import ok_concat10.onnx -o cat.odl
r1=$rc
run predict cat.odl --data x_cat.npy -o pcat.npy
if [ "$r1" -eq 0 ] && [ "$rc" -eq 0 ] && $PY - <<'EOF'; then ok concat10; else fail concat10 "rc $r1/$rc: $(head -c 300 err.txt)"; fi
import numpy as np
x, y = np.load("x_cat.npy"), np.load("pcat.npy")
want = np.concatenate([x * (k + 1) for k in range(10)], 1).reshape(4, -1)
assert y.shape == want.shape and np.array_equal(y, want), "the 10-way concat differs"
EOF
expect_error predict_shape "x_cnn.npy" "6x1x1" -- predict ok_mlp.odl --data x_cnn.npy
expect_error predict_out_ext "must end in .npy or .csv" -- predict ok_mlp.odl --data x_mlp.npy -o out.txt
# hostile .npy inputs: each refused with the file named, nothing written
$PY - <<'EOF'
import numpy as np
np.save("f64.npy", np.zeros((2, 6)))
np.save("fortran.npy", np.asfortranarray(np.zeros((2, 6), np.float32)))
np.save("scalar.npy", np.float32(1))
np.save("int.npy", np.zeros((2, 6), np.int32))
good = open("x_mlp.npy", "rb").read()
open("cut.npy", "wb").write(good[:-5])
open("longer.npy", "wb").write(good + b"xxxx")
open("magic.npy", "wb").write(b"\x93NUMPX" + good[6:])
h = good.replace(b"(5, 6)", b"(99999999999, 6)")
open("huge.npy", "wb").write(h)
EOF
for f in f64:float32 fortran:Fortran scalar:scalar int:float32 cut:bytes longer:bytes magic:magic huge:; do
    expect_error "npy_${f%%:*}" "${f%%:*}.npy" ${f#*:} -- predict ok_mlp.odl --data "${f%%:*}.npy" -o p.npy
    [ -e p.npy ] && fail "npy_${f%%:*}_output" "an output file was written"
done
run predict ok_mlp.odl --data x_mlp.npy -o p_mlp.csv
if [ "$rc" -eq 0 ] && [ "$(wc -l <p_mlp.csv)" -eq 5 ] && [ "$(head -1 p_mlp.csv | tr ',' '\n' | wc -l)" -eq 3 ]; then
    ok predict_csv_shape; else fail predict_csv_shape "rc $rc: $(head -c 300 err.txt)"; fi

# 3. PyTorch
if ! $PY -c "import torch" 2>/dev/null; then
    fail pytorch "python3-torch is not installed (bash scripts/deps.sh python3-torch)"
else
    cat >export.py <<'EOF'
import numpy as np, torch, torch.nn as nn
torch.manual_seed(0)
class Block(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                            nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c), nn.Hardswish())
    def forward(s, x):
        return torch.relu(x + s.a(x))
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        # ZeroPad2d: from opset 11 PyTorch exports its pads as a chain of constants
        s.stem = nn.Sequential(nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(1, 8, 3, stride=2, padding=1),
                               nn.BatchNorm2d(8), nn.ReLU6())
        s.b = Block(8)
        s.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 1), nn.Hardsigmoid())
        s.pool = nn.MaxPool2d(2, ceil_mode=True)
        s.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * 4 * 4, 16), nn.LeakyReLU(0.1), nn.Linear(16, 10))
    def forward(s, x):
        x = s.b(s.stem(x))
        x = x * s.se(x)
        return s.head(s.pool(x))
m = Net().eval()
for mod in m.modules():
    if isinstance(mod, nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2.0)
        mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.5, 0.5)
x = torch.randn(1, 1, 14, 14)
torch.onnx.export(m, x, "torch.onnx", opset_version=13, input_names=["image"], output_names=["logits"],
                  dynamic_axes={"image": {0: "batch"}})
xs = torch.randn(50, 1, 14, 14)
np.save("xt.npy", xs.numpy())
with torch.no_grad():
    np.save("yt.npy", m(xs).numpy())
# a keyword-spotting DS-CNN: conv+BN+ReLU chains (depthwise, pointwise)
torch.manual_seed(1)
def bn(c):
    b = nn.BatchNorm2d(c)
    b.running_mean.uniform_(-0.3, 0.3); b.running_var.uniform_(0.5, 1.5)
    b.weight.data.uniform_(0.5, 1.5); b.bias.data.uniform_(-0.3, 0.3)
    return b
layers = [nn.Conv2d(1, 16, (10, 4), stride=(2, 2), padding=(5, 1)), bn(16), nn.ReLU()]
for _ in range(2):
    layers += [nn.Conv2d(16, 16, 3, padding=1, groups=16), bn(16), nn.ReLU(),
               nn.Conv2d(16, 16, 1), bn(16), nn.ReLU()]
layers += [nn.Dropout(0.4), nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(16, 12)]
ds = nn.Sequential(*layers).eval()
torch.onnx.export(ds, torch.randn(1, 1, 49, 10), "dscnn.onnx", opset_version=13, input_names=["mfcc"],
                  output_names=["logits"], dynamic_axes={"mfcc": {0: "batch"}})
xs = torch.randn(50, 1, 49, 10)
np.save("xd.npy", xs.numpy())
with torch.no_grad():
    np.save("yd.npy", ds(xs).numpy())
# squeeze-and-excitation on a conv+ReLU output (MobileNetV3's block): the
# ReLU's output is read twice (the pooling and the product)
torch.manual_seed(2)
class SE(nn.Module):
    def __init__(s):
        super().__init__()
        s.c = nn.Conv2d(3, 16, 3, padding=1); s.f1 = nn.Conv2d(16, 8, 1); s.f2 = nn.Conv2d(8, 16, 1)
        s.fc = nn.Linear(16, 4)
    def forward(s, x):
        x = torch.relu(s.c(x))
        w = torch.sigmoid(s.f2(torch.relu(s.f1(x.mean((2, 3), keepdim=True)))))
        return s.fc((x * w).mean((2, 3)))
se = SE().eval()
torch.onnx.export(se, torch.randn(1, 3, 24, 24), "se.onnx", opset_version=13, input_names=["x"],
                  output_names=["logits"], dynamic_axes={"x": {0: "batch"}})
xs = torch.randn(50, 3, 24, 24)
np.save("xs.npy", xs.numpy())
with torch.no_grad():
    np.save("ys.npy", se(xs).numpy())
EOF
    if ! $PY export.py >export.txt 2>&1; then
        fail pytorch_export "$(grep -v Warning export.txt | tail -3)"
    else
        run import torch.onnx -o torch.odl
        if [ "$rc" -ne 0 ]; then fail pytorch_import "$(head -c 300 err.txt)"; else
            ok pytorch_import
            run predict torch.odl --data xt.npy -o pt.npy
            r1=$rc
            run predict torch.odl --data xt.npy -o pt.csv
            r2=$rc
            run predict torch.odl --data xt.npy --softmax --json
            r3=$rc
            cp out.txt soft.json
            if [ "$r1" -ne 0 ] || [ "$r2" -ne 0 ] || [ "$r3" -ne 0 ]; then
                fail pytorch_predict "rc $r1/$r2/$r3: $(head -c 300 err.txt)"
            elif $PY - <<'EOF'; then ok pytorch_match; else fail pytorch_match "see above"; fi
import json, numpy as np
want = np.load("yt.npy")
got = np.load("pt.npy")
csv = np.loadtxt("pt.csv", delimiter=",", dtype=np.float32, ndmin=2)
soft = np.array(json.load(open("soft.json"))["rows"], dtype=np.float64)
assert got.shape == want.shape == csv.shape, (got.shape, want.shape, csv.shape)
err = np.abs(got - want).max()
tol = 1e-4 * np.abs(want).max()
print(f"max abs error {err:.3g}, tolerance {tol:.3g}")
assert err <= tol, "odl differs from PyTorch"
assert np.abs(csv - got).max() <= 1e-6 * max(1.0, np.abs(got).max()), "CSV differs from .npy"
e = np.exp(want - want.max(1, keepdims=True))
assert np.abs(soft - e / e.sum(1, keepdims=True)).max() <= 1e-5, "--softmax is not the softmax"
EOF
        fi
        for m in dscnn:d se:s; do
            name=${m%:*}
            k=${m#*:}
            run import $name.onnx -o $name.odl
            r1=$rc
            run predict $name.odl --data x$k.npy -o p$k.npy
            if [ "$r1" -ne 0 ] || [ "$rc" -ne 0 ]; then fail "pytorch_$name" "rc $r1/$rc: $(head -c 300 err.txt)"
            elif $PY - "$name" "$k" <<'EOF'; then ok "pytorch_${name}_match"; else fail "pytorch_${name}_match" "see above"; fi
import sys, numpy as np
name, k = sys.argv[1:3]
want, got = np.load(f"y{k}.npy"), np.load(f"p{k}.npy")
err, tol = np.abs(got - want).max(), 1e-4 * np.abs(want).max()
print(f"{name}: max abs error {err:.3g}, tolerance {tol:.3g}")
assert got.shape == want.shape and err <= tol, "odl differs from PyTorch"
EOF
        done
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
