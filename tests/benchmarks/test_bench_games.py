"""`dqnfast bench games`: one setting judged across games, from `dqnfast bench learning` batches.

The batches are written here as the runner writes its summary.json (the fields the judge reads); the
expected figures are worked out in the tests from the published human and random scores, written
out by hand (not read from dqnfast.benchmarks.anchors), so a wrong reference or formula shows.
"""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from dqnfast import benchmarks
from dqnfast.benchmarks import games, versus
from dqnfast.benchmarks.learning import comparable, trainer_config

pytest.importorskip("tyro")  # the trainer's options (a batch's config is resolved with them)

# (human, random) of the Atari 100k reference scores, as published (rliable's HUMAN/RANDOM_SCORES)
REFERENCE = {"Breakout": (30.5, 1.7), "Pong": (14.6, -20.7), "Boxing": (12.1, 0.1), "Assault": (742.0, 222.4)}
# DrQ(ε)'s published means on those games (Agarwal et al. 2021)
DRQ_EPS = {"Breakout": 19.8, "Pong": -9.1, "Boxing": 9.0, "Assault": 579.6}


def write_batch(folder, game, per_seed, *, config=None, preset="atari100k", overrides=(), batch_json=None):
    folder.mkdir(parents=True)
    summary = {"env_id": f"ALE/{game}-v5", "preset": preset, "overrides": ["--env-id", f"ALE/{game}-v5", *overrides],
               "per_seed_mean": {str(s): v for s, v in per_seed.items()},
               "differences": ["evaluation epsilon 0.001, not 0.05"]}
    if config is not None:
        summary["config"] = config
    (folder / "summary.json").write_text(json.dumps(summary))
    if batch_json is not None:
        (folder / "batch.json").write_text(json.dumps({"preset": preset, "config": batch_json}))
    return str(folder)


def preset_config(game, **changes):
    cfg = comparable(trainer_config("atari100k", ["--env-id", f"ALE/{game}-v5"]))
    return {**cfg, **changes}


def hns(game, score):
    human, random = REFERENCE[game]
    return (score - random) / (human - random)


@pytest.fixture
def four_games(tmp_path):
    scores = {"Breakout": {1: 7.0, 2: 11.0, 3: 18.0}, "Pong": {1: -21.0}, "Boxing": {1: 20.6}, "Assault": {1: 600.0}}
    return scores, [write_batch(tmp_path / g, g, s, config=preset_config(g)) for g, s in scores.items()]


def test_each_games_score_is_human_normalised_and_compared_with_the_published_agents(four_games):
    scores, folders = four_games
    result = games.judge(folders)
    rows = {r["game"]: r for r in result["games"]}
    assert [r["game"] for r in result["games"]] == sorted(scores)
    for game, per_seed in scores.items():
        mean = sum(per_seed.values()) / len(per_seed)
        assert rows[game]["score"] == pytest.approx(mean)
        assert rows[game]["hns"] == pytest.approx(hns(game, mean))
        assert rows[game]["seeds"] == sorted(per_seed)
        assert rows[game]["agents"]["DrQ(ε)"]["score"] == DRQ_EPS[game]
        assert ("DrQ(ε)" in rows[game]["ahead_of"]) == (mean > DRQ_EPS[game])
    # Breakout 12.0 (ahead of DER's 9.2 only), Pong -21 (behind all), Boxing 20.6, Assault 600 (ahead of all four)
    assert rows["Breakout"]["ahead_of"] == ["DER"] and rows["Pong"]["ahead_of"] == []
    assert rows["Assault"]["ahead_of"] == ["DER", "DrQ", "DrQ(ε)", "SPR"]
    assert result["ahead_of"]["DrQ(ε)"] == 2  # Boxing and Assault


def test_the_statistics_over_games_are_of_one_figure_a_game(four_games):
    """Median, IQM and mean over the four games' HNS, for the batch and for DrQ(ε) on the same games;
    the IQM of four figures (scipy's trim_mean 0.25 cuts one from each end) is the mean of the middle two."""
    scores, folders = four_games
    result = games.judge(folders)
    ours = sorted(hns(g, sum(s.values()) / len(s)) for g, s in scores.items())
    theirs = sorted(hns(g, DRQ_EPS[g]) for g in scores)
    for got, values in ((result["hns"], ours), (result["published_hns"]["DrQ(ε)"], theirs)):
        assert got["median"] == pytest.approx((values[1] + values[2]) / 2)
        assert got["iqm"] == pytest.approx((values[1] + values[2]) / 2)
        assert got["mean"] == pytest.approx(sum(values) / 4)
    assert result["above_random"] == 3 and result["at_or_above_human"] == 1  # Pong below random; Boxing above human
    assert "Alien" in result["missing_games"] and "Breakout" not in result["missing_games"]


