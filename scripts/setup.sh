#!/usr/bin/env bash
# Set up everything the stack needs on a fresh Debian 12 / Python 3.11 machine (idempotent, quick when done).
# - Debian packages: espeak-ng + sox (command audio), Mesa EGL (headless MuJoCo rendering), libusb (pyrealsense2),
#   PortAudio (the speech node's microphone, through sounddevice), python3-venv.
# - A virtual environment in .venv with this project and its pinned dependencies (torch==2.13.0 CPU first, so that
#   nothing pulls a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng sox libegl1 libegl-mesa0 libgl1-mesa-dri libusb-1.0-0 libportaudio2 python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.legion-setup-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] creating .venv and installing the project (first run: several minutes)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  # robosuite only provides the Robotiq 2F-85 MJCF assets: install its files without its heavy dependencies.
  .venv/bin/python -m pip install -q --no-deps "robosuite==1.5.2" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch, mujoco, metaworld, legion_policy, legion_language" \
    || { echo "[setup] installation failed: see the pip output above" >&2; exit 1; }
  rm -f .venv/.legion-setup-*; touch "$stamp"
fi
