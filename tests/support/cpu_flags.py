"""What the kernel says this CPU (and OS) runs, independently of dqnfast's own detection."""
from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import List, Optional, Set


def linux_cpu_flags() -> Optional[Set[str]]:
    """The `flags` of /proc/cpuinfo on Linux x86-64 (the kernel drops AVX flags the OS does not
    save state for); None elsewhere."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def expected_simd_levels(flags: Set[str]) -> List[str]:
    """The SIMD paths dqnfast should offer on a CPU with these flags, in `_simd_supported()` order."""
    levels = ["scalar"]
    if "avx2" in flags:
        levels.append("avx2")
        if {"avx512f", "avx512bw", "avx512vbmi"} <= flags:
            levels.append("avx512")
    return levels
