"""`dqnfast bench {replay,preprocess,pipeline,vector,ray,all}`: print benchmark tables.

Each group lives in its own module (`_bench_<group>.py`) exposing `main(argv) -> int`.
"""
from __future__ import annotations

import importlib
import sys
from typing import List

GROUPS = ("replay", "preprocess", "pipeline", "vector", "ray")
# `all` leaves out ray: it starts a Ray cluster, which listens on the network; ask for it by name.
ALL = ("replay", "preprocess", "pipeline", "vector")


def main(argv: List[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: dqnfast bench {{{','.join(GROUPS)},all}} [options]   (`dqnfast bench GROUP --help`)")
        return 0 if argv else 2
    group, rest = argv[0], argv[1:]
    groups = ALL if group == "all" else (group,)
    for g in groups:
        if g not in GROUPS:
            print(f"dqnfast bench: unknown group {g!r}; choose from {', '.join(GROUPS)}, all", file=sys.stderr)
            return 2
        rc = importlib.import_module(f"dqnfast._bench_{g}").main(rest)
        if rc:
            return int(rc)
    return 0
