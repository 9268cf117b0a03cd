"""`dqnfast bench {replay,preprocess,pipeline,vector,ray,update,learning,games,torchrl,all}`: print benchmark tables.

Each group lives in its own module of this package exposing `main(argv) -> int`.
"""
from __future__ import annotations

import importlib
import sys
from typing import List

GROUPS = ("replay", "preprocess", "pipeline", "vector", "ray", "update", "learning", "games", "torchrl")
# `all` leaves out ray: it starts a Ray cluster, which listens on the network; ask for it by name.
# It leaves out learning too: that trains several agents (hours at the default sizes), and games, which
# reads learning's batches; and update,
# whose torch.compile takes minutes; and torchrl, which needs torchrl installed (and ~15 GB at 1M).
ALL = ("replay", "preprocess", "pipeline", "vector")
MODULES = {"ray": "ray_ingest", "torchrl": "torchrl_replay"}  # (a module named ray would read as the ray package)


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
        rc = importlib.import_module(f"dqnfast.benchmarks.{MODULES.get(g, g)}").main(rest)
        if rc:
            return int(rc)
    return 0
