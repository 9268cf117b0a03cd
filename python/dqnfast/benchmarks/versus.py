"""Two settings on the same games, paired game by game: `dqnfast bench games A... --against B...`.

Deciding between two settings of an agent from a few games of one seed each is how a preset gets
tuned to noise, so the comparison reports what the pairing supports and no more:

- each game both settings ran, with the human-normalised score (HNS) of each;
- the median, IQM and mean HNS of each over those games, and the difference of each statistic with
  a 95% percentile-bootstrap interval that resamples *games* with replacement, both settings
  keeping the same games in a replicate (the question is "across games", so games are the sample);
- how many games each is ahead on, with the two-sided exact sign test over the games that differ;
- the probability of improvement, P(A > B) as rliable defines it: for each game, the share of
  (seed of A, seed of B) pairs where A scores more, a tie counting half; then the mean over games,
  with the same bootstrap over games. With one seed a game it is the share of games won.

Games only one setting ran are named and left out of every figure. The inputs are two results of
:func:`dqnfast.benchmarks.games.judge`; this module reads nothing else.

The bootstrap over games does not say how much of a gap the seeds alone make. :func:`seed_noise`
does, given a pool of runs a game of one agent (a published agent's released runs, say): it plays
two identical agents against each other, each game's score the mean of as many runs drawn from the
pool as each setting has seeds there, and gives the differences that come of the draw alone;
:func:`against_noise` places an observed comparison among them (`tools/atari100k_seed_noise.py`).
"""
from __future__ import annotations

from math import comb
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from . import aggregate

STATISTICS = ("median", "iqm", "mean")


