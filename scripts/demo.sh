#!/usr/bin/env bash
# The main job: install, build, train edge-cnn on Fashion-MNIST (the
# PROTOCOL.md base model), evaluate it on the test split, show its memory plan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
# the library, headers, tool and Python package (import odl) into /usr/local
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo cmake --install build >/dev/null
data=/usr/share/datasets/fashion-mnist
./build/odl train --data "$data" --arch edge-cnn --epochs 3 --seed 0 -o base.odl
./build/odl eval base.odl --data "$data"
./build/odl info base.odl
