#!/usr/bin/env python3
r"""Where each seed of `dqnfast bench learning` batches falls among a published agent's released runs.

A game run with one seed says little against a published mean: on some games an agent's runs
spread widely, and on a few they split into runs that learned and runs that did not (28 of
DrQ(ε)'s 100 Freeway runs scored under 1, the other 72 from 22.9 to 31.1). This prints, for each
seed of each batch and each agent given, the seed's percentile rank among that agent's runs on
the game (the share of runs below the seed's score, ties counted half) and the share of the
agent's runs that scored no more than the game's random score (anchors.ANCHORS), i.e. how often
the published agent itself learned nothing there.

The per-run files are the ones tools/atari100k_anchors.py reads ({game: [one final score per run]}:
DrQ(eps).json and SPR.json of eloialonso/iris results/data/ at 24326aaaa283c527f42b89b44cfdecf2665a7a16,
or RLE-Foundation/rllte's copies); see that script's docstring for where they are. Example, from
the repository root:

  python tools/atari100k_rank.py --runs "DrQ(ε)=/tmp/iris/results/data/DrQ(eps).json" \
      --runs SPR=/tmp/iris/results/data/SPR.json docs/results/atari100k-games-84/*/

It prints a Markdown table, a row per seed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Sequence, Tuple

from dqnfast.benchmarks.anchors import ANCHORS
from dqnfast.benchmarks.games import GamesError, load_batch


def percentile_rank(score: float, runs: Sequence[float]) -> float:
    """Percent of ``runs`` below ``score``, a run equal to it counted half (50 for the median run)."""
    if not runs:
        raise ValueError("no runs to rank against")
    below = sum(r < score for r in runs)
    ties = sum(r == score for r in runs)
    return 100.0 * (below + 0.5 * ties) / len(runs)


def share_at_most(runs: Sequence[float], level: float) -> float:
    """Percent of ``runs`` that scored ``level`` or less."""
    return 100.0 * sum(r <= level for r in runs) / len(runs)


def read_runs(spec: str) -> Tuple[str, Dict[str, List[float]]]:
    """(agent name, {game: [scores]}) from a ``NAME=FILE`` argument."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"--runs takes NAME=FILE, got {spec!r}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise SystemExit(f"{path}: expected a {{game: [scores]}} object")
    return name, {g: [float(x) for x in xs] for g, xs in data.items()}


def batch_seeds(folder: str) -> Tuple[str, List[Tuple[int, float]]]:
    """(game, [(seed, mean score of its evaluation games)]) of one `dqnfast bench learning` batch,
    read and checked as `dqnfast bench games` reads it."""
    try:
        batch = load_batch(folder)
    except GamesError as e:
        raise SystemExit(str(e)) from None
    return batch["game"], sorted(batch["per_seed_mean"].items())


def rows(folders: Sequence[str], agents: Dict[str, Dict[str, List[float]]]) -> List[List[str]]:
    out = []
    for folder in folders:
        game, seeds = batch_seeds(folder)
        for seed, score in seeds:
            cells = [game, str(seed), f"{score:g}"]
            for name, runs in agents.items():
                if game not in runs:
                    raise SystemExit(f"the {name} runs have no {game}")
                xs = runs[game]
                cells += [f"{percentile_rank(score, xs):.0f}",
                          f"{share_at_most(xs, ANCHORS[game]['random']):.0f}"]
            out.append(cells)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", action="append", required=True, metavar="NAME=FILE",
                   help="an agent's per-run scores, {game: [scores]}; repeat for more agents")
    p.add_argument("folders", nargs="+", help="folders of finished `dqnfast bench learning` batches")
    args = p.parse_args(argv)
    agents = dict(read_runs(spec) for spec in args.runs)
    header = ["game", "seed", "score"]
    for name in agents:
        header += [f"{name} runs below (%)", f"{name} runs at or below random (%)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    for cells in rows(args.folders, agents):
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
