#!/usr/bin/env bash
# Real architectures exported from PyTorch (torchvision MobileNetV2-0.35, MobileNetV3-small,
# ResNet-18, MLPerf Tiny ResNet-8 and DS-CNN-S) with seeded random weights: odl imports each
# ONNX file and its outputs on 100 random inputs must match PyTorch's within 1e-4 of the
# largest output. The references are generated here, at test time (export_models.py,
# references.py: versions and seeds go in each model's JSON).
# Usage: bash tests/torch/architectures_test.sh ODL_BINARY [WORK_DIR]
# (with WORK_DIR, the files stay there, with compare.json and compare.md: the table for the docs)
# Needs Debian's python3-torch, python3-torchvision, python3-onnx, python3-numpy
# (scripts/test.sh installs them); without them it fails, it does not skip.
set -euo pipefail
odl=${1:?usage: architectures_test.sh ODL_BINARY [WORK_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || { echo "FAIL: no python3 (install python3)" >&2; exit 1; }
if ! missing=$("$py" - <<'PY'
import importlib.util, sys
want = {"torch": "python3-torch", "torchvision": "python3-torchvision", "onnx": "python3-onnx", "numpy": "python3-numpy"}
miss = [pkg for mod, pkg in want.items() if importlib.util.find_spec(mod) is None]
print(" ".join(miss))
sys.exit(1 if miss else 0)
PY
); then
    echo "FAIL: the PyTorch architecture check needs $missing (apt-get install $missing, or bash scripts/deps.sh $missing)" >&2
    exit 1
fi
[ -x "$odl" ] || { echo "FAIL: $odl is not an executable odl binary" >&2; exit 1; }
if [ -n "${2:-}" ]; then
    work=$2
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
"$py" "$here/export_models.py" "$work"
"$py" "$here/references.py" "$work"
"$py" "$here/compare.py" "$odl" "$work" --json "$work/compare.json" --markdown "$work/compare.md"
