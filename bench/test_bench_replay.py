"""pytest-benchmark: replay add/sample against baselines in the same run.

    python -m pytest bench/test_bench_replay.py --benchmark-group-by=group
"""
import numpy as np
import pytest

from conftest import CAPACITY
from dqnfast import ReplayBuffer
from dqnfast.benchmarks.replay import fill
from dqnfast.replay_reference import PyReplayBuffer

SHAPE = (84, 84)


@pytest.fixture(scope="module")
def native():
    rb = ReplayBuffer(CAPACITY, SHAPE, seed=0)
    fill(rb, CAPACITY + CAPACITY // 10, SHAPE)
    return rb


@pytest.fixture(scope="module")
def reference():
    rb = PyReplayBuffer(min(CAPACITY, 100_000), SHAPE, seed=0)
    fill(rb, min(CAPACITY, 100_000) + 1000, SHAPE)
    return rb


@pytest.mark.benchmark(group="add")
@pytest.mark.parametrize("impl", ["native", "reference"])
def test_add(benchmark, impl, native, reference):
    rb = native if impl == "native" else reference
    frame = np.zeros(SHAPE, np.uint8)
    rb.start_episode(frame)
    benchmark(rb.add, 1, 1.0, frame, False)


@pytest.mark.benchmark(group="sample32")
def test_sample_native(benchmark, native):
    out = native.empty_batch(32)
    benchmark(native.sample, 32, out)


@pytest.mark.benchmark(group="sample32")
def test_sample_native_shared_frames(benchmark, native):
    out = native.empty_batch(32, shared_frames=True)  # obs/next_obs: views of one (32, 5, 84, 84) array
    benchmark(native.sample, 32, out)


@pytest.mark.benchmark(group="sample32")
def test_sample_memcpy_baseline(benchmark, native):
    valid = native.valid_indices()
    rng = np.random.default_rng(0)
    obs, nxt = np.empty((32, 4, *SHAPE), np.uint8), np.empty((32, 4, *SHAPE), np.uint8)
    benchmark(lambda: native.memcpy_baseline(valid[rng.integers(0, len(valid), 32)], obs, nxt))


@pytest.mark.benchmark(group="sample32")
def test_sample_numpy_fancy_indexing(benchmark, native):
    frames = native.frames_view()
    rng = np.random.default_rng(0)
    offsets = np.arange(-4, 0)

    def numpy_store():
        idx = rng.integers(4, CAPACITY - 1, 32)[:, None] + offsets
        return frames[idx], frames[idx + 1]

    benchmark(numpy_store)


@pytest.mark.benchmark(group="sample32")
def test_sample_reference(benchmark, reference):
    benchmark(reference.sample, 32)
