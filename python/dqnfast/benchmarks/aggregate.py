"""Aggregate scores over runs the way the Atari 100k literature reports them (Agarwal et al. 2021,
"Deep RL at the Edge of the Statistical Precipice", the `rliable` library): the interquartile mean
(IQM) with a stratified percentile-bootstrap 95% confidence interval, plus the mean and the median.

numpy only: rliable and scipy are not dependencies. The conventions are rliable's, so a figure
here is comparable with the IQMs it publishes:

- IQM is ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: sort all scores, cut
  ``int(0.25 * n)`` from each end and average the rest. When ``0.25 * n`` is not an integer scipy
  cuts *less* (it rounds the cut down) rather than weighting the boundary scores fractionally;
  e.g. for 5 runs it averages the middle 3.
- The bootstrap is stratified by task: each task (column) resamples its own runs (rows) with
  replacement, so every replicate keeps the task mix; the statistic is recomputed on each
  replicate and the CI is the 2.5th and 97.5th percentile of the replicates.
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


def _as_runs_by_tasks(scores) -> np.ndarray:
    """scores as a (runs, tasks) float array; a 1-D sequence is the runs of one task."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty list of runs or a (runs, tasks) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must be finite")
    return x


def trimmed_mean(scores, proportion: float = 0.25) -> float:
    """scipy.stats.trim_mean(scores, proportion, axis=None): the mean after cutting
    ``int(proportion * n)`` of the sorted scores from each end."""
    return float(_trimmed_means(_as_runs_by_tasks(scores).reshape(1, -1), proportion)[0])


def iqm(scores) -> float:
    """Interquartile mean of all scores (runs x tasks flattened): the mean of the middle 50%."""
    return trimmed_mean(scores, 0.25)


def _trimmed_means(rows: np.ndarray, proportion: float) -> np.ndarray:
    """Trimmed mean of each row of a 2-D array (vectorised over bootstrap replicates)."""
    n = rows.shape[1]
    cut = int(proportion * n)
    if 2 * cut >= n:
        raise ValueError(f"proportion {proportion} leaves nothing of {n} scores")
    return np.sort(rows, axis=1)[:, cut:n - cut].mean(axis=1)


# statistics over the flattened (runs x tasks) scores of each replicate, vectorised: (reps, k) -> (reps,)
STATISTICS: Dict[str, Statistic] = {
    "iqm": lambda flat: _trimmed_means(flat, 0.25),
    "mean": lambda flat: flat.mean(axis=1),
    "median": lambda flat: np.median(flat, axis=1),
}


def stratified_bootstrap_ci(scores, statistic: str = "iqm", *, reps: int = 50_000, confidence: float = 0.95,
                            seed: int = 0) -> Tuple[float, float]:
    """Percentile-bootstrap CI of ``statistic`` (iqm | mean | median) over (runs, tasks) scores,
    resampling runs with replacement within each task (one task = one stratum). rliable's default
    is 50,000 replicates; the draws are seeded, so a summary is reproducible."""
    x = _as_runs_by_tasks(scores)
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if reps < 1:
        raise ValueError(f"reps must be positive, got {reps}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    runs, tasks = x.shape
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    chunk = max(1, 4_000_000 // (runs * tasks))  # bounds the memory of one block of replicates
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        idx = rng.integers(0, runs, size=(n, runs, tasks))  # each task draws its own runs
        resampled = np.take_along_axis(np.broadcast_to(x, (n, runs, tasks)), idx, axis=1)
        values[start:start + n] = STATISTICS[statistic](resampled.reshape(n, runs * tasks))
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def summarize(scores: Sequence[float], *, reps: int = 50_000, seed: int = 0) -> Dict[str, object]:
    """IQM, mean and median of per-run scores (one task), each with its stratified bootstrap 95% CI."""
    x = _as_runs_by_tasks(scores)
    flat = x.reshape(1, -1)
    out: Dict[str, object] = {"runs": int(x.shape[0]), "tasks": int(x.shape[1]), "bootstrap_reps": reps,
                              "confidence": 0.95}
    for name, stat in STATISTICS.items():
        out[name] = float(stat(flat)[0])
        out[f"{name}_ci"] = list(stratified_bootstrap_ci(x, name, reps=reps, seed=seed))
    return out
