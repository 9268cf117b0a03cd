"""Builds the C++ test programs in cpp/tests/ against the headers in cpp/ (skips without a compiler)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compile_cpp(tmp_path: Path, source: str, flags: Sequence[str]) -> Path:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / Path(source).stem
    cmd = [cxx, "-std=c++17", *flags, f"-I{ROOT / 'cpp'}", str(ROOT / source), "-o", str(exe), "-pthread"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe
