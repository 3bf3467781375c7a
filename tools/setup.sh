#!/usr/bin/env bash
# Install brain2music into ./.venv on Debian/Ubuntu with Python 3.11.
#   bash tools/setup.sh          core package + musicnn weights (runs the demo; no torch, no TensorFlow)
#   bash tools/setup.sh --dev    + neural extra (CPU torch, transformers, diffusers) + test tools + browser
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

# System libraries: FluidSynth for the composer; Chromium + driver for the report's browser test.
pkgs=()
ldconfig -p 2>/dev/null | grep -q 'libfluidsynth.so' || pkgs+=(libfluidsynth3)
if [ "$dev" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || pkgs+=(chromium-driver)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${pkgs[@]}"
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[neural,dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
# Pretrained musicnn weights (TF checkpoints read by brain2music itself, no TensorFlow). Its metadata pins
# numpy<1.17 and tensorflow, neither of which brain2music uses: install it without its dependencies.
.venv/bin/python -m pip install -q --no-deps musicnn==0.1.0
echo "brain2music installed in $(pwd)/.venv"
