#!/usr/bin/env bash
# scripts/install-deps.sh - installs the Debian packages ckc needs, without
# recommends (see docs/building.md). With --check-or-install it first checks
# and does nothing when everything is present, so make targets can call it.
set -euo pipefail

PKGS=(
  make gcc clang-14 flex bison libcjson-dev check pkg-config libclang-dev llvm-14
  python3-torch python3-numpy
  dataset-fashion-mnist fortunes-min
  libopenblas-dev
  ccache
)

have_all() {
  command -v flex >/dev/null && command -v bison >/dev/null &&
  command -v llvm-config-14 >/dev/null && command -v clang-14 >/dev/null &&
  pkg-config --exists check libcjson 2>/dev/null &&
  /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 &&
  [ -d /usr/share/datasets/fashion-mnist ] &&
  [ -d /usr/share/games/fortunes ] &&
  [ -x /usr/lib/ccache/cc ]
}

if [ "${1:-}" = "--check-or-install" ] && have_all; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${PKGS[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
have_all || { echo "install-deps: packages installed but a dependency is still missing" >&2; exit 1; }
