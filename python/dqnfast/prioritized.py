"""`dqnfast.PrioritizedReplayBuffer`: proportional prioritized replay on the frame store."""
from __future__ import annotations

from typing import Optional

from . import _core
from ._validate import finite_non_negative, positive_int
from .batch import PrioritizedBatch, empty_prioritized_batch
from .replay import ReplayBuffer, native_store_args, check_shift


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized experience replay (Schaul et al. 2016).

    Same constructor and add API as :class:`ReplayBuffer`, plus ``alpha`` (how much priorities
    count: 0 is uniform). New transitions get the largest priority seen so far. ``sample(B, beta)``
    draws in proportion to priority^alpha among the sampleable transitions and returns a
    :class:`PrioritizedBatch` whose ``weights`` correct for that; after computing TD errors, call
    ``update_priorities(batch.index, new_priorities)``. Indices of transitions overwritten since
    they were sampled are ignored. Works with n-step returns and concurrent adds (the sum tree takes
    a short lock; frame copies stay lock-free).
    """

    _PRIORITIZED = True

    def __init__(self, capacity: int, frame_shape=(84, 84), stack: int = 4, num_envs: int = 1, seed=None,
                 pad: str = "zero", storage_path=None, n_step: int = 1, gamma: float = 0.99, alpha: float = 0.6):
        args = native_store_args(capacity, frame_shape, stack, num_envs, seed, pad, storage_path, n_step, gamma)
        # ReplayBuffer.__init__ builds a uniform store; with alpha the native one is prioritized.
        _core.FrameStore.__init__(self, *args, finite_non_negative(alpha, "alpha"))

    def sample(self, batch_size: int, beta: float = 0.4, out: Optional[PrioritizedBatch] = None, *,
               shift: int = 0) -> PrioritizedBatch:
        """``batch_size`` proportional draws; ``shift`` as in :meth:`ReplayBuffer.sample`."""
        n = positive_int(batch_size, "batch_size")
        beta = finite_non_negative(beta, "beta")
        shift = check_shift(shift, self.frame_shape)
        if out is None:
            out = empty_prioritized_batch(n, self.stack, self.frame_shape)
        self._sample_prioritized_into(n, beta, out[:8], out.weights, shift)
        return out

    def empty_prioritized_batch(self, batch_size: int, shared_frames: bool = False) -> PrioritizedBatch:
        """Arrays to reuse with ``sample(batch_size, beta, out=...)``; ``shared_frames`` as in
        :meth:`ReplayBuffer.empty_batch`."""
        return self._fillable(empty_prioritized_batch(positive_int(batch_size, "batch_size"), self.stack,
                                                      self.frame_shape, bool(shared_frames)))

    def __repr__(self) -> str:
        return (f"PrioritizedReplayBuffer(capacity={self.capacity}, frame_shape={self.frame_shape}, "
                f"stack={self.stack}, num_envs={self.num_envs}, alpha={self.alpha}, len={len(self)})")


ReplayBuffer.register_snapshot_kind("prioritized", PrioritizedReplayBuffer)
