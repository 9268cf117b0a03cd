"""`dqnfast bench update`: every mode steps to eager's weights, the two-pass reference bit for bit."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from dqnfast.benchmarks.update import bench_size, build_parser  # noqa: E402
from dqnfast.config import PRESETS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_one_pass_target_steps_to_the_two_pass_weights_bit_for_bit():
    res = bench_size(36, ["eager", "channels_last", "two_pass"], calls=1, rounds=1, warmup=3, shift=2)
    # the skipped target pass computed exactly the online one: the same losses, then the same weights
    assert res["two_pass"]["loss_diff"] == 0.0 and res["two_pass"]["diff"] == 0.0
    # another layout: the same maths, rounded differently
    assert res["channels_last"]["loss_diff"] < 1e-4 and res["channels_last"]["diff"] < 1e-5
    assert all(r["ms"] > 0 and r["per_hour"] > 0 for r in res.values())


def test_the_bf16_mode_runs_the_compiled_step_in_bfloat16_and_says_how_far_from_eager():
    res = bench_size(36, ["eager", "compile", "compile_bf16"], calls=1, rounds=1, warmup=3, shift=2)
    # float32 compiled: eager's maths to rounding; bfloat16 passes: visibly other losses (a mode that
    # silently ran in float32 would sit with compile), still the same update
    assert res["compile"]["loss_diff"] < 1e-5
    assert 1e-5 < res["compile_bf16"]["loss_diff"] < 0.05
    assert res["compile_bf16"]["diff"] < 1e-2


def test_by_default_it_times_the_atari100k_presets_frames_and_shift():
    """The bench measures what the preset trains with: a preset that changes its frames or shift
    changes what `dqnfast bench update` times without an option."""
    args = build_parser().parse_args([])
    assert args.shift == PRESETS["atari100k"]["shift"]
    assert PRESETS["atari100k"]["frame_size"] in args.sizes


def test_the_prioritized_step_weights_the_loss_and_writes_the_priorities_back(monkeypatch):
    """--prioritized times the trainer's prioritized step: every step, warm-up and timed, samples
    with importance weights and hands its batch's indices and new priorities to the buffer, and
    eager and compiled take the same weighted steps (tests/learner/test_fast_update.py checks the
    weighted loss itself)."""
    from dqnfast.prioritized import PrioritizedReplayBuffer

    written, weights_seen = [], []
    update_priorities = PrioritizedReplayBuffer.update_priorities
    sample = PrioritizedReplayBuffer.sample

    def spy_update(self, index, priorities):
        written.append((index.copy(), priorities.copy()))
        return update_priorities(self, index, priorities)

    def spy_sample(self, *args, **kwargs):
        b = sample(self, *args, **kwargs)
        weights_seen.append(b.weights.copy())
        return b

    monkeypatch.setattr(PrioritizedReplayBuffer, "update_priorities", spy_update)
    monkeypatch.setattr(PrioritizedReplayBuffer, "sample", spy_sample)
    res = bench_size(36, ["eager", "compile"], calls=2, rounds=1, warmup=3, shift=2, prioritized=True)
    assert len(written) == 2 * (3 + 1 + 2)  # per mode: the warm-up batches, then the timed calls
    assert all(len(i) == 32 and (p > 0).all() for i, p in written)
    assert any((w < 1).any() for w in weights_seen)  # weights that count: not all 1
    assert res["compile"]["loss_diff"] < 1e-5 and res["compile"]["diff"] < 1e-5


def test_network_times_each_named_network(monkeypatch, capsys):
    """--network reaches the learners it times: each one built is a named network (recorded as the
    learner builds it), in the order named, each in its own rows; by default the atari100k preset's."""
    from dqnfast import learner as learner_module
    from dqnfast.benchmarks import update

    built = []
    make = learner_module.make_q_network

    def spy(network, *args, **kwargs):
        built.append(network)
        return make(network, *args, **kwargs)

    monkeypatch.setattr(learner_module, "make_q_network", spy)
    assert build_parser().parse_args([]).network == [PRESETS["atari100k"].get("network", "nature")]
    assert update.main(["--network", "dopamine", "nature", "--sizes", "36", "--modes", "eager", "--calls", "1",
                        "--rounds", "1", "--warmup", "1"]) == 0
    # each network in the order named: its base learner and one per mode
    assert built == ["dopamine", "dopamine", "nature", "nature"]
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines() if line.startswith(("dopamine", "nature"))]
    assert rows == [["dopamine", "36", "eager"], ["nature", "36", "eager"]]
