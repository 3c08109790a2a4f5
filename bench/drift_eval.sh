#!/usr/bin/env bash
# bench/drift_eval.sh — the drift-detector evaluation of docs/drift.md.
#
#   bash bench/drift_eval.sh PATH/TO/odl [MODEL.odl]
#
# Without MODEL.odl, trains one as docs/drift.md says (1 epoch on 10,000
# Fashion-MNIST training images, written to a temporary file). Prints the
# synthetic table, the S1 real stream (test split, gain:0.8,0.1 from sample
# 2000 on), the plain test and train streams (false alarms), and the same
# three real streams with more sensitive settings.
set -eu
ODL=$1
FASHION=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_drift.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [ $# -ge 2 ]; then
    MODEL=$2
else
    MODEL=$WORK/m.odl
    "$ODL" train --data "$FASHION" --epochs 1 --limit 10000 -o "$MODEL" >/dev/null
fi
run() { echo; echo "\$ odl drift $*"; "$ODL" drift "$@"; }
run --synthetic
run --data "$FASHION" --model "$MODEL" --shift gain:0.8,0.1 --change-at 2000
run --data "$FASHION" --model "$MODEL"
run --data "$FASHION" --model "$MODEL" --split train
SENS="--alpha 0.01 --ph-delta 0.1"
run --data "$FASHION" --model "$MODEL" --shift gain:0.8,0.1 --change-at 2000 $SENS
run --data "$FASHION" --model "$MODEL" $SENS
run --data "$FASHION" --model "$MODEL" --split train $SENS
