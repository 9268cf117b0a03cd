"""The learning curves of a `dqnfast bench learning` batch in one PNG: every seed's game return against
agent steps (a moving average over games, from its episodes.csv) and the published anchors as
labelled horizontal lines."""
from __future__ import annotations

import csv
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .anchors import Anchor


def read_curve(run_dir: str) -> Tuple[np.ndarray, np.ndarray]:
    """(agent step at each training game's end, its unclipped return) from a run's episodes.csv."""
    steps: List[int] = []
    returns: List[float] = []
    path = os.path.join(run_dir, "episodes.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                steps.append(int(row["global_step"]))
                returns.append(float(row["return"]))
    return np.asarray(steps, dtype=np.int64), np.asarray(returns, dtype=np.float64)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start, so the curve starts at game 1)."""
    if len(values) == 0:
        return values
    sums = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (sums[idx] - sums[lo]) / (idx - lo)


def off_chart(curves: Dict[int, Tuple[np.ndarray, np.ndarray]], anchors: Sequence[Anchor], window: int,
              finals: Optional[Dict[int, Tuple[int, float]]] = None, *, room: float = 4.0) -> List[Anchor]:
    """The anchors to leave off the chart: those above the highest curve point, evaluation mean or
    other anchor by more than ``room`` times the span of all those (human is 69,571 on PrivateEye,
    where the agents score under 100: its line would flatten every curve to the floor)."""
    points = [v for steps, returns in curves.values() for v in moving_average(returns, window)]
    points += [mean for _, mean in (finals or {}).values()]
    out: List[Anchor] = []
    for a in sorted(anchors, key=lambda a: -a.score):
        rest = points + [b.score for b in anchors if b not in out and b is not a]
        if rest:
            lo, hi = min(rest), max(rest)
            if a.score > hi + room * max(hi - lo, 1e-9):
                out.append(a)
                continue
        break
    return out


def plot_batch(path: str, curves: Dict[int, Tuple[np.ndarray, np.ndarray]], anchors: Sequence[Anchor], *,
               title: str, window: int = 20, anchor_steps: Optional[int] = None,
               finals: Optional[Dict[int, Tuple[int, float]]] = None) -> Optional[str]:
    """Writes the PNG and returns its path; None when matplotlib is not installed. ``finals``: each
    seed's (agent steps, evaluation mean), drawn as a cross at the end of its curve."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=100)
    for i, (seed, (steps, returns)) in enumerate(sorted(curves.items())):
        if len(returns):  # (markers too, so a seed with one game so far still shows)
            ax.plot(steps, moving_average(returns, window), color=f"C{i % 10}", lw=1.5, marker=".", ms=3,
                    label=f"seed {seed} (mean of last {window} games)")
        if finals and seed in finals:
            ax.plot(*finals[seed], color=f"C{i % 10}", marker="X", ms=9, ls="none",
                    label=f"seed {seed}: evaluation mean {finals[seed][1]:.2f}")
    styles = ["--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1))]
    above = off_chart(curves, anchors, window, finals)
    for j, a in enumerate(anchors):
        at = f" at {anchor_steps // 1000}k steps" if anchor_steps and a.agent not in ("human", "random") else ""
        label = f"{a.agent} {a.score:g}{at} ({a.source})"
        if a in above:  # listed, not drawn
            ax.plot([], [], color="none", label=f"{label}: above the chart")
            continue
        ax.axhline(a.score, color="gray" if a.agent in ("human", "random") else "black", lw=1,
                   ls=styles[j % len(styles)], alpha=0.8, label=label)
    ax.set_xlabel("agent steps")
    ax.set_ylabel("training game return (unclipped, all lives)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
