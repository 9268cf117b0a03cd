"""Semantics of dqnfast.ReplayBuffer, each pinned against self-identifying frames and the
pure-Python reference buffer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dqnfast import Batch, ReplayBuffer, empty_batch
from dqnfast.batch import shared_frames
from dqnfast.replay_reference import PyReplayBuffer
from support.frames import check_stack, decode, make_frame
from support.replay_checks import assert_batches_equal, check_transition
from support.stats import assert_matches, sample_counts
from support.streams import StreamDriver, encode_action, reward_of

SHAPE = (6, 5)


def one_episode(rb, frames, terminal="terminated", env=0):
    """Writes frames f0..fT as one episode; the last step ends it as `terminal`."""
    rb.start_episode(frames[0], env)
    idx = []
    for i in range(1, len(frames)):
        last = i == len(frames) - 1
        idx.append(rb.add(i, float(i), frames[i], last and terminal == "terminated",
                          last and terminal == "truncated", env))
    return idx


# ---- the layout of a transition ---------------------------------------------------------------

@pytest.mark.parametrize("Buffer", [ReplayBuffer, PyReplayBuffer])
def test_transition_i_has_obs_f_i_minus_3_to_i_and_zero_padding(Buffer):
    rb = Buffer(100, SHAPE, stack=4, seed=0)
    frames = [make_frame(0, 0, s, SHAPE) for s in range(7)]
    idx = one_episode(rb, frames)
    b = rb.gather(np.array(idx))
    zero = np.zeros(SHAPE, np.uint8)
    for i in range(6):  # transition i: obs = f[i-3..i], next_obs = f[i-2..i+1]
        want_obs = [frames[k] if k >= 0 else zero for k in range(i - 3, i + 1)]
        want_next = [frames[k] if k >= 0 else zero for k in range(i - 2, i + 2)]
        np.testing.assert_array_equal(b.obs[i], np.stack(want_obs))
        np.testing.assert_array_equal(b.next_obs[i], np.stack(want_next))
        assert b.action[i] == i + 1 and b.reward[i] == i + 1
    assert list(b.terminated) == [False] * 5 + [True]
    assert not b.truncated.any()
    assert len(rb) == 6


@pytest.mark.parametrize("Buffer", [ReplayBuffer, PyReplayBuffer])
def test_pad_first_repeats_the_episodes_first_frame(Buffer):
    rb = Buffer(100, SHAPE, stack=4, seed=0, pad="first")
    assert rb.pad == "first"
    frames = [make_frame(0, 0, s, SHAPE) for s in range(4)]
    rb.start_episode(frames[0])
    np.testing.assert_array_equal(rb.stacked(), np.stack([frames[0]] * 4))
    idx = [rb.add(i, 0.0, frames[i], False) for i in range(1, 4)]
    b = rb.gather(np.array(idx))
    for i in range(3):  # transition i: obs = f[max(0, i-3)..i], next_obs = f[max(0, i-2)..i+1]
        np.testing.assert_array_equal(b.obs[i], np.stack([frames[max(0, k)] for k in range(i - 3, i + 1)]))
        np.testing.assert_array_equal(b.next_obs[i], np.stack([frames[max(0, k)] for k in range(i - 2, i + 2)]))


def test_pad_first_matches_gymnasiums_frame_stack_observation():
    gym = pytest.importorskip("gymnasium")
    from gymnasium.wrappers import FrameStackObservation

    class Counter(gym.Env):  # observation: a self-identifying frame of the step count
        observation_space = gym.spaces.Box(0, 255, SHAPE, np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.ep = getattr(self, "ep", -1) + 1
            self.t = 0
            return make_frame(0, self.ep, 0, SHAPE), {}

        def step(self, action):
            self.t += 1
            return make_frame(0, self.ep, self.t, SHAPE), 0.0, self.t == 6, False, {}

    env = FrameStackObservation(Counter(), stack_size=4)  # padding_type="reset": the first frame repeated
    rb = ReplayBuffer(100, SHAPE, stack=4, pad="first")
    for _ in range(2):
        obs, _ = env.reset()
        rb.start_episode(obs[-1])
        np.testing.assert_array_equal(rb.stacked(), obs)
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(0)
            rb.add(0, r, obs[-1], term, trunc)
            np.testing.assert_array_equal(rb.stacked(), obs)
            done = term or trunc


@pytest.mark.parametrize("Buffer", [ReplayBuffer, PyReplayBuffer])
def test_terminated_and_truncated_are_kept_apart_and_truncation_keeps_final_obs(Buffer):
    rb = Buffer(100, SHAPE, stack=2, seed=0)
    f = [make_frame(0, 0, s, SHAPE) for s in range(3)]
    g = [make_frame(0, 1, s, SHAPE) for s in range(3)]
    i_trunc = one_episode(rb, f, "truncated")[-1]
    i_term = one_episode(rb, g, "terminated")[-1]
    b = rb.gather(np.array([i_trunc, i_term]))
    assert list(b.truncated) == [True, False] and list(b.terminated) == [False, True]
    np.testing.assert_array_equal(b.next_obs[0], np.stack([f[1], f[2]]))  # the real final observation
    np.testing.assert_array_equal(b.next_obs[1], np.stack([g[1], g[2]]))


@pytest.mark.parametrize("Buffer", [ReplayBuffer, PyReplayBuffer])
def test_stacked_is_the_obs_of_the_transition_taken_from_it(Buffer):
    rb = Buffer(50, SHAPE, stack=3, num_envs=2, seed=0)
    drv = StreamDriver(2, SHAPE, seed=3)
    for _ in range(120):
        env = int(drv.rng.integers(2))
        if drv.active[env]:
            state = rb.stacked(env)
            drv.one([rb], env)
            if drv.step[env] > 0:  # a step, not an abandoned episode's restart
                t = rb.writes - 1
                np.testing.assert_array_equal(rb.gather(np.array([t])).obs[0], state)
        else:
            drv.one([rb], env)


def test_stacked_is_exact_even_after_other_streams_overwrote_its_frames():
    rb = ReplayBuffer(10, SHAPE, stack=3, num_envs=2, seed=0)
    rb.start_episode(make_frame(0, 0, 0, SHAPE), 0)
    rb.add(1, 0.0, make_frame(0, 0, 1, SHAPE), False, False, 0)
    rb.start_episode(make_frame(1, 0, 0, SHAPE), 1)
    for s in range(1, 30):  # env 1 writes three capacities' worth while env 0 idles
        rb.add(1, 0.0, make_frame(1, 0, s, SHAPE), False, False, 1)
    assert [decode(f) for f in rb.stacked(0)] == [None, (0, 0, 0), (0, 0, 1)]
    rb.add(2, 0.0, make_frame(0, 0, 2, SHAPE), False, False, 0)
    assert [decode(f) for f in rb.stacked(0)] == [(0, 0, 0), (0, 0, 1), (0, 0, 2)]
    assert rb.writes - 1 not in rb.valid_indices()  # that step's obs frames are gone from the store


def test_stacked_writes_into_out_and_starts_with_padding():
    rb = ReplayBuffer(20, SHAPE, stack=3)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    out = np.full((3, *SHAPE), 7, np.uint8)
    assert rb.stacked(out=out) is out
    assert [decode(f) for f in out] == [None, None, (0, 0, 0)]


def test_nothing_is_hard_coded_to_84x84x4():
    rb = ReplayBuffer(64, (3, 7, 2), stack=6, seed=1)
    frames = [make_frame(0, 0, s, (3, 7, 2)) for s in range(10)]
    one_episode(rb, frames)
    b = rb.sample(5)
    assert b.obs.shape == (5, 6, 3, 7, 2) and b.next_obs.shape == (5, 6, 3, 7, 2)
    for i in range(5):
        check_stack(b.obs[i])


def test_sample_dtypes_and_shapes():
    rb = ReplayBuffer(100, (84, 84), seed=1)
    one_episode(rb, [np.full((84, 84), s, np.uint8) for s in range(1, 10)])
    b = rb.sample(32)
    assert b.obs.shape == b.next_obs.shape == (32, 4, 84, 84)
    assert b.obs.dtype == np.uint8 and b.next_obs.dtype == np.uint8
    assert b.action.dtype == np.int64 and b.reward.dtype == np.float32 and b.index.dtype == np.int64
    assert b.terminated.dtype == np.bool_ and b.truncated.dtype == np.bool_
    assert all(a.flags.c_contiguous for a in b)


# ---- streams, wrap-around and the write cursor ---------------------------------------------------

def test_no_state_mixes_episodes_or_streams_under_wraparound():
    rb = ReplayBuffer(97, SHAPE, stack=4, num_envs=3, seed=5)
    drv = StreamDriver(3, SHAPE, seed=11)
    for _ in range(40):
        drv.run([rb], 37)
        valid = rb.valid_indices()
        assert len(valid) == len(rb)
        b = rb.gather(valid)
        for i in range(len(valid)):
            check_transition(b, i)


def test_oldest_frames_are_overwritten_first_and_len_stays_near_capacity():
    cap = 200
    rb = ReplayBuffer(cap, SHAPE, stack=4, seed=0)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    for s in range(1, 1000):
        rb.add(s, 0.0, make_frame(0, 0, s, SHAPE), False)
        # once full, the 4 oldest steps have lost the oldest frame of their obs
        assert len(rb) == (s if s < cap else cap - 4)
    valid = rb.valid_indices()
    assert valid[0] == 1000 - cap + 4 and valid[-1] == 999
    b = rb.gather(valid[:1])
    assert decode(b.obs[0][0]) == (0, 0, 1000 - cap)  # the oldest frame still stored
    with pytest.raises(IndexError, match="not a sampleable transition"):
        rb.gather(np.array([valid[0] - 1]))


def test_a_transition_is_dropped_exactly_when_a_frame_of_its_obs_is_overwritten():
    rb = ReplayBuffer(12, SHAPE, stack=3, seed=0)
    ref = PyReplayBuffer(12, SHAPE, stack=3, seed=0)
    drv = StreamDriver(1, SHAPE, seed=2, p_terminate=0.2, p_truncate=0.1)
    for _ in range(300):
        drv.run([rb, ref], 1)
        np.testing.assert_array_equal(rb.valid_indices(), ref.valid_indices())
        assert len(rb) == len(ref.valid_indices())


@pytest.mark.parametrize("vectorized", [False, True])
def test_matches_reference_on_long_multi_env_streams(vectorized):
    rb = ReplayBuffer(150, SHAPE, stack=4, num_envs=4, seed=42)
    ref = PyReplayBuffer(150, SHAPE, stack=4, num_envs=4, seed=42)
    drv = StreamDriver(4, SHAPE, seed=7)
    for _ in range(12):
        if vectorized:
            drv.run_vectorized([rb, ref], 20)
        else:
            drv.run([rb, ref], 70)
        assert rb.writes == ref.writes and len(rb) == len(ref)
        np.testing.assert_array_equal(rb.valid_indices(), ref.valid_indices())
        assert_batches_equal(rb.sample(64), ref.sample(64))
        for e in range(4):
            np.testing.assert_array_equal(rb.stacked(e), ref.stacked(e))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_envs=st.integers(1, 3),
    stack=st.integers(1, 5),
    extra_capacity=st.integers(0, 40),
    n_ops=st.integers(1, 250),
    seed=st.integers(0, 2**32 - 1),
    frame_shape=st.sampled_from([(1,), (2, 3), (4, 4), (2, 2, 3)]),
    p_end=st.floats(0.0, 0.5),
    pad=st.sampled_from(["zero", "first"]),
    n_step=st.sampled_from([1, 1, 2, 3, 5]),
    gamma=st.sampled_from([0.0, 0.5, 0.99, 1.0]),
)
def test_native_equals_reference_on_random_streams(num_envs, stack, extra_capacity, n_ops, seed, frame_shape, p_end,
                                                   pad, n_step, gamma):
    cap = num_envs * (stack + 1) + extra_capacity
    kw = dict(stack=stack, num_envs=num_envs, seed=seed, pad=pad, n_step=n_step, gamma=gamma)
    rb = ReplayBuffer(cap, frame_shape, **kw)
    ref = PyReplayBuffer(cap, frame_shape, **kw)
    drv = StreamDriver(num_envs, frame_shape, seed=seed, p_terminate=p_end / 2, p_truncate=p_end / 2)
    drv.run([rb, ref], n_ops)
    assert len(rb) == len(ref)
    valid = rb.valid_indices()
    np.testing.assert_array_equal(valid, ref.valid_indices())
    if len(valid):
        assert_batches_equal(rb.gather(valid), ref.gather(valid))
        for _ in range(3):
            assert_batches_equal(rb.sample(17), ref.sample(17))
        length = 1 + seed % 7
        try:
            y = ref.sample_sequences(5, length)
        except ValueError as e:
            assert "whole sequence stored" in str(e)
            with pytest.raises(ValueError, match="whole sequence stored"):
                rb.sample_sequences(5, length)
            assert_batches_equal(rb.sample(3), ref.sample(3))  # both spent the same call numbers
        else:
            x = rb.sample_sequences(5, length)
            for name in x._fields:
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
    else:
        for buf in (rb, ref):
            with pytest.raises(ValueError, match="no sampleable transition"):
                buf.sample(1)
    for e in range(num_envs):
        if drv.episode[e] >= 0:
            np.testing.assert_array_equal(rb.stacked(e), ref.stacked(e))


def test_vectorized_calls_equal_one_call_per_env():
    a = ReplayBuffer(80, SHAPE, stack=3, num_envs=3, seed=9)
    b = ReplayBuffer(80, SHAPE, stack=3, num_envs=3, seed=9)
    first = np.stack([make_frame(e, 0, 0, SHAPE) for e in range(3)])
    a.start_episodes(first)
    for e in range(3):
        b.start_episode(first[e], e)
    for s in range(1, 30):
        nxt = np.stack([make_frame(e, 0, s, SHAPE) for e in range(3)])
        acts, rews = np.array([s, s + 1, s + 2]), np.array([0.5, 1.5, 2.5], np.float32)
        a.add_batch(acts, rews, nxt, np.zeros(3, bool))
        for e in range(3):
            b.add(int(acts[e]), float(rews[e]), nxt[e], False, False, e)
    np.testing.assert_array_equal(a.valid_indices(), b.valid_indices())
    assert_batches_equal(a.sample(40), b.sample(40))


def test_add_batch_on_a_subset_of_envs():
    rb = ReplayBuffer(60, SHAPE, stack=2, num_envs=3, seed=0)
    rb.start_episodes(np.stack([make_frame(e, 0, 0, SHAPE) for e in (2, 0)]), np.array([2, 0]))
    assert [rb.episode_active(e) for e in range(3)] == [True, False, True]
    rb.add_batch(np.array([7]), np.array([1.0]), make_frame(2, 0, 1, SHAPE)[None], np.array([True]), envs=np.array([2]))
    assert not rb.episode_active(2)
    b = rb.gather(rb.valid_indices())
    assert b.action.tolist() == [7] and b.terminated.tolist() == [True]
    assert decode(b.next_obs[0][-1]) == (2, 0, 1)


# ---- sampling --------------------------------------------------------------------------------

def filled(seed=0, cap=300, num_envs=2):
    rb = ReplayBuffer(cap, SHAPE, stack=4, num_envs=num_envs, seed=seed)
    StreamDriver(num_envs, SHAPE, seed=1).run([rb], 1000)
    return rb


def test_sample_is_reproducible_for_a_seed_and_differs_across_seeds():
    a, b, c = filled(seed=3), filled(seed=3), filled(seed=4)
    for _ in range(3):
        x, y, z = a.sample(32), b.sample(32), c.sample(32)
        assert_batches_equal(x, y)
        assert not np.array_equal(x.index, z.index)


def test_sample_rows_are_real_transitions():
    rb = filled()
    b = rb.sample(500)
    assert np.isin(b.index, rb.valid_indices()).all()
    for i in range(len(b.index)):
        check_transition(b, i)
    assert_batches_equal(rb.gather(b.index), b)


def test_sample_is_uniform_over_sampleable_transitions():
    rb = filled(cap=120, num_envs=1)
    valid = rb.valid_indices()
    counts = sample_counts(lambda: rb.sample(1000).index, valid, 100)
    assert_matches(counts, np.ones(len(valid)))


def test_sample_works_when_almost_nothing_is_sampleable():
    # Episodes of one step: half the slots are episode starts. Plus a buffer whose only
    # transition sits among many start frames (rejections exhaust, the scan fallback draws).
    rb = ReplayBuffer(400, SHAPE, stack=2, seed=0)
    for ep in range(199):
        rb.start_episode(make_frame(0, ep, 0, SHAPE))
    rb.add(5, 1.0, make_frame(0, 198, 1, SHAPE), True)
    b = rb.sample(10)
    assert (b.action == 5).all() and len(rb) == 1


def test_sample_into_caller_arrays():
    rb = filled()
    out = rb.empty_batch(16)
    arrays = list(out)
    got = rb.sample(16, out=out)
    assert got is out and all(a is b for a, b in zip(got, arrays))
    for i in range(16):
        check_transition(out, i)


def test_sample_into_rejects_wrong_arrays():
    rb = filled()
    out = rb.empty_batch(8)
    with pytest.raises(TypeError, match="reward must have dtype float32"):
        rb.sample(8, out=out._replace(reward=np.empty(8, np.float64)))
    with pytest.raises(TypeError, match="action must have dtype int64, got >i8"):  # not this machine's byte order
        rb.sample(8, out=out._replace(action=np.empty(8, ">i8")))
    with pytest.raises(ValueError, match=r"obs must have shape \(8, 4, 6, 5\)"):
        rb.sample(8, out=out._replace(obs=np.empty((8, 4, 5, 6), np.uint8)))
    with pytest.raises(ValueError, match="C-contiguous"):
        rb.sample(8, out=out._replace(next_obs=np.empty((8, 4, 6, 10), np.uint8)[..., ::2]))
    ro = np.empty(8, np.int64)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        rb.sample(8, out=out._replace(action=ro))
    with pytest.raises(ValueError, match=r"index must have shape \(8,\)"):
        rb.sample(8, out=out._replace(index=np.empty(9, np.int64)))


# ---- shared-frames batches: obs and next_obs as two views of one (B, stack + 1, ...) array ---------

def shared_out(rb, n, fill=0xAB):
    """rb.empty_batch(n, shared_frames=True), its frames pre-set to a value no test frame has, so a
    frame the buffer failed to write shows up."""
    out = rb.empty_batch(n, shared_frames=True)
    out.obs.base[:] = fill
    return out


def test_empty_batch_with_shared_frames_is_two_views_of_one_array():
    rb = ReplayBuffer(50, SHAPE, stack=4)
    b = rb.empty_batch(3, shared_frames=True)
    frames = b.obs.base
    assert frames.shape == (3, 5, *SHAPE) and frames.dtype == np.uint8 and frames.flags.c_contiguous
    assert b.obs.shape == b.next_obs.shape == (3, 4, *SHAPE) and b.next_obs.base is frames
    assert shared_frames(b) is frames
    b.obs[:, 1] = 7  # writing obs writes next_obs
    assert (b.next_obs[:, 0] == 7).all()
    for name in Batch._fields[1:]:  # the rest is as in the standard layout
        if name != "next_obs":
            std = getattr(rb.empty_batch(3), name)
            assert getattr(b, name).shape == std.shape and getattr(b, name).dtype == std.dtype
    assert shared_frames(rb.empty_batch(3)) is None
    assert shared_frames(empty_batch(3, 4, SHAPE, shared_frames=True)) is not None


def test_shared_frames_finds_the_array_behind_views_of_a_larger_one():
    big = np.zeros((5, 5, *SHAPE), np.uint8)
    b = empty_batch(3, 4, SHAPE)._replace(obs=big[1:4, :4], next_obs=big[1:4, 1:])
    frames = shared_frames(b)
    assert frames.shape == (3, 5, *SHAPE) and np.shares_memory(frames, big)
    frames[:] = 9
    assert (big[1:4] == 9).all() and not big[0].any() and not big[4].any()
    # one frame too far apart, shifted by two, or the wrong way round: not the layout
    wide = np.zeros((3, 6, *SHAPE), np.uint8)
    for obs, nxt in [(wide[:, :4], wide[:, 1:5]), (wide[:, :4], wide[:, 2:6]), (big[:3, 1:], big[:3, :4])]:
        assert shared_frames(b._replace(obs=obs, next_obs=nxt)) is None


@pytest.mark.parametrize("pad", ["zero", "first"])
@pytest.mark.parametrize("num_envs", [1, 3])
def test_shared_frames_sample_equals_the_standard_layout(pad, num_envs):
    # Two buffers fed the same streams with the same seed draw the same rows; a small capacity
    # wraps around many times; episodes start, terminate, truncate and are abandoned.
    kw = dict(stack=4, num_envs=num_envs, seed=13, pad=pad)
    a, b = ReplayBuffer(61, SHAPE, **kw), ReplayBuffer(61, SHAPE, **kw)
    ref = PyReplayBuffer(61, SHAPE, **kw)
    drv = StreamDriver(num_envs, SHAPE, seed=4, p_terminate=0.15, p_truncate=0.1)
    seen_start = seen_term = seen_trunc = 0
    for _ in range(15):
        drv.run([a, b, ref], 40)
        std = a.sample(48)
        out = shared_out(b, 48)
        assert b.sample(48, out=out) is out
        assert_batches_equal(std, out)
        assert_batches_equal(std, ref.sample(48, out=shared_out(b, 48)))
        if pad == "zero":
            for i in range(48):
                check_transition(out, i)
            seen_start += int((~out.obs.reshape(48, 4, -1).any(axis=2)).any(axis=1).sum())  # zero padding
        else:
            seen_start += sum(decode(out.obs[i][0])[2] == decode(out.obs[i][1])[2] for i in range(48))
        seen_term += int(out.terminated.sum())
        seen_trunc += int(out.truncated.sum())
    assert a.writes > 8 * a.capacity  # wrapped around
    assert seen_start and seen_term and seen_trunc  # episode starts and both kinds of ends were sampled


@pytest.mark.parametrize("pad", ["zero", "first"])
def test_gather_into_a_shared_batch_equals_the_standard_layout(pad):
    rb = ReplayBuffer(97, SHAPE, stack=3, num_envs=2, seed=0, pad=pad)
    ref = PyReplayBuffer(97, SHAPE, stack=3, num_envs=2, seed=0, pad=pad)
    StreamDriver(2, SHAPE, seed=8, p_terminate=0.2).run([rb, ref], 400)
    valid = rb.valid_indices()  # every sampleable transition: all episode starts and ends among them
    out = shared_out(rb, len(valid))
    assert rb.gather(valid, out=out) is out
    assert_batches_equal(out, rb.gather(valid))
    assert_batches_equal(out, ref.gather(valid, out=shared_out(rb, len(valid))))
    assert out.terminated.any()


@pytest.mark.parametrize("stack", [1, 2])
def test_shared_frames_with_a_single_row_and_short_stacks(stack):
    # length-1 dimensions: their strides are never used, so any value is accepted
    rb = ReplayBuffer(40, (2, 1, 3), stack=stack, seed=2)
    frames = [make_frame(0, 0, s, (2, 1, 3)) for s in range(8)]
    idx = one_episode(rb, frames)
    for t in idx:
        out = rb.gather(np.array([t]), out=rb.empty_batch(1, shared_frames=True))
        assert_batches_equal(out, rb.gather(np.array([t])))


def test_memcpy_baseline_writes_the_shared_layout():
    rb = filled()
    idx = rb.valid_indices()[:40]
    std = rb.empty_batch(40)
    out = shared_out(rb, 40)
    rb.memcpy_baseline(idx, std.obs, std.next_obs)
    rb.memcpy_baseline(idx, out.obs, out.next_obs)
    np.testing.assert_array_equal(out.obs, std.obs)
    np.testing.assert_array_equal(out.next_obs, std.next_obs)
    with pytest.raises(ValueError, match="C-contiguous"):
        rb.memcpy_baseline(idx, out.obs, std.next_obs)


def test_frames_view_is_a_read_only_view_of_the_store():
    """frames_view's contract: the store's own memory (frames added later show in it, row = frame
    index % capacity, unwritten rows zero), kept alive by the view, and read-only for good."""
    rb = ReplayBuffer(4, (2, 3), stack=2, seed=0)
    view = rb.frames_view()
    assert view.shape == (4, 2, 3) and view.dtype == np.uint8 and not view.any()
    frames = [np.full((2, 3), 10 + i, np.uint8) for i in range(6)]
    rb.start_episode(frames[0])
    rb.add(0, 0.0, frames[1], False)
    np.testing.assert_array_equal(view, np.stack([frames[0], frames[1], 0 * frames[0], 0 * frames[0]]))
    for f in frames[2:]:
        rb.add(0, 0.0, f, False)
    np.testing.assert_array_equal(view, np.stack([frames[4], frames[5], frames[2], frames[3]]))
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 0
    with pytest.raises(ValueError):
        view.flags.writeable = True
    del rb
    np.testing.assert_array_equal(view[0], frames[4])  # the view keeps the buffer alive


def test_n_step_buffers_refuse_shared_batches():
    rb = ReplayBuffer(100, SHAPE, stack=2, seed=0, n_step=3)
    ref = PyReplayBuffer(100, SHAPE, stack=2, seed=0, n_step=3)
    StreamDriver(1, SHAPE, seed=1).run([rb, ref], 60)
    with pytest.raises(ValueError, match=r"a shared-frames batch needs n_step == 1 .*this buffer has n_step 3"):
        rb.empty_batch(4, shared_frames=True)
    out = empty_batch(4, 2, SHAPE, shared_frames=True)
    for call in (lambda: rb.sample(4, out=out), lambda: rb.gather(rb.valid_indices()[:4], out=out),
                 lambda: ref.sample(4, out=out), lambda: ref.gather(ref.valid_indices()[:4], out=out)):
        with pytest.raises(ValueError, match="shared-frames batch.* needs n_step == 1"):  # the core's, the reference's
            call()
    assert_batches_equal(rb.sample(4), ref.sample(4))  # neither refused call drew anything


def near_shared(kind, n=8, stack=4):
    """obs / next_obs that look like the shared layout but are not it."""
    if kind == "read-only":
        frames = np.zeros((n, stack + 1, *SHAPE), np.uint8)
        frames.flags.writeable = False
        return frames[:, :stack], frames[:, 1:]
    if kind == "offset by two frames":
        frames = np.zeros((n, stack + 2, *SHAPE), np.uint8)
        return frames[:, :stack], frames[:, 2:]
    if kind == "row stride too large":
        frames = np.zeros((n, stack + 2, *SHAPE), np.uint8)
        return frames[:, :stack], frames[:, 1:stack + 1]
    if kind == "next_obs before obs":
        frames = np.zeros((n, stack + 1, *SHAPE), np.uint8)
        return frames[:, 1:], frames[:, :stack]
    if kind == "transposed frames":
        frames = np.zeros((n, stack + 1, SHAPE[1], SHAPE[0]), np.uint8).transpose(0, 1, 3, 2)
        return frames[:, :stack], frames[:, 1:]
    if kind == "two arrays":
        a, b = np.zeros((n, stack + 1, *SHAPE), np.uint8), np.zeros((n, stack + 1, *SHAPE), np.uint8)
        return a[:, :stack], b[:, 1:]
    if kind == "one array twice":
        a = np.zeros((n, stack, *SHAPE), np.uint8)
        return a, a
    if kind == "overlapping C-contiguous":  # next_obs one frame after obs, but rows of stack frames
        fb = int(np.prod(SHAPE))
        flat = np.zeros(n * stack * fb + fb, np.uint8)
        return flat[:-fb].reshape(n, stack, *SHAPE), flat[fb:].reshape(n, stack, *SHAPE)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, msg", [
    ("read-only", "obs must be writeable"),
    ("offset by two frames", "obs must be C-contiguous.*shared_frames=True"),
    ("row stride too large", "obs must be C-contiguous.*shared_frames=True"),
    ("next_obs before obs", "obs must be C-contiguous.*shared_frames=True"),
    ("transposed frames", "obs must be C-contiguous.*shared_frames=True"),
    ("two arrays", "obs must be C-contiguous.*shared_frames=True"),
    ("one array twice", "must not share memory"),
    ("overlapping C-contiguous", "must not share memory"),
])
def test_malformed_near_shared_layouts_are_refused(kind, msg):
    a, b = filled(seed=3), filled(seed=3)
    obs, nxt = near_shared(kind)
    out = a.empty_batch(8)._replace(obs=obs, next_obs=nxt)
    with pytest.raises(ValueError, match=msg):
        a.sample(8, out=out)
    with pytest.raises(ValueError, match=msg):
        a.gather(a.valid_indices()[:8], out=out)
    with pytest.raises(ValueError, match=msg):
        a.memcpy_baseline(a.valid_indices()[:8], obs, nxt)
    assert not obs.any() and not nxt.any()  # nothing was written
    assert_batches_equal(a.sample(8), b.sample(8))  # and the refused call drew nothing


# ---- input handling ----------------------------------------------------------------------------

def test_non_contiguous_frames_are_stored_by_value():
    rb = ReplayBuffer(20, (4, 3), stack=1, seed=0)
    big = np.arange(48, dtype=np.uint8).reshape(8, 6)
    view = big[::2, ::2]
    rb.start_episode(view)
    rb.add(0, 0.0, big[1::2, 1::2], False)
    want0, want1 = view.copy(), big[1::2, 1::2].copy()
    big[:] = 0
    b = rb.gather(rb.valid_indices())
    np.testing.assert_array_equal(b.obs[0][0], want0)
    np.testing.assert_array_equal(b.next_obs[0][0], want1)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        (dict(capacity=0), ValueError, "capacity must be positive"),
        (dict(capacity=-5), ValueError, "capacity must be positive"),
        (dict(capacity=100, stack=0), ValueError, "stack must be positive"),
        (dict(capacity=100, num_envs=0), ValueError, "num_envs must be positive"),
        (dict(capacity=100, frame_shape=(84, 0)), ValueError, "frame_shape entries must be positive"),
        (dict(capacity=100, frame_shape=()), ValueError, "at least one dimension"),
        (dict(capacity=100, frame_shape=84), TypeError, "frame_shape must be a tuple"),
        (dict(capacity=100.0), TypeError, "capacity must be an int, got float"),
        (dict(capacity=8, stack=4, num_envs=2), ValueError, r"capacity must be at least num_envs \* \(stack \+ 1\)"),
        (dict(capacity=100, pad="edge"), ValueError, "pad must be 'zero' or 'first', got 'edge'"),
        (dict(capacity=100, pad=None), TypeError, "pad must be 'zero' or 'first'"),
        (dict(capacity=10**15), MemoryError, "cannot allocate a replay buffer of capacity"),
        (dict(capacity=True), TypeError, "capacity must be an int, got bool"),
        (dict(capacity=100, stack=1025), ValueError, "stack must be at most 1024, got 1025"),
        (dict(capacity=100, seed=-1), ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
        (dict(capacity=100, seed=2**64), ValueError, r"seed must be in \[0, 2\*\*64\)"),
        (dict(capacity=100, seed=1.0), TypeError, "seed must be an int, got float"),
        (dict(capacity=100, frame_shape=(2**21, 2**20)), ValueError, "frame_shape .* is too large"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        ReplayBuffer(**kwargs)


def test_bad_add_and_start_arguments():
    rb = ReplayBuffer(50, (4, 4), num_envs=2)
    good = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="add\\(\\) before start_episode"):
        rb.add(0, 0.0, good, False)
    with pytest.raises(TypeError, match="frame must have dtype uint8, got float32"):
        rb.start_episode(good.astype(np.float32))
    with pytest.raises(ValueError, match=r"frame must have shape \(4, 4\), got \(4, 5\)"):
        rb.start_episode(np.zeros((4, 5), np.uint8))
    with pytest.raises(TypeError, match="frame must be a numpy.ndarray, got list"):
        rb.start_episode([[0] * 4] * 4)
    with pytest.raises(IndexError, match="env 2 out of range"):
        rb.start_episode(good, env=2)
    with pytest.raises(IndexError, match="env -1 out of range"):
        rb.stacked(-1)
    with pytest.raises(ValueError, match="no frame yet"):
        rb.stacked(1)
    rb.start_episode(good)
    with pytest.raises(TypeError, match="action must be an int, got float"):
        rb.add(1.5, 0.0, good, False)
    with pytest.raises(TypeError, match="reward must be a number, got str"):
        rb.add(1, "1", good, False)
    with pytest.raises(TypeError, match="terminated must be a bool, got int"):
        rb.add(1, 0.0, good, 1)
    with pytest.raises(ValueError, match=r"next_frame must have shape"):
        rb.add(1, 0.0, np.zeros(16, np.uint8), False)
    with pytest.raises(TypeError, match="action must be an int, got bool"):  # a flag is not an action
        rb.add(True, 0.0, good, False)
    with pytest.raises(TypeError, match="reward must be a number, got bool"):
        rb.add(1, True, good, False)
    with pytest.raises(TypeError, match="truncated must be a bool, got float"):
        rb.add(1, 0.0, good, False, 0.0)
    with pytest.raises(TypeError, match="env must be an int, got float"):
        rb.add(1, 0.0, good, False, env=0.0)
    with pytest.raises(ValueError, match="action out of range"):
        rb.add(2**70, 0.0, good, False)
    assert rb.writes == 1  # nothing was written by the failed calls
    rb.add(np.int64(1), np.float32(0.5), good, np.bool_(True))  # numpy scalars are fine
    with pytest.raises(ValueError, match="add\\(\\) before start_episode"):
        rb.add(1, 0.0, good, False)  # the episode ended


def test_bad_vectorized_arguments():
    rb = ReplayBuffer(50, (2, 2), num_envs=3)
    frames = np.zeros((3, 2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"frames must have shape \(2, 2, 2\)"):
        rb.start_episodes(frames, np.array([0, 1]))
    with pytest.raises(ValueError, match="envs lists env 1 twice"):
        rb.start_episodes(frames[:2], np.array([1, 1]))
    with pytest.raises(ValueError, match=r"envs must be 1-D, got shape \(1, 2\)"):
        rb.start_episodes(frames[:2], np.array([[0, 1]]))
    with pytest.raises(TypeError, match="envs must be integers, got float at position 1"):
        rb.start_episodes(frames[:2], [0, 1.0])
    with pytest.raises(IndexError, match="env 3 out of range"):
        rb.start_episodes(frames[:1], np.array([3]))
    rb.start_episodes(frames)
    with pytest.raises(TypeError, match="actions must be an array of integers"):
        rb.add_batch(np.zeros(3), np.zeros(3), frames, np.zeros(3, bool))
    with pytest.raises(TypeError, match="terminated must be an array of bools"):
        rb.add_batch(np.zeros(3, int), np.zeros(3), frames, np.zeros(3))
    with pytest.raises(ValueError, match=r"rewards must have shape \(3,\)"):
        rb.add_batch(np.zeros(3, int), np.zeros(2), frames, np.zeros(3, bool))
    writes = rb.writes
    rb.add_batch(np.zeros(1, int), np.zeros(1), frames[:1], np.ones(1, bool), envs=np.array([0]))
    with pytest.raises(ValueError, match="env 0: add\\(\\) before start_episode"):
        rb.add_batch(np.zeros(3, int), np.zeros(3), frames, np.zeros(3, bool))
    assert rb.writes == writes + 1  # the failed call wrote nothing


@pytest.mark.parametrize("envs", [[0, 2], (0, 2), range(0, 3, 2), np.array([0, 2], np.uint8), [np.int64(0), 2],
                                  memoryview(np.array([0, 2], np.int32))],
                         ids=["list", "tuple", "range", "uint8-array", "numpy-ints", "buffer"])
def test_env_ids_may_be_any_array_like_of_integers(envs):
    """start_episodes and add_batch take env ids as numpy takes an array: a list, a tuple, a range,
    any integer array or buffer; the native buffer and the reference then hold the same."""
    rb, ref = ReplayBuffer(50, SHAPE, num_envs=3, seed=1), PyReplayBuffer(50, SHAPE, num_envs=3, seed=1)
    for buf in (rb, ref):
        buf.start_episodes(np.stack([make_frame(e, 0, 0, SHAPE) for e in (0, 2)]), envs)
        buf.add_batch(np.array([1, 2]), np.array([0.5, 1.5]), np.stack([make_frame(e, 0, 1, SHAPE) for e in (0, 2)]),
                      np.zeros(2, bool), envs=envs)
    assert [rb.episode_active(e) for e in range(3)] == [True, False, True]
    assert_batches_equal(rb.gather(rb.valid_indices()), ref.gather(ref.valid_indices()))
    rb.start_episodes(np.zeros((0,) + SHAPE, np.uint8), [])  # no rows
    assert rb.writes == 4


@pytest.mark.parametrize(
    "envs, exc, msg",
    [
        ([True, False], TypeError, "envs must be integers, got bool at position 0"),
        ([0, np.bool_(True)], TypeError, "envs must be integers, got bool at position 1"),
        ((0, 1.0), TypeError, "envs must be integers, got float at position 1"),
        ([[0, 1]], TypeError, "envs must be integers, got list at position 0"),
        (np.array([True, False]), TypeError, "envs must be an array of integers, got dtype bool"),
        (np.array([0.0, 1.0]), TypeError, "envs must be an array of integers, got dtype float64"),
        (1, TypeError, "envs must be an array-like of integers, got int"),
        (np.int64(1), TypeError, "envs must be an array-like of integers, got int64"),
        ("01", TypeError, "envs must be an array-like of integers, got str"),
        (range(2, 4), IndexError, "env 3 out of range"),
        ([0, -1], IndexError, "env -1 out of range"),
        ([1, 1], ValueError, "envs lists env 1 twice"),
        (np.array([[0, 1]]), ValueError, r"envs must be 1-D, got shape \(1, 2\)"),
        ([0, 2**70], ValueError, "envs out of range"),
    ],
)
def test_bad_env_ids_are_refused_before_anything_is_written(envs, exc, msg):
    rb = ReplayBuffer(50, (2, 2), num_envs=3)
    rb.start_episodes(np.zeros((3, 2, 2), np.uint8))
    writes = rb.writes
    with pytest.raises(exc, match=msg):
        rb.start_episodes(np.zeros((2, 2, 2), np.uint8), envs)
    with pytest.raises(exc, match=msg):
        rb.add_batch(np.zeros(2, int), np.zeros(2), np.zeros((2, 2, 2), np.uint8), np.zeros(2, bool), envs=envs)
    assert rb.writes == writes


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-3, ValueError), (2.0, TypeError), ("4", TypeError)])
def test_bad_batch_size(n, exc):
    rb = filled()
    with pytest.raises(exc, match="batch_size"):
        rb.sample(n)


def test_sampling_an_empty_buffer():
    rb = ReplayBuffer(50, (2, 2))
    with pytest.raises(ValueError, match="no sampleable transition"):
        rb.sample(4)
    rb.start_episode(np.zeros((2, 2), np.uint8))  # a first frame alone is not a transition
    with pytest.raises(ValueError, match="no sampleable transition"):
        rb.sample(4)


# ---- memory --------------------------------------------------------------------------------------

def test_memory_is_within_5_percent_of_the_frames_at_1m_capacity():
    rb = ReplayBuffer(1_000_000, (84, 84), stack=4)
    frame_bytes = 84 * 84
    assert rb.nbytes <= 1.05 * rb.capacity * frame_bytes
    assert rb.nbytes / rb.capacity < 28_224 / 3.9  # vs a stacked-obs buffer storing obs + next_obs once


# ---- n-step returns ------------------------------------------------------------------------------

def test_n_step_returns_windows_and_flags():
    n, g = 3, 0.5
    rb = ReplayBuffer(100, SHAPE, stack=2, seed=0, n_step=n, gamma=g)
    ref = PyReplayBuffer(100, SHAPE, stack=2, seed=0, n_step=n, gamma=g)
    f = [make_frame(0, 0, s, SHAPE) for s in range(6)]
    rewards = [None, 1.0, 2.0, 4.0, 8.0, 16.0]  # reward of the step that produced frame s
    idx = []
    for buf in (rb, ref):
        buf.start_episode(f[0])
    for s in range(1, 6):
        for buf in (rb, ref):
            t = buf.add(s, rewards[s], f[s], s == 5)
        idx.append(t)
        # a step is sampleable once its n-step future is known: here after n - 1 more steps
        assert len(rb) == len(ref) == max(0, s - (n - 1)) if s < 5 else len(rb) == 5
    b = rb.gather(np.array(idx))
    assert_batches_equal(b, ref.gather(np.array(idx)))
    for i in range(5):  # transition i: obs f[i-1..i], m = min(3, 5 - i) steps
        m = min(n, 5 - i)
        assert b.reward[i] == np.float32(sum(g ** k * rewards[i + 1 + k] for k in range(m)))
        assert b.discount[i] == np.float32(g ** m)
        assert b.terminated[i] == (i + m == 5) and not b.truncated[i]
        np.testing.assert_array_equal(b.obs[i], np.stack([f[i - 1] if i else np.zeros(SHAPE, np.uint8), f[i]]))
        np.testing.assert_array_equal(b.next_obs[i], np.stack([f[i + m - 1], f[i + m]]))
        assert b.action[i] == i + 1


@pytest.mark.parametrize("ending", ["truncated", "abandoned"])
def test_n_step_window_stops_at_a_truncation_or_an_abandoned_episode(ending):
    rb = ReplayBuffer(100, SHAPE, stack=1, seed=0, n_step=4, gamma=1.0)
    f = [make_frame(0, 0, s, SHAPE) for s in range(4)]
    rb.start_episode(f[0])
    for s in (1, 2):
        rb.add(s, 1.0, f[s], False)
    assert len(rb) == 0  # both still wait for their future
    if ending == "truncated":
        rb.add(3, 1.0, f[3], False, True)
        assert len(rb) == 3
    else:
        rb.start_episode(make_frame(0, 1, 0, SHAPE))  # a new episode: the old one is over
        assert len(rb) == 2
    b = rb.gather(rb.valid_indices())
    last = 3 if ending == "truncated" else 2
    assert b.reward.tolist() == [float(last - i) for i in range(len(b.reward))]
    assert not b.terminated.any()
    assert b.truncated.tolist() == [ending == "truncated"] * len(b.reward)
    for i in range(len(b.reward)):
        assert decode(b.next_obs[i][-1]) == (0, 0, last)  # bootstrap from the window's last state


def test_n_step_one_gives_discount_gamma():
    rb = filled()
    b = rb.sample(8)
    assert (b.discount == np.float32(0.99)).all()


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(n_step=0), ValueError, "n_step must be positive, got 0"),
    (dict(n_step=2.0), TypeError, "n_step must be an int, got float"),
    (dict(n_step=1001), ValueError, "n_step must be at most 1000, got 1001"),
    (dict(gamma=True), TypeError, "gamma must be a number, got bool"),
    (dict(gamma=1.5), ValueError, r"gamma must be in \[0, 1\]"),
    (dict(gamma=float("nan")), ValueError, r"gamma must be in \[0, 1\]"),
    (dict(gamma="0.9"), TypeError, "gamma must be a number"),
])
def test_bad_n_step_arguments(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ReplayBuffer(100, SHAPE, **kw)


# ---- sequences for recurrent Q-networks -----------------------------------------------------------

@pytest.mark.parametrize("pad", ["zero", "first"])
def test_sequences_are_consecutive_steps_of_one_episode_masked_before_its_start(pad):
    rb = ReplayBuffer(300, SHAPE, stack=4, num_envs=3, seed=2, pad=pad)
    StreamDriver(3, SHAPE, seed=5).run([rb], 900)
    L = 9
    s = rb.sample_sequences(200, L)
    assert s.frames.shape == (200, L + 1, *SHAPE) and s.mask.shape == s.action.shape == (200, L)
    assert s.frames.dtype == np.uint8 and s.action.dtype == np.int64 and s.reward.dtype == np.float32
    assert np.isin(s.index, rb.valid_indices()).all()
    for b in range(200):
        ids = [decode(f) for f in s.frames[b]]
        newest = ids[-1]
        assert (rb.gather(s.index[b:b + 1]).next_obs[0][-1] == s.frames[b, -1]).all()  # ends at that transition
        n_real = newest[2] + 1  # frames the episode has up to the newest
        for q in range(L + 1):
            back = L - q
            if back < n_real:
                assert ids[q] == (newest[0], newest[1], newest[2] - back)
            elif pad == "zero":
                assert ids[q] is None
            else:
                assert ids[q] == (newest[0], newest[1], 0)  # the episode's first frame repeated
        for p in range(L):
            real = (L - p) < n_real  # frame p exists, so step p produced frame p + 1
            assert s.mask[b, p] == real
            if real:
                env, ep, step = ids[p + 1]
                assert s.action[b, p] == encode_action(env, ep, step)
                assert s.reward[b, p] == np.float32(reward_of(step))
            else:
                assert s.action[b, p] == 0 and s.reward[b, p] == 0 and not s.terminated[b, p]
        assert not s.terminated[b, :-1].any() and not s.truncated[b, :-1].any()  # only the last step may end it


def test_sequences_into_caller_arrays_and_bad_arguments():
    rb = filled()
    from dqnfast import empty_sequence_batch
    out = empty_sequence_batch(4, 3, SHAPE)
    assert rb.sample_sequences(4, 3, out=out) is out
    with pytest.raises(ValueError, match="length must be positive"):
        rb.sample_sequences(4, 0)
    with pytest.raises(TypeError, match="length must be an int"):
        rb.sample_sequences(4, 2.5)
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 3\)"):
        rb.sample_sequences(4, 3, out=out._replace(mask=np.empty((4, 2), bool)))
    with pytest.raises(ValueError, match="no sampleable transition"):
        ReplayBuffer(50, SHAPE).sample_sequences(2, 3)