def test_the_median_and_iqm_part_ways_on_five_games(tmp_path):
    """Five games: the median is the third, the IQM the mean of the middle three (a cut of one a side)."""
    scores = {"Breakout": 30.5, "Pong": -20.7, "Boxing": 6.1, "Assault": 482.2}
    folders = [write_batch(tmp_path / g, g, {1: v}, config=preset_config(g)) for g, v in scores.items()]
    folders.append(write_batch(tmp_path / "Amidar", "Amidar", {1: 5.8 + 0.75 * (1719.5 - 5.8)},
                               config=preset_config("Amidar")))
    result = games.judge(folders)
    values = sorted([1.0, 0.0, 0.5, 0.5, 0.75])
    assert [round(r["hns"], 9) for r in result["games"]] == [0.75, 0.5, 0.5, 1.0, 0.0]  # Amidar, Assault, Boxing, ...
    assert result["hns"]["median"] == pytest.approx(0.5)
    assert result["hns"]["iqm"] == pytest.approx(np.mean(values[1:4]))
    assert result["hns"]["mean"] == pytest.approx(np.mean(values))


def test_batches_of_different_settings_are_refused_naming_what_differs(tmp_path):
    a = write_batch(tmp_path / "a", "Breakout", {1: 10.0}, config=preset_config("Breakout"))
    b = write_batch(tmp_path / "b", "Pong", {1: -20.0}, config=preset_config("Pong", replay_ratio=1.0))
    with pytest.raises(games.GamesError, match=r"different settings: replay_ratio 0.25 \(Breakout\) against 1.0 \(Pong\)"):
        games.judge([a, b])
    c = write_batch(tmp_path / "c", "Pong", {1: -20.0}, config=preset_config("Pong"), preset="demo")
    with pytest.raises(games.GamesError, match="ran preset 'demo'"):
        games.judge([a, c])


def test_a_batch_without_a_recorded_config_is_resolved_from_its_preset_and_options(tmp_path):
    """Batches written before summaries carried their config: batch.json if kept, else the preset
    and options they ran with, as dqnfast has them today; a resolved variant is still told apart."""
    a = write_batch(tmp_path / "a", "Breakout", {1: 10.0}, config=preset_config("Breakout"))
    b = write_batch(tmp_path / "b", "Pong", {1: -20.0})
    c = write_batch(tmp_path / "c", "Boxing", {1: 20.0}, batch_json=preset_config("Boxing"))
    result = games.judge([a, b, c])
    assert {r["game"]: r["config_source"] for r in result["games"]} == {
        "Breakout": "summary.json", "Boxing": "batch.json",
        "Pong": "resolved from its preset and options as dqnfast has them today"}
    assert "settings of Pong: resolved" in games.report(result)
    d = write_batch(tmp_path / "d", "Assault", {1: 600.0}, overrides=["--learning-rate", "0.0001"])
    with pytest.raises(games.GamesError, match=r"learning_rate 0.0001 \(Assault\) against 0.00025 \(Breakout\)"):
        games.judge([a, d])


def test_a_config_that_predates_a_field_counts_it_at_its_default(tmp_path):
    old = preset_config("Pong")
    del old["exploration_after_warmup"]  # a field added to TrainConfig after this batch ran (default False)
    a = write_batch(tmp_path / "a", "Breakout", {1: 10.0}, config=preset_config("Breakout"))
    b = write_batch(tmp_path / "b", "Pong", {1: -20.0}, config=old)
    assert len(games.judge([a, b])["games"]) == 2
    c = write_batch(tmp_path / "c", "Boxing", {1: 20.0}, config=preset_config("Boxing", exploration_after_warmup=True))
    with pytest.raises(games.GamesError, match="exploration_after_warmup"):
        games.judge([b, c])


