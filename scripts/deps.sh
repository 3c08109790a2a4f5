#!/usr/bin/env bash
# Installs what odl needs on Debian 12, skipping what is already present.
# Usage: bash scripts/deps.sh [extra-package ...]
set -euo pipefail
pkgs=(build-essential cmake zlib1g-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev dataset-fashion-mnist python3 python3-numpy "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
