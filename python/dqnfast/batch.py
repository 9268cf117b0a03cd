"""The batch type that every buffer in dqnfast returns."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class Batch(NamedTuple):
    """Sampled transitions; leading dimension B.

    obs, next_obs: (B, stack, *frame_shape) uint8, oldest frame first (channel-first for PyTorch).
    action: int64; reward: float32; terminated, truncated: bool.
    index: int64 id of each transition (the write number of its next frame); pass it to
    ``gather`` to read the same transitions again.
    discount: float32 gamma^m, where m is the number of steps the (n-step) return spans; the
    TD target is ``reward + discount * (1 - terminated) * max_a Q(next_obs, a)``.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    index: np.ndarray
    discount: np.ndarray


def empty_batch(batch_size: int, stack: int, frame_shape: Sequence[int]) -> Batch:
    """Uninitialised arrays of the right dtypes and shapes for ``sample(..., out=...)``."""
    state = (batch_size, stack, *frame_shape)
    return Batch(
        obs=np.empty(state, np.uint8),
        action=np.empty(batch_size, np.int64),
        reward=np.empty(batch_size, np.float32),
        next_obs=np.empty(state, np.uint8),
        terminated=np.empty(batch_size, np.bool_),
        truncated=np.empty(batch_size, np.bool_),
        index=np.empty(batch_size, np.int64),
        discount=np.empty(batch_size, np.float32),
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


def empty_prioritized_batch(batch_size: int, stack: int, frame_shape: Sequence[int]) -> PrioritizedBatch:
    return PrioritizedBatch(*empty_batch(batch_size, stack, frame_shape), weights=np.empty(batch_size, np.float32))
