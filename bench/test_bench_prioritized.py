"""pytest-benchmark: prioritized sample+update and save/load, next to cpprb when it is installed."""
import numpy as np
import pytest

from dqnfast import PrioritizedReplayBuffer, ReplayBuffer
from dqnfast.benchmarks.replay import fill

SHAPE = (84, 84)
CAP = 20_000


@pytest.fixture(scope="module")
def per():
    rb = PrioritizedReplayBuffer(CAP, SHAPE, seed=0)
    fill(rb, CAP + 1000, SHAPE)
    return rb


@pytest.fixture(scope="module")
def cpprb_per():
    cpprb = pytest.importorskip("cpprb")
    env = {"obs": {"shape": (4, *SHAPE), "dtype": np.uint8}, "act": {"dtype": np.int64}, "rew": {}, "done": {}}
    rb = cpprb.PrioritizedReplayBuffer(CAP, env, next_of="obs", stack_compress="obs", alpha=0.6)
    pool = np.random.default_rng(0).integers(0, 256, (8, 4, *SHAPE), dtype=np.uint8)
    for i in range(CAP):
        rb.add(obs=pool[i & 7], act=i & 3, rew=1.0, next_obs=pool[(i + 1) & 7], done=0.0)
    return rb


@pytest.mark.benchmark(group="prioritized sample32+update")
def test_dqnfast_prioritized(benchmark, per):
    rng = np.random.default_rng(0)
    out = per.empty_prioritized_batch(32)

    def step():
        b = per.sample(32, beta=0.4, out=out)
        per.update_priorities(b.index, rng.random(32) + 0.1)

    benchmark(step)


@pytest.mark.benchmark(group="prioritized sample32+update")
def test_cpprb_prioritized(benchmark, cpprb_per):
    rng = np.random.default_rng(0)

    def step():
        b = cpprb_per.sample(32, beta=0.4)
        cpprb_per.update_priorities(b["indexes"], rng.random(32) + 0.1)

    benchmark(step)


@pytest.mark.benchmark(group="save+load (20k transitions)")
def test_dqnfast_save_load(benchmark, per, tmp_path):
    path = tmp_path / "rb"
    benchmark.pedantic(lambda: (per.save(path, durable=False), ReplayBuffer.load(path)), rounds=3)


@pytest.mark.benchmark(group="save+load (20k transitions)")
def test_cpprb_save_load(benchmark, cpprb_per, tmp_path):
    path = str(tmp_path / "rb.npz")
    env = {"obs": {"shape": (4, *SHAPE), "dtype": np.uint8}, "act": {"dtype": np.int64}, "rew": {}, "done": {}}

    def roundtrip():
        import cpprb

        cpprb_per.save_transitions(path)
        cpprb.PrioritizedReplayBuffer(CAP, env, next_of="obs", stack_compress="obs").load_transitions(path)

    benchmark.pedantic(roundtrip, rounds=1)
