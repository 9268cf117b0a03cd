"""`dqnfast.ReplayBuffer`: the native frame-store replay memory."""
from __future__ import annotations

import operator
from typing import Optional

import numpy as np

from . import _core
from .batch import Batch, SequenceBatch, empty_batch, empty_sequence_batch


def _batch_size(batch_size: object) -> int:
    if isinstance(batch_size, (bool, float)) or not hasattr(batch_size, "__index__"):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    n = operator.index(batch_size)
    if n <= 0:
        raise ValueError(f"batch_size must be positive, got {n}")
    return n


class ReplayBuffer(_core.FrameStore):
    """Frame-store experience replay for pixel DQN: each frame stored once, stacks built at sample time.

    ``ReplayBuffer(capacity, frame_shape=(84, 84), stack=4, num_envs=1, seed=None, pad="zero",
    storage_path=None, n_step=1, gamma=0.99)``

    - ``capacity`` counts frame slots (one per env step plus one per episode start); the oldest
      are overwritten first.
    - Feed each env stream with ``start_episode(first_frame, env)`` then ``add(action, reward,
      next_frame, terminated, truncated, env)`` per step; after a terminated or truncated step start
      a new episode. ``start_episodes``/``add_batch`` do the same for several streams in one call.
    - ``stacked(env)`` is the state the agent acts on now; ``sample(B)`` draws B transitions
      uniformly with replacement from those whose frames are all intact.
    - ``n_step > 1``: ``reward`` is the discounted sum of up to n rewards of the same episode,
      ``next_obs`` the state after them and ``discount`` gamma^m (computed at sample time).
    - ``pad="first"`` pads states at an episode's start with its first frame instead of zeros.
    - ``storage_path`` keeps the frames in a file-backed map there (a scratch file, removed with the
      buffer), so a buffer larger than RAM works. ``save(path)`` / ``ReplayBuffer.load(path)``
      snapshot everything.
    - Lock-free: each env stream may be fed from its own thread while other threads sample. The
      GIL is released while frames are copied.
    """

    def sample(self, batch_size: int, out: Optional[Batch] = None) -> Batch:
        """Draw ``batch_size`` transitions; with ``out`` (see :func:`empty_batch`) write into its arrays."""
        n = _batch_size(batch_size)
        if out is None:
            out = empty_batch(n, self.stack, self.frame_shape)
        self._sample_into(n, out)
        return out

    def sample_sequences(self, batch_size: int, length: int, out: Optional[SequenceBatch] = None) -> SequenceBatch:
        """``batch_size`` sequences of ``length`` steps for recurrent Q-networks (see SequenceBatch).

        Each ends at a uniformly drawn sampleable transition (among those whose whole sequence is
        still stored) and never crosses an episode start or an env stream; steps before the
        episode's start are masked out.
        """
        n = _batch_size(batch_size)
        if isinstance(length, (bool, float)) or not hasattr(length, "__index__"):
            raise TypeError(f"length must be an int, got {type(length).__name__}")
        length = operator.index(length)
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        if out is None:
            out = empty_sequence_batch(n, length, self.frame_shape)
        self._sample_sequences_into(n, length, out)
        return out

    def gather(self, indices, out: Optional[Batch] = None) -> Batch:
        """The transitions with these indices (as in ``Batch.index``); IndexError if one is gone."""
        if not isinstance(indices, np.ndarray):
            raise TypeError(f"indices must be a numpy.ndarray of integers, got {type(indices).__name__}")
        if out is None:
            out = empty_batch(len(indices), self.stack, self.frame_shape)
        self._gather_into(indices, out)
        return out

    @classmethod
    def load(cls, path, storage_path=None) -> "ReplayBuffer":
        """A buffer restored from ``save(path)``: sampling continues exactly as it would have.

        A truncated, corrupt, foreign or future-version file raises ValueError before anything
        is allocated for it (the data's checksum is verified as it streams in).
        """
        info = cls._snapshot_info(path)
        if "alpha" in info and not getattr(cls, "_PRIORITIZED", False):
            from .prioritized import PrioritizedReplayBuffer  # a prioritized snapshot loads as one

            cls = PrioritizedReplayBuffer
        elif "alpha" not in info and getattr(cls, "_PRIORITIZED", False):
            raise ValueError(f"{path!r} holds a uniform ReplayBuffer; load it with ReplayBuffer.load")
        rb = cls(**info, storage_path=storage_path)
        rb._load_from(path)
        return rb

    def empty_batch(self, batch_size: int, shared_frames: bool = False) -> Batch:
        """Arrays to reuse with ``sample(batch_size, out=...)``.

        ``shared_frames=True`` (n_step == 1 only): obs and next_obs are two views of one
        (B, stack + 1, *frame_shape) array, so sampling writes each frame of a row once (see
        :class:`dqnfast.Batch`).
        """
        return empty_batch(_batch_size(batch_size), self.stack, self.frame_shape, self._shared_ok(shared_frames))

    def _shared_ok(self, shared_frames: bool) -> bool:
        if shared_frames and self.n_step > 1:
            raise ValueError(f"shared_frames=True needs n_step == 1 (next_obs is obs shifted by one frame); this "
                             f"buffer has n_step={self.n_step}, where next_obs is the state n steps later")
        return bool(shared_frames)

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, frame_shape={self.frame_shape}, stack={self.stack}, "
                f"num_envs={self.num_envs}, len={len(self)})")
