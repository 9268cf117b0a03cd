"""Random-shift augmentation in the native sampler (``sample(..., shift=P)``): DrQ's pad-and-crop,
checked bit for bit against the pure-Python reference (numpy's edge padding, then a crop) and
against frames whose pixels say where they came from."""
from __future__ import annotations

import numpy as np
import pytest

from dqnfast import PrioritizedReplayBuffer, ReplayBuffer
from dqnfast.batch import Batch
from dqnfast.replay_reference import PyPrioritizedReplayBuffer, PyReplayBuffer, shift_offsets, shift_state


def feed(buffers, frame_shape, steps=300, num_envs=2, seed=0):
    """The same random episodes (random pixels, so a wrong shift shows anywhere in a frame) into
    every buffer: terminations, truncations and episodes that start mid-stream."""
    rng = np.random.default_rng(seed)
    for e in range(num_envs):
        first = rng.integers(0, 256, frame_shape, dtype=np.uint8)
        for rb in buffers:
            rb.start_episode(first, e)
    for t in range(steps):
        e = int(rng.integers(num_envs))
        frame = rng.integers(0, 256, frame_shape, dtype=np.uint8)
        end = rng.random()
        term, trunc = bool(end < 0.05), bool(0.05 <= end < 0.08)
        for rb in buffers:
            rb.add(t, float(t % 7), frame, term, trunc, e)
        if term or trunc:
            first = rng.integers(0, 256, frame_shape, dtype=np.uint8)
            for rb in buffers:
                rb.start_episode(first, e)


def assert_batches_equal(a, b):
    for name in a._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("frame_shape", [(12, 10), (2, 9, 11)])
@pytest.mark.parametrize("n_step, shared, pad", [(1, False, "zero"), (1, True, "zero"), (3, False, "first")])
def test_shifted_samples_match_the_numpy_reference_bit_for_bit(frame_shape, n_step, shared, pad):
    kw = dict(stack=3, num_envs=2, seed=11, n_step=n_step, gamma=0.9, pad=pad)
    rb, ref = ReplayBuffer(200, frame_shape, **kw), PyReplayBuffer(200, frame_shape, **kw)
    feed([rb, ref], frame_shape)
    for call, shift in enumerate((1, 4, 3, 0)):
        out = rb.empty_batch(16, shared_frames=shared)
        ref_out = rb.empty_batch(16, shared_frames=shared)
        got = rb.sample(16, out=out, shift=shift)
        want = ref.sample(16, out=ref_out, shift=shift)
        assert_batches_equal(got, want)
        if shift:  # the reference's offsets moved something: the comparison was not of unshifted rows
            assert (shift_offsets(rb.seed, call, 16, shift) != 0).any()


def test_prioritized_shifted_samples_match_the_reference():
    kw = dict(stack=4, num_envs=2, seed=5, alpha=0.7)
    rb, ref = PrioritizedReplayBuffer(150, (10, 10), **kw), PyPrioritizedReplayBuffer(150, (10, 10), **kw)
    feed([rb, ref], (10, 10), steps=200)
    for _ in range(3):
        got, want = rb.sample(8, beta=0.5, shift=2), ref.sample(8, beta=0.5, shift=2)
        assert_batches_equal(got, want)
        rb.update_priorities(got.index, np.arange(1, 9, dtype=float))
        ref.update_priorities(want.index, np.arange(1, 9, dtype=float))


def test_a_shift_moves_the_transitions_an_unshifted_sample_draws():
    """shift=P draws the same transitions as the same call without a shift, and each state is that
    state padded by its edges and cropped at the reference's offset (numpy's own np.pad)."""
    a, b = ReplayBuffer(300, (8, 8), stack=4, seed=3), ReplayBuffer(300, (8, 8), stack=4, seed=3)
    feed([a, b], (8, 8), num_envs=1)
    for call in range(4):
        shifted, plain = a.sample(32, shift=3), b.sample(32)
        np.testing.assert_array_equal(shifted.index, plain.index)
        offsets = shift_offsets(a.seed, call, 32, 3)
        for r in range(32):
            (dy, dx), (ndy, ndx) = offsets[r]
            np.testing.assert_array_equal(shifted.obs[r], shift_state(plain.obs[r], 3, dy, dx))
            np.testing.assert_array_equal(shifted.next_obs[r], shift_state(plain.next_obs[r], 3, ndy, ndx))


