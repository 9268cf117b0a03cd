#!/usr/bin/env python3
r"""How much of a gap between two settings, one or a few seeds a game, the seeds alone would make.

`dqnfast bench games A... --against B... --json C` pairs two settings game by game; its bootstrap
resamples games, not seeds. This plays two *identical* agents against each other on the same games
with the same seeds a game, each seed a run drawn from a published agent's released runs (its
spread stands in for ours, which one seed a game cannot give), and prints, for the median, IQM and
mean human-normalised score and for the count of games won, the middle 95% of the differences that
the draw alone makes, and the share of draws at least as far from even as the comparison's.

  dqnfast bench games docs/results/atari100k-games-84/* docs/results/atari100k-breakout/frames-84 \
      --against docs/results/atari100k-games/* docs/results/atari100k-breakout/preset-2026-12-05b \
      --json /tmp/frames.json
  python tools/atari100k_seed_noise.py --runs "DrQ(ε)=/tmp/iris/results/data/DrQ(eps).json" /tmp/frames.json

The per-run files are the ones tools/atari100k_rank.py and tools/atari100k_anchors.py read
({game: [one final score per run]}). It prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling tool, run from anywhere

from atari100k_rank import read_runs  # noqa: E402

from dqnfast.benchmarks import versus  # noqa: E402
from dqnfast.benchmarks.anchors import human_normalised  # noqa: E402


def hns_pools(comparison, runs):
    pools = []
    for row in comparison["games"]:
        game = row["game"]
        if game not in runs:
            raise SystemExit(f"the runs file has no {game}")
        pools.append([human_normalised(x, game) for x in runs[game]])
    return pools


def table(comparison, runs, *, reps: int, seed: int) -> str:
    games = comparison["games"]
    noise = versus.seed_noise(hns_pools(comparison, runs), [g["first_seeds"] for g in games],
                              [g["second_seeds"] for g in games], reps=reps, seed=seed)
    placed = versus.against_noise(comparison, noise)
    lines = [f"`{comparison['first']}` (A) against `{comparison['second']}` (B), {len(games)} games, "
             f"against two identical agents drawn from the runs given ({reps:,} draws)", "",
             "| A - B | observed | 95% of seed-noise draws | draws at least as far from even |",
             "|---|---:|---|---:|"]
    for name in versus.STATISTICS:
        p = placed[name]
        lines.append(f"| {name} HNS | {p['observed']:+.3f} | [{p['noise_95'][0]:+.3f}, {p['noise_95'][1]:+.3f}] "
                     f"| {p['p']:.2f} |")
    p = placed["first_ahead"]
    lines.append(f"| games A is ahead on | {p['observed']} of {len(games)} | [{p['noise_95'][0]:.0f}, "
                 f"{p['noise_95'][1]:.0f}] | {p['p']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, metavar="NAME=FILE", help="an agent's per-run scores, {game: [scores]}")
    p.add_argument("--reps", type=int, default=20_000, help="draws of the two identical agents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("comparison", help="the JSON that `dqnfast bench games ... --against ... --json` wrote")
    args = p.parse_args(argv)
    if args.reps < 1:
        raise SystemExit(f"--reps must be positive, got {args.reps}")
    _, runs = read_runs(args.runs)
    with open(args.comparison, encoding="utf-8") as f:
        saved = json.load(f)
    if "comparison" not in saved:
        raise SystemExit(f"{args.comparison}: no comparison (write it with `dqnfast bench games ... --against ... --json`)")
    print(table(saved["comparison"], runs, reps=args.reps, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
