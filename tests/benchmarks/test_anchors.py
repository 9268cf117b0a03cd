"""The published Atari 100k anchors (benchmarks/anchors.py) and the script that re-derives them
(tools/atari100k_anchors.py): every game has its six figures, env ids find their game, rows come best
first, the figures checked by hand are there, and the script's reading, averaging and rounding work
on small made-up data files laid out as the released ones are."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from support.tool_scripts import load_tool

from dqnfast.benchmarks import anchors

ROOT = Path(__file__).resolve().parents[2]

# the 26 games of Atari 100k, as the ALE v5 ids spell them (ALE/Jamesbond-v5, not JamesBond)
GAMES = ["Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
         "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
         "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
         "RoadRunner", "Seaquest", "UpNDown"]
COLUMNS = {"DER", "DrQ", "DrQ(ε)", "SPR", "human", "random"}


def test_every_atari_100k_game_has_all_six_figures():
    assert sorted(anchors.ANCHORS) == sorted(GAMES)
    for game in GAMES:
        row = anchors.ANCHORS[game]
        assert set(row) == COLUMNS, game
        assert all(isinstance(x, float) and math.isfinite(x) for x in row.values()), game
        assert row["human"] > row["random"], game  # the two reference columns are not swapped
        assert len(anchors.anchors_for(f"ALE/{game}-v5")) == 6, game
    assert set(anchors.SOURCES) == COLUMNS and all(anchors.SOURCES.values())


def test_breakout_figures_are_those_checked_against_the_issue():
    # issue 18's figures, which the per-run data reproduce (DER 9.214, DrQ 15.406, DrQ(ε) 19.764, SPR 19.579)
    assert anchors.ANCHORS["Breakout"] == {"DER": 9.2, "DrQ": 15.4, "DrQ(ε)": 19.8, "SPR": 19.6,
                                           "human": 30.5, "random": 1.7}


def test_a_few_figures_of_other_games():
    # read off the table the script printed; a shifted or swapped row would move these
    assert anchors.ANCHORS["Pong"]["SPR"] == -5.4 and anchors.ANCHORS["Pong"]["random"] == -20.7
    assert anchors.ANCHORS["Boxing"]["DER"] == -0.3 and anchors.ANCHORS["Boxing"]["SPR"] == 35.7
    assert anchors.ANCHORS["UpNDown"]["SPR"] == 10859.2 and anchors.ANCHORS["MsPacman"]["human"] == 6951.6
    assert anchors.ANCHORS["CrazyClimber"]["DrQ"] == 21991.6  # a mean of exactly 21991.55: ties go up


def test_anchors_for_returns_pong_best_first():
    rows = anchors.anchors_for("ALE/Pong-v5")
    assert [(a.agent, a.score) for a in rows] == [("human", 14.6), ("SPR", -5.4), ("DrQ(ε)", -9.1),
                                                  ("DER", -9.7), ("DrQ", -14.3), ("random", -20.7)]
    assert all(a.source == anchors.SOURCES[a.agent] for a in rows)
    assert {a.agent: a.note for a in rows}["DrQ(ε)"] == anchors.NOTES["DrQ(ε)"] != ""
    assert anchors.anchors_for("PongNoFrameskip-v4") == rows


@pytest.mark.parametrize("env_id, game", [
    ("ALE/Pong-v5", "Pong"), ("ALE/MsPacman-v5", "MsPacman"), ("ALE/KungFuMaster-v5", "KungFuMaster"),
    ("ALE/PrivateEye-v5", "PrivateEye"), ("ALE/RoadRunner-v5", "RoadRunner"), ("ALE/UpNDown-v5", "UpNDown"),
    ("ALE/BankHeist-v5", "BankHeist"), ("ALE/BattleZone-v5", "BattleZone"),
    ("ALE/ChopperCommand-v5", "ChopperCommand"), ("ALE/CrazyClimber-v5", "CrazyClimber"),
    ("ALE/DemonAttack-v5", "DemonAttack"), ("ALE/Jamesbond-v5", "Jamesbond"), ("ALE/Hero-v5", "Hero"),
    ("PongNoFrameskip-v4", "Pong"), ("Pong-v4", "Pong"), ("PongDeterministic-v4", "Pong"),
    ("MsPacmanNoFrameskip-v4", "MsPacman"), ("ALE/Breakout-v5", "Breakout"),
])
def test_game_name_maps_env_ids_to_table_keys(env_id, game):
    assert anchors.game_name(env_id) == game
    assert game in anchors.ANCHORS


def test_games_outside_atari_100k_have_no_anchors():
    assert anchors.anchors_for("ALE/Tetris-v5") == [] and anchors.anchors_for("CartPole-v1") == []


def test_every_key_is_a_registered_ale_v5_game():
    """The keys must be spelled as ALE spells them, or `bench learning` on that game draws no lines."""
    gymnasium = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    gymnasium.register_envs(ale_py)
    for game in anchors.ANCHORS:
        assert f"ALE/{game}-v5" in gymnasium.registry, game


# -- the script ---------------------------------------------------------------------------------------------

def _tool():
    return load_tool("atari100k_anchors")


def _write(path: Path, data) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def _run_tool(tool, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        tool.main(argv)
    return out.getvalue(), err.getvalue()


def test_script_averages_runs_takes_ders_last_iteration_and_prints_the_table(tmp_path):
    tool = _tool()
    assert tool.GAMES == GAMES
    der = tmp_path / "DER"
    der.mkdir()
    for g in GAMES:  # two runs, evaluated at iterations 0..2, stored out of order: only iteration 2 counts
        records = [{"iteration": it, "eval_average_return": 100.0 * it + run, "game": g, "run_number": run,
                    "agent": "DER"} for run in (2, 1) for it in (2, 0, 1)]
        _write(der / f"{g}.json", records)
    runs = {g: [1.0, 2.0, 4.0] for g in GAMES}
    runs["Pong"] = [-9.7, -9.8]  # mean -9.75: a tie, rounded away from zero
    runs["Krull"] = [2.3, 2.4]  # mean 2.35 (2.3499999999999996 as a float, so round() gives 2.3): a tie
    args = ["--der", str(der), "--drq", _write(tmp_path / "DrQ.json", runs),
            "--drq-eps", _write(tmp_path / "DrQ(eps).json", {g: [10.0] for g in GAMES}),
            "--spr", _write(tmp_path / "SPR.json", {g: [0.04, -0.1] for g in GAMES}),  # -0.03 -> 0.0, not -0.0
            "--human", _write(tmp_path / "HUMAN.json", {g: [30.5] for g in GAMES}),
            "--random", _write(tmp_path / "RANDOM.json", {g: [1.7] for g in GAMES})]
    out, err = _run_tool(tool, args)
    assert "DER: 2 runs per game" in err and "DrQ(ε): 1 runs per game" in err
    namespace = {"Dict": dict}
    exec(out, namespace)  # the printed text is the literal anchors.py holds
    table = namespace["ANCHORS"]
    assert list(table) == GAMES
    assert table["Alien"] == {"DER": 201.5, "DrQ": 2.3, "DrQ(ε)": 10.0, "SPR": 0.0, "human": 30.5, "random": 1.7}
    assert [list(row) for row in table.values()] == [["DER", "DrQ", "DrQ(ε)", "SPR", "human", "random"]] * 26
    assert table["Pong"]["DrQ"] == -9.8 and table["Krull"]["DrQ"] == 2.4
    assert str(table["Alien"]["SPR"]) == "0.0"
    assert '"Breakout": {"DER": 201.5, "DrQ": 2.3, "DrQ(ε)": 10.0, "SPR": 0.0, "human": 30.5, "random": 1.7},' in out


def test_script_takes_a_der_scores_file_and_refuses_a_missing_game(tmp_path):
    tool = _tool()
    full = {g: [3.0, 5.0] for g in GAMES}
    files = {name: _write(tmp_path / f"{name}.json", full) for name in ("der", "drq", "eps", "spr")}
    one = _write(tmp_path / "one.json", {g: [2.0] for g in GAMES})
    args = ["--der", files["der"], "--drq", files["drq"], "--drq-eps", files["eps"], "--spr", files["spr"],
            "--human", one, "--random", one]
    out, _ = _run_tool(tool, args)
    assert '"Seaquest": {"DER": 4.0,' in out
    short = _write(tmp_path / "short.json", {g: [1.0] for g in GAMES if g != "Hero"})
    args[args.index("--drq") + 1] = short
    with pytest.raises(SystemExit, match="no scores for Hero"):
        _run_tool(tool, args)
