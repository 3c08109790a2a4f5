#!/usr/bin/env bash
# Executes examples/notebooks/on_device_learning.ipynb headless (Debian's
# jupyter-nbconvert + python3-nbclient + python3-ipykernel) against a build
# directory; its cells assert what they show, so any failed check fails here.
# Prints the run time. Usage: bash scripts/notebook_test.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=$(cd "${1:-build}" && pwd)
tmp=$(mktemp -d /tmp/odl-notebook.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
ODL_LIBRARY=$build ODL_TOOL=$build/odl PYTHONPATH=$src/python MPLBACKEND=Agg \
    jupyter-nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
    --output-dir "$tmp" "$src/examples/notebooks/on_device_learning.ipynb"
echo "notebook executed in $(( $(date +%s) - start )) s"
