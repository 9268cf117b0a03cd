"""The learning curve of a run, drawn from its episodes.csv."""
from __future__ import annotations

import csv
import os
from typing import Optional

import numpy as np


def plot_learning_curve(run_dir: str, title: str = "", window: int = 20) -> Optional[str]:
    """learning_curve.png from episodes.csv: each game's return, a moving average, random play.
    None when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps, returns, eps = [], [], []
    with open(os.path.join(run_dir, "episodes.csv"), newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["global_step"]))
            returns.append(float(row["return"]))
            eps.append(float(row["epsilon"]))
    path = os.path.join(run_dir, "learning_curve.png")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if returns:
        s, r = np.asarray(steps), np.asarray(returns)
        ax.scatter(s, r, s=6, alpha=0.35, label="game return")
        if len(r) >= 2:
            w = min(window, len(r))
            avg = np.convolve(r, np.ones(w) / w, mode="valid")
            ax.plot(s[w - 1:], avg, color="C1", lw=2, label=f"mean of last {w}")
        random_play = r[np.asarray(eps) >= 1.0]
        if len(random_play):
            ax.axhline(random_play.mean(), color="gray", ls="--", label=f"random play ({random_play.mean():.2f})")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("game return (unclipped, all lives)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if returns:
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
