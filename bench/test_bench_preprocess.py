"""pytest-benchmark cases for dqnfast.preprocess against OpenCV on the same work, and the Atari
wrapper against gymnasium's. Timing only: nothing here asserts a wall-clock threshold.

    PYTHONPATH=python python -m pytest bench/test_bench_preprocess.py --benchmark-group-by=group

Compare within a group (same run, same machine); `dqnfast bench preprocess` prints the ratios.
"""
from __future__ import annotations

import numpy as np
import pytest

import dqnfast

cv2 = pytest.importorskip("cv2")
pytest.importorskip("pytest_benchmark")

RNG = np.random.default_rng(0)
FRAME = RNG.integers(0, 256, (210, 160, 3), dtype=np.uint8)
PREV = RNG.integers(0, 256, (210, 160, 3), dtype=np.uint8)
BATCH = RNG.integers(0, 256, (32, 210, 160, 3), dtype=np.uint8)
OUT = np.empty((84, 84), np.uint8)
OUT_BATCH = np.empty((32, 84, 84), np.uint8)


def opencv(frame, interp, crop=None):
    if crop is not None:
        t, b, l, r = crop
        frame = frame[t:b, l:r]
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=interp)


@pytest.mark.benchmark(group="1 frame 210x160x3 -> 84x84 nearest")
def test_nearest_dqnfast(benchmark):
    benchmark(dqnfast.preprocess, FRAME)


@pytest.mark.benchmark(group="1 frame 210x160x3 -> 84x84 nearest")
def test_nearest_dqnfast_out(benchmark):
    benchmark(dqnfast.preprocess, FRAME, out=OUT)


@pytest.mark.benchmark(group="1 frame 210x160x3 -> 84x84 nearest")
def test_nearest_opencv(benchmark):
    benchmark(opencv, FRAME, cv2.INTER_NEAREST)


@pytest.mark.benchmark(group="1 frame, crop + max with prev, nearest")
def test_crop_prev_dqnfast(benchmark):
    benchmark(dqnfast.preprocess, FRAME, prev=PREV, crop=(34, 194, 8, 152))


@pytest.mark.benchmark(group="1 frame, crop + max with prev, nearest")
def test_crop_prev_opencv(benchmark):
    benchmark(lambda: opencv(np.maximum(FRAME, PREV), cv2.INTER_NEAREST, (34, 194, 8, 152)))


@pytest.mark.benchmark(group="batch of 32 frames, nearest (divide by 32)")
def test_batch_dqnfast(benchmark):
    benchmark(dqnfast.preprocess, BATCH, out=OUT_BATCH)


@pytest.mark.benchmark(group="batch of 32 frames, nearest (divide by 32)")
def test_batch_opencv(benchmark):
    def loop():
        for i in range(len(BATCH)):
            OUT_BATCH[i] = opencv(BATCH[i], cv2.INTER_NEAREST)

    benchmark(loop)


@pytest.mark.benchmark(group="1 frame -> 84x84 area")
def test_area_dqnfast(benchmark):
    benchmark(dqnfast.preprocess, FRAME, interp="area")


@pytest.mark.benchmark(group="1 frame -> 84x84 area")
def test_area_opencv(benchmark):
    benchmark(opencv, FRAME, cv2.INTER_AREA)


@pytest.mark.parametrize("which", ["dqnfast", "gymnasium"])
@pytest.mark.benchmark(group="Breakout: 200 agent steps through the preprocessing wrapper")
def test_wrapper_steps(benchmark, which):
    gym = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    from dqnfast.wrappers import AtariPreprocessing

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
    env = AtariPreprocessing(env) if which == "dqnfast" else gym.wrappers.AtariPreprocessing(env)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, 200)

    def run():
        for a in actions:
            _, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                env.reset()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    env.close()
