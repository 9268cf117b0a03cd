#!/usr/bin/env bash
# Developer build: compiles dqnfast._core in place (python/dqnfast/_core*.so, git-ignored), so
# `PYTHONPATH=python python -m pytest` runs against this checkout without installing it.
# Extra arguments go to cmake's configure step, e.g. -DCMAKE_BUILD_TYPE=Debug.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DDQNFAST_INPLACE=ON "$@" >/dev/null
cmake --build build/dev