@pytest.mark.parametrize("case, message", [
    ("twice", "one batch a game: Pong"),
    ("no summary", "no summary.json"),
    ("not atari 100k", "ALE/Tetris-v5 is not one of the Atari 100k games"),
    ("no seed", "no seed finished"),
])
def test_bad_batches_are_refused_with_the_reason(tmp_path, case, message):
    a = write_batch(tmp_path / "a", "Pong", {1: -20.0}, config=preset_config("Pong"))
    other = {"twice": lambda: write_batch(tmp_path / "b", "Pong", {1: -19.0}, config=preset_config("Pong")),
             "no summary": lambda: str(tmp_path),
             "not atari 100k": lambda: write_batch(tmp_path / "b", "Tetris", {1: 5.0}, config=preset_config("Tetris")),
             "no seed": lambda: write_batch(tmp_path / "b", "Boxing", {}, config=preset_config("Boxing"))}[case]()
    with pytest.raises(games.GamesError, match=message):
        games.judge([a, other])


def test_the_command_prints_the_table_writes_json_and_refuses_with_status_2(four_games, tmp_path):
    _, folders = four_games
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert benchmarks.main(["games", *folders, "--json", str(tmp_path / "games.json")]) == 0
    table = out.getvalue()
    assert "| Boxing | 1 | 20.60 | 1.71 |" in table  # (20.6 - 0.1) / (12.1 - 0.1)
    assert "| Breakout | 3 | 12.00 | 0.36 |" in table  # (12 - 1.7) / 28.8
    assert "| DrQ(ε) |" in table and "2 of 4" in table
    assert json.loads((tmp_path / "games.json").read_text())["games"][2]["game"] == "Breakout"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert benchmarks.main(["games", str(tmp_path / "nothing")]) == 2
    assert "no summary.json" in err.getvalue()
    assert "games" in benchmarks.GROUPS and "games" not in benchmarks.ALL


def test_a_score_equal_to_an_agents_is_not_ahead_of_it(tmp_path):
    """Amidar at exactly DrQ(ε)'s 137.8: ahead of DER (125.9) and DrQ (94.2), not of DrQ(ε) nor SPR (179.7)."""
    a = write_batch(tmp_path / "a", "Amidar", {1: 137.8}, config=preset_config("Amidar"))
    assert games.judge([a])["games"][0]["ahead_of"] == ["DER", "DrQ"]


def test_a_difference_worded_twice_by_two_versions_is_listed_once_and_others_are_kept(tmp_path):
    """Batches written before and after a difference's wording was extended say the same thing
    twice; the longer wording stands for both, and a difference only one batch has stays."""
    old = write_batch(tmp_path / "Pong", "Pong", {1: -21.0}, config=preset_config("Pong"))
    new = write_batch(tmp_path / "Boxing", "Boxing", {1: 20.6}, config=preset_config("Boxing"))
    extended = "evaluation epsilon 0.001, not 0.05 (DrQ(ε)'s ε_eval, set against the protocol's)"
    summary = json.loads((tmp_path / "Boxing" / "summary.json").read_text())
    summary["differences"] = [extended, "FIRE is pressed by the env"]
    (tmp_path / "Boxing" / "summary.json").write_text(json.dumps(summary))
    assert games.judge([old, new])["differences"] == sorted([extended, "FIRE is pressed by the env"])


def test_a_setting_is_named_by_its_preset_and_the_fields_it_changes(tmp_path):
    """Two settings of one preset, judged on the same games, print apart: a variant's name lists
    what it changed from the preset; the preset's own batches print the preset's bare name."""
    variant = preset_config("Pong", frame_size=64, shift=3)
    folder = write_batch(tmp_path / "variant" / "Pong", "Pong", {1: -21.0}, config=variant)
    result = games.judge([folder])
    assert result["setting"] == "atari100k with frame_size=64, shift=3"
    assert games.report(result).splitlines()[0] == "`atari100k with frame_size=64, shift=3` on 1 Atari 100k games"
    plain = write_batch(tmp_path / "preset" / "Pong", "Pong", {1: -21.0}, config=preset_config("Pong"))
    assert games.judge([plain])["setting"] == "atari100k"


# --against: two settings paired game by game (dqnfast.benchmarks.versus)

def hns_score(game, value):
    """The score whose human-normalised score is ``value`` (the inverse of ``hns``)."""
    human, random = REFERENCE[game]
    return random + value * (human - random)


