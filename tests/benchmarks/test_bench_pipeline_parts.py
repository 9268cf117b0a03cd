"""The parts of `dqnfast bench pipeline` that decide what its ratios mean: the raw-ALE baseline
replays exactly the emulation a path asked for, and replay buffers are timed full."""
from __future__ import annotations

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

from dqnfast.benchmarks import pipeline as bp  # noqa: E402
from dqnfast.replay import ReplayBuffer  # noqa: E402

pytestmark = pytest.mark.atari
BREAKOUT = "ALE/Breakout-v5"


def test_raw_ale_replays_a_paths_emulation_exactly():
    emu = bp.record_emulation(lambda: bp.dqnfast_env(BREAKOUT, 84, 4, seed=0), steps=120, seed=0)
    acts = [op for op in emu.ops if op is not None]
    # Agent steps of 4 frames, plus the protocol's own frames (no-ops, FIRE after each reset).
    assert len(acts) >= 4 * 120 and None in emu.setup
    assert bp.bench_raw_ale(BREAKOUT, emu, seed=0) > 0  # checks the emulator's RAM at the end
    tampered = bp.Emulation(emu.setup, emu.ops[:-8], emu.final_ram)
    with pytest.raises(RuntimeError, match="diverged"):
        bp.bench_raw_ale(BREAKOUT, tampered, seed=0)


def test_prefill_leaves_the_buffer_full():
    rb = ReplayBuffer(2500, frame_shape=(4, 4), stack=4, seed=0)
    bp.prefill(rb, episode_length=1000)
    assert len(rb) >= 2500 - 3 * 4  # all but each episode's start and its unstackable oldest frames
    b = rb.sample(64)
    assert (b.obs == 0).all() and b.obs.shape == (64, 4, 4, 4)


def test_stacked_numpy_buffer_prefill_marks_it_full():
    nb = bp.StackedNumpyBuffer(50, (4, 2, 2), seed=0)
    nb.prefill()
    assert nb.full
    obs, *_ = nb.sample(200)
    assert obs.shape == (200, 4, 2, 2) and (obs == 0).all()  # (an empty one could not sample at all)