def positions(frame_shape=(16, 16)):
    """A frame whose pixel (y, x) holds y * 16 + x: every pixel says where it came from."""
    ys, xs = np.indices(frame_shape)
    return (ys * 16 + xs).astype(np.uint8)


@pytest.mark.parametrize("shared", [False, True])
def test_every_offset_is_reached_and_one_offset_serves_a_whole_state(shared):
    P = 3
    rb = ReplayBuffer(400, (16, 16), stack=4, seed=1, pad="first")
    frame = positions()
    rb.start_episode(frame, 0)
    for t in range(300):
        rb.add(0, 0.0, frame, False, False, 0)
    seen_obs, seen_next, differ = set(), set(), 0
    out = rb.empty_batch(64, shared_frames=shared)
    for _ in range(40):
        b = rb.sample(64, out=out, shift=P)
        for state, seen in ((b.obs, seen_obs), (b.next_obs, seen_next)):
            # The centre pixel (8, 8) came from (8 + dy, 8 + dx); every frame of the state agrees.
            centre = state[:, :, 8, 8].astype(int)
            assert (centre == centre[:, :1]).all(), "the frames of one state were shifted differently"
            dy, dx = centre[:, 0] // 16 - 8, centre[:, 0] % 16 - 8
            # the whole state is the positions frame shifted by (dy, dx), edges repeated
            for r in range(0, 64, 7):
                np.testing.assert_array_equal(state[r, 0], shift_state(frame, P, int(dy[r]), int(dx[r])))
            seen.update(zip(dy.tolist(), dx.tolist()))
        o = b.obs[:, 0, 8, 8].astype(int)
        n = b.next_obs[:, 0, 8, 8].astype(int)
        differ += int((o != n).sum())
    every = {(dy, dx) for dy in range(-P, P + 1) for dx in range(-P, P + 1)}
    assert seen_obs == every and seen_next == every
    if shared:
        assert differ == 0, "a shared-frames row has one offset for obs and next_obs"
    else:
        assert differ > 0, "obs and next_obs draw independent offsets"


def test_shifted_sampling_is_reproducible_for_a_seed():
    batches = []
    for _ in range(2):
        rb = ReplayBuffer(200, (10, 12), stack=4, num_envs=2, seed=99)
        feed([rb], (10, 12))
        batches.append([rb.sample(16, shift=4) for _ in range(3)])
    for a, b in zip(*batches):
        assert_batches_equal(a, b)


@pytest.mark.parametrize("shift, exc, message", [
    (-1, ValueError, "shift must be non-negative"),
    (10, ValueError, "shift=10 is larger than the frame"),
    (2.0, TypeError, "shift"),
    (True, TypeError, "shift"),
])
def test_bad_shifts_are_refused_before_sampling(shift, exc, message):
    rb, twin = ReplayBuffer(100, (10, 12), stack=2, seed=0), ReplayBuffer(100, (10, 12), stack=2, seed=0)
    feed([rb, twin], (10, 12), steps=50, num_envs=1)
    with pytest.raises(exc, match=message):
        rb.sample(4, shift=shift)
    assert_batches_equal(rb.sample(4), twin.sample(4))  # the refused call drew nothing


def test_a_shift_needs_two_axes():
    rb = ReplayBuffer(100, (12,), stack=2, seed=0)
    feed([rb], (12,), steps=50, num_envs=1)
    with pytest.raises(ValueError, match="at least two axes"):
        rb.sample(4, shift=1)
    assert isinstance(rb.sample(4, shift=0), Batch)
