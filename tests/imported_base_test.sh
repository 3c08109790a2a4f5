#!/usr/bin/env bash
# tests/imported_base_test.sh — an imported model as the base of
# `odl experiment --base FILE` (the standard scenarios on a base the user
# brings) and of `odl info --budget` (the device's RAM: the INT8 prefix in
# place from flash).
#
#   bash tests/imported_base_test.sh PATH/TO/odl SOURCE_DIR
#
# Checks: a base whose input is not the data's samples and a base with the
# wrong number of outputs are refused with one line naming both shapes; an
# edge-cnn exported to TFLite and imported back runs S1 and gives exactly the
# figures of the model it came from (the import is exact). Needs
# Fashion-MNIST (ODL_FASHION_DIR); the last line is "N passed, N failed".
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash tests/imported_base_test.sh PATH/TO/odl SOURCE_DIR" >&2
    exit 2
fi
ODL=$1
SRC=$2
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
FASHION=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$FASHION/train-images-idx3-ubyte" ] && [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
    echo "imported_base_test.sh: no Fashion-MNIST at $FASHION (set ODL_FASHION_DIR)" >&2
    exit 1
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_experiment_base.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1: $2"; }

# refused: exit 1, one line on stderr starting "odl: " with what it says
refused() {  # NAME EXPECTED-SUBSTRING ARGS...
    local name=$1 want=$2
    shift 2
    "$ODL" "$@" >out.txt 2>err.txt
    local rc=$?
    if [ $rc -ne 1 ]; then bad "$name" "exit $rc, expected 1"; return; fi
    if [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q '^odl: ' err.txt; then bad "$name" "stderr: $(cat err.txt)"; return; fi
    if ! grep -qF -- "$want" err.txt; then bad "$name" "no '$want' in: $(cat err.txt)"; return; fi
    ok "$name"
}

"$ODL" import "$SRC/tests/data/mlperf_tiny/kws_ref_model.tflite" -o kws.odl >/dev/null 2>&1 || bad "import kws" "failed"
refused "a base for other inputs is refused" "its input is 1x49x10, the samples of $FASHION are 1x28x28" \
    experiment s1 --base kws.odl --data "$FASHION" --seeds 1 --only naive --quiet

# info --budget on an INT8 import: the frozen base is the INT8 prefix below
# the head (nodes 0..18), planned in place, not the FP32 inference scratch
"$ODL" info kws.odl --budget 1M --json >info.json 2>info.err || bad "info --budget on the KWS import" "$(cat info.err)"
if /usr/bin/python3 - info.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["learner"]
assert j["base_int8_nodes"] == 19, j
assert 16000 < j["base_inference_in_place"] < 40000, j   # activations 2 x 8,000 + scratch + state
assert j["device_total"] == j["bytes"]["total"] + j["base_inference_in_place"], j
PY
then ok "info --budget plans the INT8 prefix of an INT8 import"; else bad "info --budget plans the INT8 prefix of an INT8 import" "$(cat info.json)"; fi
"$ODL" info kws.odl --budget 1M >info.txt 2>&1
if grep -q 'frozen base, INT8 nodes 0..18 with their weights in flash' info.txt && grep -qE '^  replay +[0-9]+ +(yes|no) +[0-9]+ +(yes|no) +-$' info.txt; then
    ok "info --budget text: the INT8 prefix, no edge-cnn instruction counts"
else
    bad "info --budget text" "$(sed -n '/on-device learner/,$p' info.txt)"
fi

"$ODL" train --data "$FASHION" --arch edge-cnn --epochs 1 --limit 2000 --seed 0 -o fm.odl --quiet >/dev/null 2>&1 &&
    "$ODL" export fm.odl --tflite fm.tflite >/dev/null 2>&1 &&
    "$ODL" import fm.tflite -o fm-imp.odl >/dev/null 2>&1 || bad "train, export, import" "failed"
refused "a base with other outputs is refused" "fm-imp.odl: 10 outputs; this scenario's base knows classes 0-7 (8 outputs)" \
    experiment s2 --base fm-imp.odl --data "$FASHION" --seeds 1 --only naive --quiet
refused "a missing base is refused" "nothere.odl" experiment s1 --base nothere.odl --data "$FASHION" --seeds 1 --quiet

# the imported model and the one it came from: the same table
for m in fm fm-imp; do
    "$ODL" experiment s1 --base $m.odl --data "$FASHION" --seeds 1 --only "naive,replay reservoir" --quiet \
        --json $m.json >$m.txt 2>$m.err || bad "experiment s1 --base $m.odl" "exit $?: $(tail -1 $m.err)"
done
if grep -q '^  naive ' fm-imp.txt && grep -q '^  replay reservoir 200 ' fm-imp.txt && grep -q 'base: fm-imp.odl' fm-imp.txt; then
    ok "s1 runs on an imported base"
else
    bad "s1 runs on an imported base" "$(cat fm-imp.txt fm-imp.err | head -20)"
fi
if [ -s fm.json ] && cmp -s fm.json fm-imp.json &&
    diff <(grep -E '^(S1|  naive|  replay)' fm.txt) <(grep -E '^(S1|  naive|  replay)' fm-imp.txt) >/dev/null; then
    ok "the imported base gives the original model's figures"
else
    bad "the imported base gives the original model's figures" "$(diff fm.txt fm-imp.txt | head -10)"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
