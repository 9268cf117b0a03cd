"""tools/atari100k_rank.py: a seed's percentile rank among a published agent's released runs, and
how often that agent's runs learned nothing, worked out by hand on small made-up files laid out
as the released ones and as `dqnfast bench learning` writes its summary."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from support.tool_scripts import load_tool


def _tool():
    return load_tool("atari100k_rank")


def _batch(folder: Path, env_id: str, per_seed_mean) -> str:
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"env_id": env_id, "preset": "atari100k", "config": {},
                                                     "seeds": sorted(int(s) for s in per_seed_mean),
                                                     "per_seed_mean": per_seed_mean}))
    return str(folder)


def test_ties_count_half_and_the_median_run_ranks_fifty():
    tool = _tool()
    runs = [0.0, 0.0, 10.0, 20.0]
    assert tool.percentile_rank(0.0, runs) == 25.0  # none below, two equal: 0 + 1 of 4
    assert tool.percentile_rank(15.0, runs) == 75.0
    assert tool.percentile_rank(-1.0, runs) == 0.0 and tool.percentile_rank(99.0, runs) == 100.0
    assert tool.percentile_rank(5.0, [1.0, 5.0, 9.0]) == 50.0
    assert tool.share_at_most(runs, 0.0) == 50.0 and tool.share_at_most(runs, 10.0) == 75.0
    with pytest.raises(ValueError, match="no runs"):
        tool.percentile_rank(1.0, [])


def test_each_seed_of_each_batch_gets_a_row_per_agent(tmp_path):
    tool = _tool()
    # Freeway's random score is 0: two of DrQ(ε)'s four made-up runs are at it, one of SPR's two
    eps = tmp_path / "eps.json"
    eps.write_text(json.dumps({"Freeway": [0.0, 0.0, 21.0, 30.0], "Pong": [-21.0, -10.0]}))
    spr = tmp_path / "spr.json"
    spr.write_text(json.dumps({"Freeway": [0.0, 25.0], "Pong": [-5.0, 0.0]}))
    freeway = _batch(tmp_path / "Freeway", "ALE/Freeway-v5", {"2": 22.0, "1": 0.0})
    pong = _batch(tmp_path / "Pong", "ALE/Pong-v5", {"1": -21.0})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert tool.main(["--runs", f"DrQ(ε)={eps}", "--runs", f"SPR={spr}", freeway, pong]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == ("| game | seed | score | DrQ(ε) runs below (%) | DrQ(ε) runs at or below random (%) "
                        "| SPR runs below (%) | SPR runs at or below random (%) |")
    # seeds in order; Pong's random is -20.7, so DrQ(ε)'s run at -21 is at or below it, SPR's are not
    assert lines[2:] == ["| Freeway | 1 | 0 | 25 | 50 | 25 | 50 |",
                         "| Freeway | 2 | 22 | 75 | 50 | 50 | 50 |",
                         "| Pong | 1 | -21 | 25 | 50 | 0 | 0 |"]


def test_bad_input_is_refused_with_the_reason(tmp_path):
    tool = _tool()
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps({"Pong": [1.0]}))
    boxing = _batch(tmp_path / "Boxing", "ALE/Boxing-v5", {"1": 3.0})
    with pytest.raises(SystemExit, match="no Boxing"):
        tool.main(["--runs", f"X={runs}", boxing])
    with pytest.raises(SystemExit, match="NAME=FILE"):
        tool.main(["--runs", str(runs), boxing])
    with pytest.raises(SystemExit, match="no summary.json"):
        tool.main(["--runs", f"X={runs}", str(tmp_path)])
    tetris = _batch(tmp_path / "Tetris", "ALE/Tetris-v5", {"1": 3.0})
    with pytest.raises(SystemExit, match="not one of the Atari 100k games"):
        tool.main(["--runs", f"X={runs}", tetris])
