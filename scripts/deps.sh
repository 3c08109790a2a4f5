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
# another apt (e.g. unattended-upgrades on a fresh machine) may hold the lock: wait for it
lock=(-o DPkg::Lock::Timeout=600)
echo "(apt-get waits up to 10 minutes for a held dpkg lock)"
$sudo apt-get "${lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
