#!/usr/bin/env bash
# The main job: install, build, train edge-cnn on Fashion-MNIST (the
# standard base model, docs/results.md), evaluate
# it on the test split, show its memory plan, then say what to try next.
# Usage: bash scripts/demo.sh   (ODL_PREFIX=DIR: install there instead of /usr/local)
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }
step "dependencies (apt-get; waits for a held dpkg lock)"
bash scripts/deps.sh
step "configure (CMake, Release, build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
step "build with $(nproc) jobs (about a minute on 2 cores)"
cmake --build build -j"$(nproc)" 2>&1 | grep -E '^\[ *[0-9]+%\] (Linking|Built target)' || true
prefix=${ODL_PREFIX:-/usr/local}   # ODL_PREFIX=DIR installs elsewhere (no sudo when DIR is yours)
step "install into $prefix: library, headers, the odl tool, the Python package"
sudo=""; [ "$(id -u)" -eq 0 ] || { mkdir -p "$prefix" 2>/dev/null && [ -w "$prefix" ]; } || sudo="sudo"
$sudo cmake --install build --prefix "$prefix" >/dev/null
data=/usr/share/datasets/fashion-mnist
step "train edge-cnn on Fashion-MNIST (3 epochs)"
./build/odl train --data "$data" --arch edge-cnn --epochs 3 --seed 0 -o base.odl
step "evaluate on the test split"
./build/odl eval base.odl --data "$data"
step "memory plan"
./build/odl info base.odl
cat <<'NEXT'

== what to try next
  odl info base.odl --budget 256K                 # does the on-device learner fit a 256 KB device?
  odl experiment all --seeds 1 --report r.html    # the standard experiments, as an HTML report
  odl session --model base.odl --data /usr/share/datasets/fashion-mnist --shift gain:0.7,0.2 \
      --events examples/session/events.csv --quiet   # drift, a gated update, a rollback
  python3 -m pip install ./python                 # then: the notebook in examples/notebooks/
  bash scripts/test.sh --quick                    # the tests
NEXT
# a prefix off the PATH (ODL_PREFIX): say how to reach what was installed
case ":$PATH:" in
*":$prefix/bin:"*) ;;
*) pyd=$(ls -d "$prefix"/lib/python3*/dist-packages 2>/dev/null | head -1 || true)
   printf '\n(%s/bin is not on your PATH: export PATH=%s/bin:$PATH%s)\n' "$prefix" "$prefix" \
       "${pyd:+; for Python: export PYTHONPATH=$pyd}" ;;
esac
