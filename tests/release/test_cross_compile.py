"""The C++ core compiles where x86 intrinsics do not exist (the aarch64 and macOS arm64 wheels built
in release CI), with no warning under -Wall -Wextra: every C++ test program, each in one translation
unit with all the headers, for aarch64 Linux with Debian's cross g++ (when installed) and with zig's
clang (the test extra installs it) for aarch64 Linux and macOS. Compile only: nothing runs them."""
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADERS = sorted(p.name for p in (ROOT / "cpp" / "dqnfast").glob("*.hpp"))
PROGRAMS = sorted(p.name for p in (ROOT / "cpp" / "tests").glob("*.cpp"))
FLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"]

pytestmark = pytest.mark.slow  # a few seconds per compile


def _zig():
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("needs ziglang (in the test extra on Linux)")
    import ziglang

    return [os.path.join(os.path.dirname(ziglang.__file__), "zig"), "c++"]


def _cross_gxx():
    gxx = shutil.which("aarch64-linux-gnu-g++")
    if gxx is None:
        pytest.skip("needs aarch64-linux-gnu-g++ (Debian: apt-get install g++-aarch64-linux-gnu)")
    return [gxx]


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize(
    "compiler, target",
    [(_cross_gxx, []), (_zig, ["-target", "aarch64-linux-gnu"]), (_zig, ["-target", "aarch64-macos"])],
    ids=["g++-aarch64-linux", "zig-aarch64-linux", "zig-aarch64-macos"],
)
def test_core_compiles_for_arm_without_warnings(compiler, target, program, tmp_path):
    source = (ROOT / "cpp" / "tests" / program).read_text()
    # Test-only hooks are compiled in only for the programs that ask for them.
    defines = ["-DDQNFAST_TEST_HOOKS"] if "DQNFAST_TEST_HOOKS" in source else []
    unit = tmp_path / f"unit_{program}"
    unit.write_text("".join(f'#include "dqnfast/{h}"\n' for h in HEADERS) + f'#include "tests/{program}"\n')
    cmd = compiler() + target + FLAGS + defines + ["-I", str(ROOT / "cpp"), "-c", str(unit), "-o", str(tmp_path / "unit.o")]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr.strip(), f"{' '.join(cmd)}\n{run.stderr}"
