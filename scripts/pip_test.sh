#!/usr/bin/env bash
# `python3 -m pip install ./python` as a user would run it, offline: into a
# fresh venv of Debian's /usr/bin/python3 (pip's build runs CMake itself),
# then into a venv of the other python3 on PATH (e.g. a pyenv 3.11) with
# ODL_BUILD_DIR pointing at an existing build to save the second compile.
# Each installed copy imports from the venv, finds its own libodl_py.so and
# odl tool, and runs examples/personalise.py and a short fit/evaluate.
# Prints "N passed, N failed" last.
# Usage: bash scripts/pip_test.sh [build-dir]   (default: build)
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "pip_test: no build directory '${1:-build}'" >&2; echo "0 passed, 1 failed"; exit 1; }
data=/usr/share/datasets/fashion-mnist
tmp=$(mktemp -d /tmp/odl-piptest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log
passed=0 failed=0
check() {
    local name=$1; shift
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "ok    $name"
    else
        failed=$((failed + 1)); echo "FAIL  $name"; tail -30 "$log" | sed 's/^/      /'
    fi
}
check "train a small base model" "$build/odl" train --data "$data" --epochs 1 --limit 6000 --seed 0 --quiet -o "$tmp/base.odl"

# try_python LABEL PYTHON [ENV...]: venv, pip install ./python, import, example.
try_python() {
    local label=$1 py=$2; shift 2
    local v=$tmp/venv-$label
    check "$label: $py -m venv" "$py" -m venv "$v"
    check "$label: pip install ./python (offline, no build dependencies)" \
        env "$@" PIP_NO_INDEX=1 "$v/bin/python" -m pip install --no-cache-dir "$src/python"
    # from another directory, with no hint: the venv's copy and its own library
    check "$label: import odl finds the venv's package, library and tool" sh -c "cd '$tmp' && env -u ODL_LIBRARY -u ODL_TOOL -u PYTHONPATH '$v/bin/python' -c \"
import odl, os
assert odl.__file__.startswith('$v'), odl.__file__
assert odl.library_path.startswith('$v'), odl.library_path
assert odl.find_tool().startswith('$v'), odl.find_tool()
print(odl.__version__, odl.library_path)\""
    check "$label: examples/personalise.py" sh -c "cd '$tmp' && env -u PYTHONPATH '$v/bin/python' '$src/examples/personalise.py' '$tmp/base.odl' '$data'"
    check "$label: fit and evaluate an MLP" sh -c "cd '$tmp' && env -u PYTHONPATH '$v/bin/python' -c \"
import odl
d = odl.load_data('$data', split='train', limit=1000)
t = odl.load_data('$data', split='test', limit=200)
m = odl.Model.mlp(hidden=(32,))
m.fit(d.x, d.y, epochs=2, batch_size=32)
a = m.evaluate(t.x, t.y)['accuracy']
assert a > 0.5, a
print(m, a)\""
}

try_python debian /usr/bin/python3
other=""
for p in $(type -ap python3); do
    [ "$(readlink -f "$p")" = "$(readlink -f /usr/bin/python3)" ] && continue
    other=$p; break
done
if [ -n "$other" ]; then
    try_python other "$other" ODL_BUILD_DIR="$build"
else
    echo "skip  other interpreter: no python3 on PATH besides /usr/bin/python3"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
