"""The batch type that every buffer in dqnfast returns."""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import numpy as np


class Batch(NamedTuple):
    """Sampled transitions; leading dimension B.

    obs, next_obs: (B, stack, *frame_shape) uint8, oldest frame first (channel-first for PyTorch).
    action: int64; reward: float32; terminated, truncated: bool.
    index: int64 id of each transition (the write number of its next frame); pass it to
    ``gather`` to read the same transitions again.
    discount: float32 gamma^m, where m is the number of steps the (n-step) return spans; the
    TD target is ``reward + discount * (1 - terminated) * max_a Q(next_obs, a)``.

    Shared frames (``empty_batch(..., shared_frames=True)``, one-step buffers only): with
    n_step == 1, next_obs is obs shifted by one frame, so both can be views of one
    (B, stack + 1, *frame_shape) array ``frames``: obs = frames[:, :stack], next_obs = frames[:, 1:].
    Sampling then writes stack + 1 frames per row instead of 2 * stack, and a learner can move the
    one array to its device (:func:`shared_frames` finds it; ``batch.obs.base`` is that array).
    The two views overlap: writing obs writes next_obs too.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    index: np.ndarray
    discount: np.ndarray


def empty_batch(batch_size: int, stack: int, frame_shape: Sequence[int], shared_frames: bool = False,
                alloc: Callable[[Tuple[int, ...], type], np.ndarray] = np.empty) -> Batch:
    """Uninitialised arrays of the right dtypes and shapes for ``sample(..., out=...)``.

    ``shared_frames=True``: obs and next_obs are the views [:, :stack] and [:, 1:] of one
    (batch_size, stack + 1, *frame_shape) array (see :class:`Batch`); for n_step == 1 buffers.
    ``alloc(shape, dtype)`` makes each array (e.g. numpy views of pinned torch memory, as
    ``DQNLearner.empty_batch`` does); numpy's ``empty`` by default.
    """
    state = (batch_size, stack, *frame_shape)
    if shared_frames:
        frames = alloc((batch_size, stack + 1, *frame_shape), np.uint8)
        obs, next_obs = frames[:, :stack], frames[:, 1:]
    else:
        obs, next_obs = alloc(state, np.uint8), alloc(state, np.uint8)
    return Batch(
        obs=obs,
        action=alloc((batch_size,), np.int64),
        reward=alloc((batch_size,), np.float32),
        next_obs=next_obs,
        terminated=alloc((batch_size,), np.bool_),
        truncated=alloc((batch_size,), np.bool_),
        index=alloc((batch_size,), np.int64),
        discount=alloc((batch_size,), np.float32),
    )


class SequenceBatch(NamedTuple):
    """Sequences of single frames for recurrent Q-networks; leading dimension B, then time.

    frames: (B, length + 1, *frame_shape) uint8, oldest first; frames[:, t] is the observation
    before step t and frames[:, t + 1] the one after it.
    action int64, reward float32, terminated / truncated bool, mask bool: (B, length). mask is
    False for steps before the episode's start (their frames are zeros, or the first frame with
    pad="first", and their other fields zero).
    index: int64 (B,) the last transition of each sequence.
    """

    frames: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    mask: np.ndarray
    index: np.ndarray


def empty_sequence_batch(batch_size: int, length: int, frame_shape: Sequence[int]) -> SequenceBatch:
    """Uninitialised arrays for ``sample_sequences(..., out=...)``."""
    steps = (batch_size, length)
    return SequenceBatch(
        frames=np.empty((batch_size, length + 1, *frame_shape), np.uint8),
        action=np.empty(steps, np.int64),
        reward=np.empty(steps, np.float32),
        terminated=np.empty(steps, np.bool_),
        truncated=np.empty(steps, np.bool_),
        mask=np.empty(steps, np.bool_),
        index=np.empty(batch_size, np.int64),
    )


class PrioritizedBatch(NamedTuple):
    """A :class:`Batch` plus ``weights``: float32 importance-sampling weights (N P(i))^-beta,
    normalised by the batch's largest."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    index: np.ndarray
    discount: np.ndarray
    weights: np.ndarray


def empty_prioritized_batch(batch_size: int, stack: int, frame_shape: Sequence[int],
                            shared_frames: bool = False) -> PrioritizedBatch:
    """As :func:`empty_batch`, plus the weights."""
    return PrioritizedBatch(*empty_batch(batch_size, stack, frame_shape, shared_frames),
                            weights=np.empty(batch_size, np.float32))


def shared_frames(batch) -> Optional[np.ndarray]:
    """The (B, stack + 1, *frame_shape) uint8 array whose views [:, :stack] and [:, 1:] are
    ``batch.obs`` and ``batch.next_obs`` (the shared-frames layout), or None for any other layout.

    Decided from the data pointers and strides, exactly as the native buffer does; the array
    returned is ``batch.obs.base`` when that is it (as for :func:`empty_batch`), else a view of
    the same memory.
    """
    obs, nxt = batch.obs, batch.next_obs
    if not (isinstance(obs, np.ndarray) and isinstance(nxt, np.ndarray)) or obs.dtype != np.uint8 \
            or nxt.dtype != np.uint8 or obs.ndim < 2 or obs.shape != nxt.shape:
        return None
    n, stack, *frame = obs.shape
    fb = math.prod(frame)
    if fb == 0:
        return None
    strides = [(stack + 1) * fb, fb]
    for d in frame:  # C order within a frame
        strides.append(strides[-1] // d)
    # a dimension of length 1 is never stepped along, so its stride does not matter
    if any(size > 1 and (a != w or b != w) for size, a, b, w in zip(obs.shape, obs.strides, nxt.strides, strides)):
        return None
    data = obs.__array_interface__["data"][0]
    if nxt.__array_interface__["data"][0] != data + fb:
        return None
    shape = (n, stack + 1, *frame)
    base = obs.base
    if (isinstance(base, np.ndarray) and base.dtype == np.uint8 and base.shape == shape
            and all(size <= 1 or a == w for size, a, w in zip(shape, base.strides, strides))
            and base.__array_interface__["data"][0] == data):
        return base
    return np.lib.stride_tricks.as_strided(obs, shape=shape, strides=strides, writeable=obs.flags.writeable)