class ComparisonError(ValueError):
    pass


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance, were each differing game a fair coin, of a split at
    least as uneven as ``wins`` against ``losses`` (1.0 when no game differs)."""
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be counts, got {wins} and {losses}")
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def improvement_probability(a_seeds: Sequence[float], b_seeds: Sequence[float]) -> float:
    """P(A > B) on one game: the share of (a, b) seed pairs with a > b, ties counting half."""
    a = np.asarray(a_seeds, dtype=np.float64)[:, None]
    b = np.asarray(b_seeds, dtype=np.float64)[None, :]
    if a.size == 0 or b.size == 0:
        raise ValueError("each setting needs at least one seed on the game")
    return float(np.mean((a > b) + 0.5 * (a == b)))


def bootstrap_over_games(columns: np.ndarray, statistic, *, reps: int, seed: int,
                         confidence: float = 0.95) -> Tuple[float, float]:
    """Percentile interval of ``statistic`` over games resampled with replacement. ``columns`` is
    (k, games): k figures a game that stay together (A's and B's HNS of one game, say);
    ``statistic`` maps (reps, k, games) to (reps,)."""
    games = columns.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    chunk = max(1, 2_000_000 // (games * columns.shape[0]))
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        idx = rng.integers(0, games, size=(n, games))
        values[start:start + n] = statistic(columns[:, idx].transpose(1, 0, 2))
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _labels(a: Dict[str, Any], b: Dict[str, Any]) -> Tuple[str, str]:
    if a["setting"] != b["setting"]:
        return a["setting"], b["setting"]
    return f"{a['setting']} (first)", f"{b['setting']} (second)"


def compare(a: Dict[str, Any], b: Dict[str, Any], *, reps: int = 50_000, seed: int = 0) -> Dict[str, Any]:
    """A (``a``) against B (``b``), two :func:`games.judge` results, on the games both ran."""
    rows_a = {r["game"]: r for r in a["games"]}
    rows_b = {r["game"]: r for r in b["games"]}
    common = sorted(set(rows_a) & set(rows_b))
    if not common:
        raise ComparisonError(f"the two settings share no game (first: {', '.join(sorted(rows_a))}; "
                              f"second: {', '.join(sorted(rows_b))})")
    label_a, label_b = _labels(a, b)
    x = np.array([rows_a[g]["hns"] for g in common])
    y = np.array([rows_b[g]["hns"] for g in common])

    # seeds compared by score: human normalisation keeps their order within a game
    p_game = np.array([improvement_probability(list(rows_a[g]["per_seed_mean"].values()),
                                               list(rows_b[g]["per_seed_mean"].values())) for g in common])
    # who is ahead on each game: the one rule behind the per-game column and the counts
    ahead = np.where(x > y, "first", np.where(x < y, "second", "equal"))
    wins, losses = int((ahead == "first").sum()), int((ahead == "second").sum())
    pair = np.stack([x, y])
    statistics = {}
    for name in STATISTICS:
        stat = aggregate.STATISTICS[name]
        value_a, value_b = float(stat(x[None])[0]), float(stat(y[None])[0])
        ci = bootstrap_over_games(pair, lambda s, stat=stat: stat(s[:, 0]) - stat(s[:, 1]), reps=reps, seed=seed)
        statistics[name] = {"first": value_a, "second": value_b, "difference": value_a - value_b,
                            "difference_ci": list(ci)}
    p_ci = bootstrap_over_games(p_game[None], lambda s: s[:, 0].mean(axis=1), reps=reps, seed=seed)
    return {
        "first": label_a, "second": label_b, "games": [
            {"game": g, "first_hns": float(rows_a[g]["hns"]), "second_hns": float(rows_b[g]["hns"]),
             "first_score": rows_a[g]["score"], "second_score": rows_b[g]["score"],
             "first_seeds": len(rows_a[g]["per_seed_mean"]), "second_seeds": len(rows_b[g]["per_seed_mean"]),
             "ahead": str(who), "p_improvement": float(p)}
            for g, who, p in zip(common, ahead, p_game)],
        "only_first": sorted(set(rows_a) - set(rows_b)), "only_second": sorted(set(rows_b) - set(rows_a)),
        "statistics": statistics,
        "first_ahead": wins, "second_ahead": losses, "equal": len(common) - wins - losses,
        "sign_test_p": sign_test(wins, losses),
        "p_improvement": float(p_game.mean()), "p_improvement_ci": list(p_ci),
        "bootstrap": {"over": "games", "reps": reps, "seed": seed, "confidence": 0.95},
    }


def report(c: Dict[str, Any]) -> str:
    """The comparison as markdown."""
    n = len(c["games"])
    lines = [f"`{c['first']}` (A) against `{c['second']}` (B) on the {n} games both ran", "",
             "| game | A score | B score | A HNS | B HNS | ahead |", "|---|---:|---:|---:|---:|---|"]
    for r in c["games"]:
        ahead = {"first": "A", "second": "B", "equal": "equal"}[r["ahead"]]
        lines.append(f"| {r['game']} | {r['first_score']:,.2f} | {r['second_score']:,.2f} | "
                     f"{r['first_hns']:.3f} | {r['second_hns']:.3f} | {ahead} |")
    lines += ["", "| HNS over these games | A | B | A - B (95% CI, games resampled) |", "|---|---:|---:|---|"]
    for name in STATISTICS:
        s = c["statistics"][name]
        lo, hi = s["difference_ci"]
        lines.append(f"| {name} | {s['first']:.3f} | {s['second']:.3f} | {s['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    lo, hi = c["p_improvement_ci"]
    lines += ["", f"A ahead on {c['first_ahead']}, B on {c['second_ahead']}, equal on {c['equal']} "
                  f"(two-sided sign test p = {c['sign_test_p']:.3f}); probability of improvement "
                  f"P(A > B) = {c['p_improvement']:.3f} [{lo:.3f}, {hi:.3f}]"]
    for key, who in (("only_first", "A"), ("only_second", "B")):
        if c[key]:
            lines.append(f"only {who} ran (left out): {', '.join(c[key])}")
    return "\n".join(lines)


def seed_noise(pools: Sequence[Sequence[float]], seeds_first: Sequence[int], seeds_second: Sequence[int], *,
               reps: int = 20_000, seed: int = 0) -> Dict[str, np.ndarray]:
    """Differences between two identical agents that come of the seeds alone. ``pools[i]`` are one
    agent's runs on game i (HNS); each replicate draws, for each game, ``seeds_first[i]`` runs with
    replacement for the first agent and ``seeds_second[i]`` for the second, and scores the game by
    their mean. Returns, per replicate, each statistic's difference (first - second) and the count of
    games the first is ahead on."""
    if not (len(pools) == len(seeds_first) == len(seeds_second)) or not pools:
        raise ValueError(f"one pool and one seed count of each setting a game: {len(pools)} pools, "
                         f"{len(seeds_first)} and {len(seeds_second)} seed counts")
    if any(len(p) == 0 for p in pools) or min(*seeds_first, *seeds_second) < 1:
        raise ValueError("each game needs a non-empty pool of runs and at least one seed a setting")
    rng = np.random.default_rng(seed)

    def draw(counts):
        return np.stack([np.asarray(p, dtype=np.float64)[rng.integers(0, len(p), size=(reps, k))].mean(axis=1)
                         for p, k in zip(pools, counts)], axis=1)  # (reps, games)

    a, b = draw(seeds_first), draw(seeds_second)
    out = {name: aggregate.STATISTICS[name](a) - aggregate.STATISTICS[name](b) for name in STATISTICS}
    out["first_ahead"] = (a > b).sum(axis=1)
    return out


def against_noise(c: Dict[str, Any], noise: Dict[str, np.ndarray]) -> Dict[str, Dict[str, float]]:
    """Each statistic's observed difference of comparison ``c`` beside the middle 95% of the seed-noise
    differences, and the share of those at least as far from 0 as the observed one (a two-sided
    p-value of "the two settings are the same agent, with this agent's spread")."""
    out = {}
    for name in STATISTICS:
        observed, null = c["statistics"][name]["difference"], noise[name]
        lo, hi = np.percentile(null, [2.5, 97.5])
        out[name] = {"observed": observed, "noise_95": [float(lo), float(hi)],
                     "p": float(np.mean(np.abs(null) >= abs(observed) - 1e-12))}
    n = len(c["games"])
    # wins are counted as a distance from half the games, two-sided as the statistics are
    wins, null = c["first_ahead"], noise["first_ahead"]
    lo, hi = np.percentile(null, [2.5, 97.5])
    out["first_ahead"] = {"observed": wins, "noise_95": [float(lo), float(hi)],
                          "p": float(np.mean(np.abs(null - n / 2) >= abs(wins - n / 2)))}
    return out

