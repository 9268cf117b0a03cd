"""Run-time SIMD detection agrees with the kernel's view of the CPU. A build whose compiler runtime
leaves __builtin_cpu_supports empty (zig's, which links the portable wheels) once ran everything
on the scalar path without any test noticing; this catches that for whichever build is imported."""
import pytest

from dqnfast import _core
from support.cpu_flags import expected_simd_levels, linux_cpu_flags


def test_detected_simd_levels_match_proc_cpuinfo():
    flags = linux_cpu_flags()
    if flags is None:
        pytest.skip("needs Linux x86-64 (/proc/cpuinfo flags)")
    assert _core._simd_supported() == expected_simd_levels(flags)
