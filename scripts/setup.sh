#!/usr/bin/env bash
# Idempotent set-up: system libraries, .venv, torch first, then the pinned requirements.
# Usage: scripts/setup.sh [run|test] [ray]. Re-runs finish in seconds thanks to stamp files in .venv/.
# The Ray Serve extra (requirements-ray.txt) comes with test, or with ray (make run REPLICAS=N).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
extra=${2:-}
py=${PYTHON:-python3}

apt_pkgs="libfluidsynth3 fluidsynth fluid-soundfont-gm"
[ "$mode" = test ] && apt_pkgs="$apt_pkgs chromium"
missing=""
ldconfig -p 2>/dev/null | grep -q 'libfluidsynth\.so\.3' || missing="$missing libfluidsynth3 fluidsynth"
if [ "$mode" = test ] && [ ! -x /usr/bin/chromium ]; then missing="$missing chromium"; fi
# FluidR3_GM sounds better than the font inside pretty_midi, but the app runs without it.
if [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && [ "$(id -u)" = 0 ]; then missing="$missing fluid-soundfont-gm"; fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $apt_pkgs >/dev/null
  else
    echo "setup: missing system packages:$missing" >&2
    echo "setup: run this as root, then re-run make:  sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$py" -m venv .venv
fi
pip=".venv/bin/python -m pip"
if [ ! -f .venv/.stamp-torch ]; then
  # torch first and pinned: anything else would pull the CUDA build.
  $pip install -q --upgrade pip
  $pip install -q torch==2.13.0
  touch .venv/.stamp-torch
fi
want=$( (cat requirements.txt; echo basic-pitch==0.4.0) | sha256sum | cut -c1-16)
if [ "$(cat .venv/.stamp-req 2>/dev/null)" != "$want" ]; then
  $pip install -q -r requirements.txt
  # basic-pitch (transcription of recordings) on its own, --no-deps: its requirements pull TensorFlow,
  # which we do not use (we run the ONNX model in its wheel on onnxruntime). Its other runtime
  # requirements are pinned in requirements.txt.
  $pip install -q --no-deps basic-pitch==0.4.0
  # Compile librosa's numba functions into their on-disk cache now (half a minute, once), not on the
  # first recording someone uploads.
  .venv/bin/python -c "import musicgen_app.io.audio as a; a.load_libraries()"
  echo "$want" > .venv/.stamp-req
fi
# The package itself, editable, with its console script (`musicgen`); --no-deps: its requirements are
# installed above, pinned, and a resolver run here could pull another torch.
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat .venv/.stamp-pkg 2>/dev/null)" != "$want" ]; then
  $pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > .venv/.stamp-pkg
fi
if [ "$mode" = test ] || [ "$extra" = ray ]; then
  # Ray Serve adds packages only (torch and the pins above stay as they are): `pip install --dry-run
  # -r requirements-ray.txt` lists what it would add.
  want=$(cat requirements-ray.txt | sha256sum | cut -c1-16)
  if [ "$(cat .venv/.stamp-ray 2>/dev/null)" != "$want" ]; then
    $pip install -q -r requirements-ray.txt
    echo "$want" > .venv/.stamp-ray
  fi
fi
if [ "$mode" = test ]; then
  want=$(cat requirements-dev.txt | sha256sum | cut -c1-16)
  if [ "$(cat .venv/.stamp-dev 2>/dev/null)" != "$want" ]; then
    $pip install -q -r requirements-dev.txt
    echo "$want" > .venv/.stamp-dev
  fi
fi
