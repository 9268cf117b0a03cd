"""tools/atari100k_seed_noise.py: an observed comparison of two settings placed among the gaps that
two identical agents, drawn from a published agent's runs, show by the draw alone."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from support.tool_scripts import load_tool


def _tool():
    return load_tool("atari100k_seed_noise")


def _comparison(path: Path, games):
    stats = {name: {"difference": 1.0} for name in ("median", "iqm", "mean")}
    path.write_text(json.dumps({"comparison": {
        "first": "atari100k", "second": "atari100k with frame_size=64, shift=3", "first_ahead": 1,
        "games": [{"game": g, "first_seeds": 1, "second_seeds": 1} for g in games], "statistics": stats}}))
    return str(path)


def test_the_table_places_the_comparison_among_draws_of_the_published_runs(tmp_path):
    """Pong runs at random (-20.7, HNS 0) or human (14.6, HNS 1): two identical agents differ by
    -1, 0 or +1 (1/4, 1/2, 1/4), so an observed +1 is as far from even as half the draws; and one
    game won of one is as far from even as every draw."""
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps({"Pong": [-20.7, 14.6]}))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _tool().main(["--runs", f"X={runs}", "--reps", "20000", _comparison(tmp_path / "c.json", ["Pong"])]) == 0
    text = out.getvalue()
    mean_row = next(line for line in text.splitlines() if line.startswith("| mean HNS"))
    cells = [c.strip() for c in mean_row.split("|")[1:-1]]
    assert cells[1] == "+1.000" and cells[2] == "[-1.000, +1.000]"
    assert float(cells[3]) == pytest.approx(0.5, abs=0.02)
    assert "| games A is ahead on | 1 of 1 | [0, 1] | 1.00 |" in text


def test_a_game_missing_from_the_runs_or_a_file_without_a_comparison_is_refused(tmp_path):
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps({"Pong": [-20.7, 14.6]}))
    with pytest.raises(SystemExit, match="has no Boxing"):
        _tool().main(["--runs", f"X={runs}", _comparison(tmp_path / "c.json", ["Pong", "Boxing"])])
    (tmp_path / "plain.json").write_text(json.dumps({"games": []}))
    with pytest.raises(SystemExit, match="no comparison"):
        _tool().main(["--runs", f"X={runs}", str(tmp_path / "plain.json")])
    with pytest.raises(SystemExit, match="--reps must be positive"):
        _tool().main(["--runs", f"X={runs}", "--reps", "0", str(tmp_path / "plain.json")])
