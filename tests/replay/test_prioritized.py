"""Prioritized replay: proportional draws, importance weights, stale updates, invalid slots."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dqnfast import PrioritizedReplayBuffer, ReplayBuffer
from dqnfast.batch import empty_prioritized_batch
from dqnfast.replay_reference import PyPrioritizedReplayBuffer
from support.frames import make_frame
from support.replay_checks import check_transition
from support.stats import assert_matches, sample_counts
from support.streams import StreamDriver

SHAPE = (6, 5)


def assert_same(x, y):
    for name in x._fields:
        np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_envs=st.integers(1, 3),
    extra=st.integers(0, 60),
    n_step=st.sampled_from([1, 1, 3]),
    alpha=st.sampled_from([0.0, 0.6, 1.0]),
    beta=st.sampled_from([0.0, 0.4, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_native_equals_reference(num_envs, extra, n_step, alpha, beta, seed):
    cap = num_envs * 4 + extra
    kw = dict(stack=3, num_envs=num_envs, seed=seed, n_step=n_step, gamma=0.9, alpha=alpha)
    rb, ref = PrioritizedReplayBuffer(cap, SHAPE, **kw), PyPrioritizedReplayBuffer(cap, SHAPE, **kw)
    drv = StreamDriver(num_envs, SHAPE, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        drv.run([rb, ref], int(rng.integers(1, 40)))
        assert len(rb) == len(ref)
        if len(rb) == 0:
            continue
        x, y = rb.sample(12, beta=beta), ref.sample(12, beta=beta)
        assert_same(x, y)
        pri = rng.random(12) * 4
        assert rb.update_priorities(x.index, pri) == ref.update_priorities(y.index, pri)
        assert rb.max_priority == ref.max_priority


@pytest.mark.parametrize("pad", ["zero", "first"])
def test_shared_frames_batches_equal_the_standard_layout(pad):
    kw = dict(stack=3, num_envs=2, seed=21, pad=pad, alpha=0.7)
    a, b = PrioritizedReplayBuffer(53, SHAPE, **kw), PrioritizedReplayBuffer(53, SHAPE, **kw)
    ref = PyPrioritizedReplayBuffer(53, SHAPE, **kw)
    drv = StreamDriver(2, SHAPE, seed=6, p_terminate=0.15, p_truncate=0.1)
    rng = np.random.default_rng(0)
    out = b.empty_prioritized_batch(24, shared_frames=True)
    frames = out.obs.base
    assert frames.shape == (24, 4, *SHAPE) and out.next_obs.base is frames
    for _ in range(10):
        drv.run([a, b, ref], 30)
        frames[:] = 0xAB  # a frame left unwritten would show
        x = a.sample(24, beta=0.5)
        assert b.sample(24, beta=0.5, out=out) is out
        assert_same(x, out)
        ref_out = ref.sample(24, beta=0.5, out=b.empty_prioritized_batch(24, shared_frames=True))
        assert_same(x, ref_out)
        pri = rng.random(24) * 3
        for buf in (a, b, ref):
            buf.update_priorities(x.index, pri)
    assert a.writes > 5 * a.capacity


def test_n_step_prioritized_buffers_refuse_shared_batches():
    rb = PrioritizedReplayBuffer(60, SHAPE, stack=2, seed=0, n_step=2)
    StreamDriver(1, SHAPE, seed=1).run([rb], 40)
    with pytest.raises(ValueError, match=r"a shared-frames batch needs n_step == 1 .*this buffer has n_step 2"):
        rb.empty_prioritized_batch(4, shared_frames=True)
    out = empty_prioritized_batch(4, 2, SHAPE, shared_frames=True)
    with pytest.raises(ValueError, match=r"a shared-frames batch needs n_step == 1 .*this buffer has n_step 2"):
        rb.sample(4, out=out)


def test_sampling_frequencies_follow_priority_to_the_alpha():
    alpha = 0.7
    rb = PrioritizedReplayBuffer(60, SHAPE, stack=2, seed=1, alpha=alpha)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    for s in range(1, 50):
        rb.add(s, 0.0, make_frame(0, 0, s, SHAPE), False)
    idx = rb.valid_indices()
    pri = np.random.default_rng(0).uniform(0.1, 5.0, len(idx))
    assert rb.update_priorities(idx, pri) == len(idx)
    counts = sample_counts(lambda: rb.sample(1000).index, idx, 60)
    assert_matches(counts, pri ** alpha)


def test_importance_weights():
    rb = PrioritizedReplayBuffer(40, SHAPE, stack=1, seed=2, alpha=1.0)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    for s in range(1, 11):
        rb.add(s, 0.0, make_frame(0, 0, s, SHAPE), False)
    idx = rb.valid_indices()
    pri = np.arange(1, 11, dtype=float)
    rb.update_priorities(idx, pri)
    b = rb.sample(64, beta=0.5)
    p = pri[np.searchsorted(idx, b.index)] / pri.sum()
    w = (len(rb) * p) ** -0.5
    np.testing.assert_allclose(b.weights, w / w.max(), rtol=1e-6)
    assert b.weights.dtype == np.float32 and b.weights.max() == 1.0
    assert (rb.sample(8, beta=0.0).weights == 1.0).all()


def test_new_transitions_get_the_max_priority_and_starts_get_none():
    rb = PrioritizedReplayBuffer(40, SHAPE, stack=1, seed=0, alpha=0.5)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    t1 = rb.add(1, 0.0, make_frame(0, 0, 1, SHAPE), False)
    assert rb._leaf(0) == 0.0 and rb._leaf(t1) == 1.0
    rb.update_priorities(np.array([t1]), np.array([9.0]))
    assert rb.max_priority == 9.0 and rb._leaf(t1) == 3.0
    t2 = rb.add(2, 0.0, make_frame(0, 0, 2, SHAPE), False)
    assert rb._leaf(t2) == 3.0  # 9 ** 0.5


def test_stale_updates_are_ignored_and_invalid_slots_never_sampled():
    rb = PrioritizedReplayBuffer(30, SHAPE, stack=3, seed=0, alpha=1.0)
    drv = StreamDriver(1, SHAPE, seed=3, p_terminate=0.3)
    drv.run([rb], 40)
    b = rb.sample(10)
    drv.run([rb], 60)  # every slot is overwritten since
    assert rb.update_priorities(b.index, np.full(10, 100.0)) == 0
    assert rb.max_priority == 1.0
    valid = set(rb.valid_indices().tolist())
    big = rb.sample(3000)
    assert set(big.index.tolist()) <= valid  # no episode start, no transition with a lost frame
    for i in range(0, 3000, 50):
        check_transition(big, i)


def test_with_n_step_only_complete_windows_are_drawn():
    rb = PrioritizedReplayBuffer(100, SHAPE, stack=2, seed=0, n_step=3, gamma=0.5)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    for s in range(1, 6):
        rb.add(s, 1.0, make_frame(0, 0, s, SHAPE), False)
    b = rb.sample(500)
    assert set(b.index.tolist()) == {1, 2, 3}  # steps 4 and 5 still wait for their future
    assert (b.discount == np.float32(0.125)).all() and (b.reward == 1.75).all()


def test_snapshot_keeps_priorities(tmp_path):
    rb = PrioritizedReplayBuffer(80, SHAPE, stack=2, num_envs=2, seed=5, alpha=0.8)
    drv = StreamDriver(2, SHAPE, seed=5)
    drv.run([rb], 150)
    b = rb.sample(20)
    rb.update_priorities(b.index, np.linspace(0.5, 6, 20))
    rb.save(tmp_path / "per")
    loaded = ReplayBuffer.load(tmp_path / "per")  # a prioritized snapshot loads as one
    assert isinstance(loaded, PrioritizedReplayBuffer) and loaded.alpha == 0.8
    assert loaded.max_priority == rb.max_priority
    drv.run([rb, loaded], 50)
    assert_same(rb.sample(32, beta=0.3), loaded.sample(32, beta=0.3))
    ReplayBuffer(50, SHAPE).save(tmp_path / "uniform")
    with pytest.raises(ValueError, match="uniform ReplayBuffer"):
        PrioritizedReplayBuffer.load(tmp_path / "uniform")


def test_concurrent_adds_while_sampling_and_updating():
    rb = PrioritizedReplayBuffer(200, SHAPE, stack=3, num_envs=2, seed=0, n_step=2)
    errors = []

    def feed(env):
        drv = StreamDriver(2, SHAPE, seed=env)
        try:
            for _ in range(3000):
                drv.one([rb], env)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=feed, args=(e,)) for e in range(2)]
    for t in threads:
        t.start()
    done = 0
    while any(t.is_alive() for t in threads) or done < 20:
        if len(rb) == 0:
            continue
        b = rb.sample(32, beta=0.4)
        rb.update_priorities(b.index, np.abs(b.reward) + 0.1)
        assert np.isfinite(b.weights).all() and (b.weights > 0).all()
        done += 1
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("call, exc, msg", [
    (lambda rb: rb.update_priorities(np.array([1, 2]), np.array([1.0])), ValueError, "same length"),
    (lambda rb: rb.update_priorities(np.array([1]), np.array([-1.0])), ValueError, "finite and >= 0"),
    (lambda rb: rb.update_priorities(np.array([1]), np.array([np.nan])), ValueError, "finite and >= 0"),
    (lambda rb: rb.update_priorities([1], [1.0]), TypeError, "index must be a numpy.ndarray"),
    (lambda rb: rb.update_priorities(np.array([1.5]), np.array([1.0])), TypeError, "index must be an array of integers"),
    (lambda rb: rb.sample(4, beta=-1.0), ValueError, "beta must be finite and >= 0"),
    (lambda rb: rb.sample(4, beta="x"), TypeError, "beta must be a number"),
    (lambda rb: rb.sample(4, beta=float("inf")), ValueError, "beta must be finite and >= 0"),
    (lambda rb: rb.update_priorities(np.array([[1]]), np.array([1.0])), ValueError, r"index must be 1-D, got shape \(1, 1\)"),
    (lambda rb: rb.sample(0), ValueError, "batch_size must be positive"),
])
def test_bad_input(call, exc, msg):
    rb = PrioritizedReplayBuffer(50, SHAPE, stack=1, seed=0)
    StreamDriver(1, SHAPE).run([rb], 20)
    with pytest.raises(exc, match=msg):
        call(rb)


def test_bad_construction_and_uniform_buffers_refuse_priority_calls():
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        PrioritizedReplayBuffer(50, SHAPE, alpha=-0.5)
    with pytest.raises(TypeError, match="alpha must be a number, got NoneType"):
        PrioritizedReplayBuffer(50, SHAPE, alpha=None)
    assert PrioritizedReplayBuffer(50, SHAPE, alpha=np.float32(0.5)).alpha == 0.5  # numpy numbers are numbers
    with pytest.raises(TypeError, match="update_priorities needs a PrioritizedReplayBuffer"):
        ReplayBuffer(50, SHAPE).update_priorities(np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="no sampleable transition"):
        PrioritizedReplayBuffer(50, SHAPE).sample(2)
