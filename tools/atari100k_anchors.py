#!/usr/bin/env python3
r"""Re-derive the ANCHORS table of python/dqnfast/benchmarks/anchors.py from the released per-run data.

Agarwal et al. 2021 ("Deep Reinforcement Learning at the Edge of the Statistical Precipice",
NeurIPS) released 100 training runs per game for the Atari 100k agents they studied, in the bucket
gs://rl-benchmark-data/atari_100k (read by google-research/rliable's deep_rl_precipice_colab.ipynb).
The bucket no longer answers anonymous requests, so this script reads two GitHub copies of it:

  RLE-Foundation/rllte, commit ddd76d5ac244097975f55893092027ddba21709f ("update evaluation",
  2023-04-20; the files were removed again in 94333243, but the commit is in the default branch's
  history), folder hsuanwu/evaluation/atari_100k/:
      DER/<Game>.json   DER, one record per run and evaluation iteration:
                        {"iteration", "eval_average_return", "game", "run_number", "agent"};
                        iteration 9 (the last) is the score after 100k agent steps
      DrQ.json          DrQ,    {game: [100 final scores]}
      DrQ(eps).json     DrQ(ε), {game: [100 final scores]}
      SPR.json          SPR,    {game: [100 final scores]}

  eloialonso/iris, commit 24326aaaa283c527f42b89b44cfdecf2665a7a16, folder results/data/:
      HUMAN.json, RANDOM.json   {game: [score]}, the human and random reference scores; the same
                                numbers as HUMAN_SCORES / RANDOM_SCORES in rliable's notebook
                                (google-research/rliable 3ccd9f4dea577a04d3d2b557f259aac08badbd81)
      DrQ(eps).json, SPR.json   byte-identical to rllte's copies (same git blobs ef34cce, a27b683),
                                so either copy may be passed

A published per-game score is the mean over the runs; the script prints, for each of the 26 games,
that mean for DER, DrQ, DrQ(ε) and SPR and the human and random scores, rounded to --digits
decimals (ties away from zero), as the ANCHORS dict literal that anchors.py holds.

Getting the files and running it (from the dqnfast repository root):

  git clone https://github.com/RLE-Foundation/rllte /tmp/rllte
  git -C /tmp/rllte checkout ddd76d5ac244097975f55893092027ddba21709f -- hsuanwu/evaluation/atari_100k
  git clone https://github.com/eloialonso/iris /tmp/iris
  git -C /tmp/iris checkout 24326aaaa283c527f42b89b44cfdecf2665a7a16
  D=/tmp/rllte/hsuanwu/evaluation/atari_100k
  python tools/atari100k_anchors.py --der $D/DER --drq $D/DrQ.json --drq-eps "$D/DrQ(eps).json" \
      --spr $D/SPR.json --human /tmp/iris/results/data/HUMAN.json --random /tmp/iris/results/data/RANDOM.json

--der also takes a {game: [final scores]} file (rllte's DER.json, which holds the same numbers as
the last iteration of DER/<Game>.json). Standard library only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from decimal import ROUND_HALF_UP, Decimal
from typing import Dict, List

# the 26 games of Atari 100k (Kaiser et al. 2019), spelled as the data and the ALE v5 ids spell them
GAMES = ["Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
         "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
         "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
         "RoadRunner", "Seaquest", "UpNDown"]
COLUMNS = ["DER", "DrQ", "DrQ(ε)", "SPR", "human", "random"]  # the order anchors.py lists them in


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def runs_by_game(path: str) -> Dict[str, List[float]]:
    """{game: [one score per run]} from a {game: [scores]} file, checking it covers the 26 games."""
    data = read_json(path)
    if not isinstance(data, dict):
        sys.exit(f"{path}: expected a {{game: [scores]}} object, got {type(data).__name__}")
    missing = [g for g in GAMES if g not in data]
    if missing:
        sys.exit(f"{path}: no scores for {', '.join(missing)}")
    return {g: [float(x) for x in data[g]] for g in GAMES}


def final_runs_from_records(folder: str) -> Dict[str, List[float]]:
    """{game: [one score per run]} from a folder of per-game record files (the DER layout): each run's
    score at its last evaluation iteration, which must be the same iteration for every run."""
    out = {}
    for game in GAMES:
        path = os.path.join(folder, f"{game}.json")
        last: Dict[int, dict] = {}  # run_number -> the record with the highest iteration
        for rec in read_json(path):
            run = int(rec["run_number"])
            if run not in last or rec["iteration"] > last[run]["iteration"]:
                last[run] = rec
        iterations = {rec["iteration"] for rec in last.values()}
        if len(iterations) != 1:
            sys.exit(f"{path}: runs end at different iterations {sorted(iterations)}")
        out[game] = [float(last[run]["eval_average_return"]) for run in sorted(last)]
    return out


def mean(xs: List[float]) -> float:
    return math.fsum(xs) / len(xs)


def rounded(x: float, digits: int) -> float:
    """``x`` to ``digits`` decimals, a tie (a mean of 100 one-decimal scores can end in exactly 5)
    going away from zero as in a printed table. Python's round() would settle ties by the float's
    binary error (21991.55 -> 21991.5 but 974.45 -> 974.5), so the mean is first cut to 6 decimals,
    which drops that error, and then rounded as a decimal number."""
    r = float(Decimal(repr(round(x, 6))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))
    return r + 0.0  # -0.0 -> 0.0


def single(path: str) -> Dict[str, float]:
    """{game: score} from a {game: [score]} reference file (HUMAN.json, RANDOM.json)."""
    scores = runs_by_game(path)
    for game, xs in scores.items():
        if len(xs) != 1:
            sys.exit(f"{path}: {game} has {len(xs)} scores, expected one")
    return {game: xs[0] for game, xs in scores.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--der", required=True, help="DER: folder of <Game>.json run records, or a {game: [scores]} file")
    p.add_argument("--drq", required=True, help="DrQ.json")
    p.add_argument("--drq-eps", required=True, help="DrQ(eps).json")
    p.add_argument("--spr", required=True, help="SPR.json")
    p.add_argument("--human", required=True, help="HUMAN.json")
    p.add_argument("--random", required=True, help="RANDOM.json")
    p.add_argument("--digits", type=int, default=1, help="decimals to round to (default 1)")
    args = p.parse_args(argv)

    der = final_runs_from_records(args.der) if os.path.isdir(args.der) else runs_by_game(args.der)
    agents = {"DER": der, "DrQ": runs_by_game(args.drq), "DrQ(ε)": runs_by_game(args.drq_eps),
              "SPR": runs_by_game(args.spr)}
    reference = {"human": single(args.human), "random": single(args.random)}

    for name, runs in agents.items():  # how many runs each mean is over, for the reader
        counts = sorted({len(xs) for xs in runs.values()})
        print(f"# {name}: {'/'.join(map(str, counts))} runs per game", file=sys.stderr)

    print("ANCHORS: Dict[str, Dict[str, float]] = {")
    for game in GAMES:
        row = {name: rounded(mean(runs[game]), args.digits) for name, runs in agents.items()}
        row.update({name: rounded(scores[game], args.digits) for name, scores in reference.items()})
        cells = ", ".join(f'"{c}": {row[c]!r}' for c in COLUMNS)
        print(f'    "{game}": {{{cells}}},')
    print("}")


if __name__ == "__main__":
    main()