@pytest.fixture
def two_settings(tmp_path):
    """A (the preset) and B (64x64 frames) on three shared games, B on a fourth; HNS chosen by hand:
    A - B is +0.1 on Breakout (A's seeds 0.5 and 0.3 against B's 0.3), -0.3 on Pong, +0.8 on Boxing."""
    a = {"Breakout": {1: 0.5, 2: 0.3}, "Pong": {1: 0.2}, "Boxing": {1: 0.9}}
    b = {"Breakout": {1: 0.3}, "Pong": {1: 0.5}, "Boxing": {1: 0.1}, "Assault": {1: 0.7}}
    first = [write_batch(tmp_path / "a" / g, g, {s: hns_score(g, v) for s, v in seeds.items()}, config=preset_config(g))
             for g, seeds in a.items()]
    second = [write_batch(tmp_path / "b" / g, g, {s: hns_score(g, v) for s, v in seeds.items()},
                          config=preset_config(g, frame_size=64, shift=3)) for g, seeds in b.items()]
    return first, second


def test_two_settings_are_paired_on_the_games_both_ran(two_settings):
    first, second = two_settings
    c = versus.compare(games.judge(first), games.judge(second), reps=2_000)
    assert c["first"] == "atari100k" and c["second"] == "atari100k with frame_size=64, shift=3"
    assert [r["game"] for r in c["games"]] == ["Boxing", "Breakout", "Pong"]
    assert c["only_first"] == [] and c["only_second"] == ["Assault"]
    rows = {r["game"]: r for r in c["games"]}
    assert (rows["Breakout"]["first_hns"], rows["Breakout"]["second_hns"]) == pytest.approx((0.4, 0.3))
    assert (c["first_ahead"], c["second_ahead"], c["equal"]) == (2, 1, 0)
    # HNS A (0.9, 0.4, 0.2), B (0.1, 0.3, 0.5): three figures, so the IQM cuts none and is the mean
    s = c["statistics"]
    assert (s["median"]["first"], s["median"]["second"]) == pytest.approx((0.4, 0.3))
    assert (s["iqm"]["first"], s["iqm"]["second"]) == pytest.approx((0.5, 0.3))
    assert s["mean"]["difference"] == pytest.approx(0.2)
    # Breakout: A's seeds 0.5 > 0.3 and 0.3 = 0.3 (half) -> 0.75; Pong 0; Boxing 1
    assert rows["Breakout"]["p_improvement"] == pytest.approx(0.75)
    assert c["p_improvement"] == pytest.approx(1.75 / 3)
    # games are resampled: the interval has width, holds the estimate, and stays within the per-game differences
    lo, hi = s["mean"]["difference_ci"]
    assert -0.3 - 1e-9 <= lo < 0.2 < hi <= 0.8 + 1e-9
    lo, hi = c["p_improvement_ci"]
    assert 0.0 <= lo < 1.75 / 3 < hi <= 1.0 + 1e-9


def test_the_bootstrap_keeps_each_games_two_scores_together(tmp_path):
    """A is B + 0.1 on every game: with the games paired in each replicate, every statistic's
    difference is 0.1 in every replicate, so its interval is [0.1, 0.1]; drawing A's and B's games
    independently would spread it over about +-0.4."""
    b = {"Breakout": 0.1, "Pong": 0.5, "Boxing": 0.3, "Assault": 0.9}
    first = [write_batch(tmp_path / "a" / g, g, {1: hns_score(g, v + 0.1)}, config=preset_config(g)) for g, v in b.items()]
    second = [write_batch(tmp_path / "b" / g, g, {1: hns_score(g, v)}, config=preset_config(g)) for g, v in b.items()]
    c = versus.compare(games.judge(first), games.judge(second), reps=2_000)
    for name in versus.STATISTICS:
        assert c["statistics"][name]["difference_ci"] == pytest.approx([0.1, 0.1])
    assert c["first"] == "atari100k (first)" and c["second"] == "atari100k (second)"
    assert c["p_improvement"] == 1.0 and c["first_ahead"] == 4


@pytest.mark.parametrize("wins, losses, p", [(5, 0, 2 / 32), (0, 5, 2 / 32), (9, 1, 2 * 11 / 1024),
                                             (2, 1, 1.0), (0, 0, 1.0), (11, 7, 2 * 63004 / 2 ** 18)])
def test_the_sign_test_is_two_sided_and_exact(wins, losses, p):
    # P(X <= 7) for X ~ Binomial(18, 1/2) is sum C(18, i), i = 0..7, = 63,004 over 2^18
    assert versus.sign_test(wins, losses) == pytest.approx(p)


def test_the_probability_of_improvement_counts_ties_half():
    assert versus.improvement_probability([1.0, 2.0], [2.0]) == 0.25
    assert versus.improvement_probability([3.0], [1.0, 2.0]) == 1.0
    with pytest.raises(ValueError, match="at least one seed"):
        versus.improvement_probability([], [1.0])


