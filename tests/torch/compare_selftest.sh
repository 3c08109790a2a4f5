#!/usr/bin/env bash
# compare.py must pass outputs within 1e-4 of the largest output and fail everything else:
# checked with a stand-in for odl (fake_odl.py) on the smallest exported model, so the
# architecture check cannot pass vacuously. Needs what architectures_test.sh needs.
# Usage: bash tests/torch/compare_selftest.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || { echo "FAIL: no python3" >&2; exit 1; }
"$py" -c "import torch, torchvision, onnx, numpy" 2>/dev/null ||
    { echo "FAIL: needs python3-torch python3-torchvision python3-onnx python3-numpy" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" "$here/export_models.py" "$work" --only dscnn_s >/dev/null
"$py" "$here/references.py" "$work" --only dscnn_s >/dev/null
status=0
expect() {  # expect pass|fail FAKE_ODL-mode
    local want=$1 mode=$2 rc=0
    FAKE_ODL=$mode "$py" "$here/compare.py" "$here/fake_odl.py" "$work" --only dscnn_s >"$work/out" 2>&1 || rc=$?
    if { [ "$want" = pass ] && [ $rc -ne 0 ]; } || { [ "$want" = fail ] && [ $rc -ne 1 ]; }; then
        echo "FAIL: compare.py with outputs '$mode' exited $rc, expected to $want"
        cat "$work/out"
        status=1
    else
        echo "ok: '$mode' -> $want"
    fi
}
expect pass noise:0
expect pass noise:5e-5
expect fail noise:2e-4
expect fail shape
expect fail nan
expect fail float64
expect fail import-fails
exit $status
