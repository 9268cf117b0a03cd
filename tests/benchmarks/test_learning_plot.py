"""The batch plot's reference lines: a published score far above everything else is listed, not drawn."""
from __future__ import annotations

import numpy as np
import pytest

from dqnfast.benchmarks.anchors import anchors_for
from dqnfast.benchmarks.learning_plot import off_chart, plot_batch


def curve(*returns):
    r = np.asarray(returns, dtype=np.float64)
    return np.arange(1, len(r) + 1) * 1000, r


def test_private_eyes_human_score_is_left_off_the_chart():
    table = anchors_for("ALE/PrivateEye-v5")
    assert [a.agent for a in off_chart({1: curve(0, 40, 100)}, table, window=1)] == ["human"]


@pytest.mark.parametrize("game", ["Breakout", "Pong", "Boxing"])
def test_every_line_is_drawn_where_the_scores_share_a_scale(game):
    table = anchors_for(f"ALE/{game}-v5")
    assert off_chart({1: curve(0, 1, 2)}, table, window=1) == []


def test_a_curve_that_reaches_the_human_score_keeps_its_line():
    table = anchors_for("ALE/PrivateEye-v5")
    assert off_chart({1: curve(0, 50_000)}, table, window=1) == []
    assert off_chart({1: curve(0, 1)}, table, window=1, finals={1: (2000, 40_000.0)}) == []


def test_plot_lists_the_line_it_leaves_off(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    seen = {}
    real_savefig = plt.Figure.savefig

    def savefig(fig, path, *a, **k):  # the figure's own record of what it drew
        ax = fig.axes[0]
        seen["lines"] = sorted(round(line.get_ydata()[0], 1) for line in ax.get_lines() if len(line.get_ydata()) == 2)
        seen["labels"] = [t.get_text() for t in ax.get_legend().get_texts()]
        return real_savefig(fig, path, *a, **k)

    plt.Figure.savefig = savefig
    try:
        path = plot_batch(str(tmp_path / "c.png"), {1: curve(0, 40, 100)}, anchors_for("ALE/PrivateEye-v5"),
                          title="t", window=1)
    finally:
        plt.Figure.savefig = real_savefig
    assert path and (tmp_path / "c.png").stat().st_size > 0
    assert 69571.3 not in seen["lines"] and 86.0 in seen["lines"]
    assert any(t.startswith("human 69571.3") and t.endswith("above the chart") for t in seen["labels"])
