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