def test_the_command_pairs_two_settings_and_refuses_settings_without_a_shared_game(two_settings, tmp_path):
    first, second = two_settings
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert benchmarks.main(["games", *first, "--against", *second, "--json", str(tmp_path / "c.json")]) == 0
    text = out.getvalue()
    assert "on the 3 games both ran" in text
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["Pong"].endswith("| 0.200 | 0.500 | B |") and rows["Boxing"].endswith("| 0.900 | 0.100 | A |")
    assert "A ahead on 2, B on 1, equal on 0 (two-sided sign test p = 1.000)" in text
    assert "only B ran (left out): Assault" in text
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["comparison"]["first_ahead"] == 2 and saved["second"]["games"][0]["game"] == "Assault"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert benchmarks.main(["games", first[0], "--against", second[3]]) == 2  # Boxing against Assault
    assert "share no game" in err.getvalue()


def test_a_game_both_settings_score_the_same_is_neither_ahead(tmp_path):
    first = [write_batch(tmp_path / "a" / "Pong", "Pong", {1: -20.0}, config=preset_config("Pong")),
             write_batch(tmp_path / "a" / "Boxing", "Boxing", {1: 5.0}, config=preset_config("Boxing"))]
    second = [write_batch(tmp_path / "b" / "Pong", "Pong", {1: -20.0}, config=preset_config("Pong", shift=3)),
              write_batch(tmp_path / "b" / "Boxing", "Boxing", {1: 2.0}, config=preset_config("Boxing", shift=3))]
    c = versus.compare(games.judge(first), games.judge(second), reps=500)
    assert (c["first_ahead"], c["second_ahead"], c["equal"]) == (1, 0, 1)
    assert c["sign_test_p"] == 1.0 and c["p_improvement"] == 0.75


# seed noise: two identical agents drawn from one pool of runs a game (versus.seed_noise)

def test_identical_agents_with_one_run_a_game_differ_by_nothing():
    noise = versus.seed_noise([[0.3], [0.7], [0.1]], [1, 2, 1], [1, 1, 5], reps=200)
    for name in versus.STATISTICS:
        assert np.all(noise[name] == 0.0)
    assert np.all(noise["first_ahead"] == 0)


def test_seed_noise_draws_each_settings_seeds_from_the_games_pool():
    """One game whose runs are 0 or 1: with a seed each, the first is ahead a quarter of the time and
    the difference is -1, 0 or 1 (1/4, 1/2, 1/4); with 4 seeds against 1 the difference's variance is
    1/16 + 1/4 (a mean of 4 draws of variance 1/4, less one of 1/4)."""
    one = versus.seed_noise([[0.0, 1.0]], [1], [1], reps=40_000, seed=3)
    assert np.mean(one["first_ahead"]) == pytest.approx(0.25, abs=0.01)
    assert np.mean(one["mean"] == 0.0) == pytest.approx(0.5, abs=0.01)
    assert set(np.unique(one["mean"])) == {-1.0, 0.0, 1.0}
    four = versus.seed_noise([[0.0, 1.0]], [4], [1], reps=40_000, seed=3)
    assert np.var(four["mean"]) == pytest.approx(1 / 16 + 1 / 4, abs=0.01)
    with pytest.raises(ValueError, match="one pool and one seed count"):
        versus.seed_noise([[0.0]], [1, 1], [1])
    with pytest.raises(ValueError, match="at least one seed"):
        versus.seed_noise([[0.0]], [0], [1])


def test_an_observed_gap_is_placed_among_the_noise_two_sided():
    noise = {name: np.array([-0.2, -0.1, 0.0, 0.1, 0.3]) for name in versus.STATISTICS}
    noise["first_ahead"] = np.array([2, 2, 1, 4, 3])
    comparison = {"games": [{}] * 4, "first_ahead": 3,
                  "statistics": {name: {"difference": -0.1} for name in versus.STATISTICS}}
    placed = versus.against_noise(comparison, noise)
    assert placed["iqm"]["p"] == pytest.approx(0.8)  # |-0.2|, |-0.1|, |0.1|, |0.3| reach 0.1
    assert placed["iqm"]["observed"] == -0.1
    assert placed["first_ahead"]["p"] == pytest.approx(0.6)  # 3 of 4 is 1 from even: 1, 4 and 3 are as far
