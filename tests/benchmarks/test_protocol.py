"""The list of departures from the published Atari 100k protocol (benchmarks/protocol.py) that a
`dqnfast bench learning` batch prints beside its figures: each departure is named, and ε_eval says
whose it is when it is DrQ(ε)'s."""
from __future__ import annotations

from dqnfast.benchmarks import protocol
from dqnfast.config import preset


def _epsilon_lines(cfg):
    return [d for d in protocol.differences(cfg, protocol.GAMES) if "epsilon" in d]


def test_the_atari100k_presets_eval_epsilon_is_named_as_drq_eps():
    cfg = preset("atari100k")
    assert cfg.eval_epsilon == 0.001
    assert _epsilon_lines(cfg) == ["evaluation epsilon 0.001, not 0.05 (DrQ(ε)'s ε_eval, set against the protocol's)"]


def test_another_eval_epsilon_is_listed_without_an_owner():
    assert _epsilon_lines(preset("atari100k", eval_epsilon=0.01)) == ["evaluation epsilon 0.01, not 0.05"]


def test_the_protocols_own_epsilon_is_not_a_difference():
    cfg = preset("atari100k", eval_epsilon=0.05, total_steps=100_000)
    assert _epsilon_lines(cfg) == []
    assert not any("trained for" in d for d in protocol.differences(cfg, protocol.GAMES))


def _frame_lines(cfg):
    return [d for d in protocol.differences(cfg, protocol.GAMES) if "frames" in d]


def test_84x84_whole_screens_resized_by_area_are_what_dopamines_agents_see():
    # DER, DrQ and DrQ(ε) run in Dopamine, whose preprocessing resizes the whole screen to 84x84 by
    # area: nothing to list.
    assert _frame_lines(preset("atari100k", frame_size=84, crop=None, interp="area")) == []


def test_another_frame_size_crop_or_resize_is_listed():
    (line,) = _frame_lines(preset("atari100k", frame_size=64, crop=None, interp="area"))
    assert line.startswith("the agent sees 64x64 frames (area resize);")
    (line,) = _frame_lines(preset("atari100k", frame_size=84, crop=None, interp="nearest"))
    assert line.startswith("the agent sees 84x84 frames (nearest resize);")
    (line,) = _frame_lines(preset("atari100k", frame_size=84, crop=(34, 194, 0, 160), interp="area"))
    assert line.startswith("the agent sees 84x84 frames (area resize, crop 34,194,0,160);")
