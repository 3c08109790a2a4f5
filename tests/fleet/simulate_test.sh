#!/usr/bin/env bash
# The fleet (python/odl/fleet.py, docs/fleet.md): aggregation rules against hand
# computations, Model.get_weights/set_weights, and small simulations on a Dask
# LocalCluster (12 devices, 2 rounds, 1 worker). Needs python3-distributed.
# Usage: simulate_test.sh ODL_TOOL SOURCE_DIR   (libodl_py.so beside the tool)
set -euo pipefail
tool=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
data=/usr/share/datasets/fashion-mnist
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/odl-fleet.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export ODL_LIBRARY=$(dirname "$tool") ODL_TOOL=$tool PYTHONPATH=$src/python
export ODL_FLEET_BASE=$tmp/base.odl
cd "$tmp"
echo "== aggregation rules"
$py "$src/tests/fleet/test_aggregate.py"
[ -d "$data" ] || { echo "skip the rest: $data missing"; exit 0; }
"$tool" train --data "$data" --epochs 1 --limit 6000 --seed 0 --quiet -o "$ODL_FLEET_BASE"
echo "== head weights through the C API"
$py "$src/tests/fleet/test_weights.py"
echo "== simulations"
$py "$src/tests/fleet/test_simulate.py"
echo "== odl fleet simulate (the CLI runs python3 -m odl.fleet)"
"$tool" fleet simulate --base "$ODL_FLEET_BASE" -o "$tmp/cli" --devices 8 --rounds 1 --workers 1 --seed 1 >"$tmp/cli.log"
cat "$tmp/cli.log"
grep -q "^round 1: 8 devices" "$tmp/cli.log"
[ "$(wc -l <"$tmp/cli/devices.csv")" -eq 9 ]
if "$tool" fleet simulate --base "$ODL_FLEET_BASE" -o "$tmp/bad" --rule mean 2>"$tmp/bad.log"; then
    echo "a bad rule was accepted"; exit 1
fi
grep -q "invalid choice: 'mean'" "$tmp/bad.log"
echo "fleet: all passed"
