#!/usr/bin/env bash
# Installs every Debian package ternc's build and tests need. Idempotent:
# packages already present are skipped without touching the network.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build python3 git
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22 lld-22
  libclang-rt-22-dev libfuzzer-22-dev
  libfmt-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libpcre2-dev clang-format-22 libxxhash-dev python3-xxhash time
  libcpp-httplib-dev nginx python3-yaml curl
  g++-aarch64-linux-gnu qemu-user binutils-aarch64-linux-gnu
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
