"""`dqnfast.ReplayBuffer`: the native frame-store replay memory."""
from __future__ import annotations

import math
import secrets
from typing import Dict, Optional, Tuple

import numpy as np

from . import _core
from ._validate import integer, number, positive_int
from .batch import Batch, SequenceBatch, empty_batch, empty_sequence_batch

_MAX_SEQUENCE_LENGTH = 1_000_000


def native_store_args(capacity, frame_shape, stack, num_envs, seed, pad, storage_path, n_step, gamma) -> Tuple:
    """The native constructor's arguments (``_core.FrameStore``), each checked here, once per buffer.

    Relations between them (``capacity >= num_envs * (stack + 1)``) are the core's to check, and
    ``storage_path`` is converted natively, as ``save``'s path is.
    """
    capacity = positive_int(capacity, "capacity")
    if not isinstance(frame_shape, (tuple, list)):
        raise TypeError(f"frame_shape must be a tuple of positive ints, got {type(frame_shape).__name__}")
    dims = tuple(positive_int(d, "frame_shape entries") for d in frame_shape)
    if not dims:
        raise ValueError("frame_shape must have at least one dimension")
    if math.prod(dims) > 2**40:
        raise ValueError(f"frame_shape {dims} is too large")
    stack = positive_int(stack, "stack", at_most=_core.FrameStore.MAX_STACK)
    num_envs = positive_int(num_envs, "num_envs", at_most=2**32 - 1)
    if seed is None:
        seed = secrets.randbits(64)
    else:
        seed = integer(seed, "seed")
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    if not isinstance(pad, str):
        raise TypeError(f"pad must be 'zero' or 'first', got {type(pad).__name__}")
    if pad not in ("zero", "first"):
        raise ValueError(f"pad must be 'zero' or 'first', got {pad!r}")
    n_step = positive_int(n_step, "n_step", at_most=_core.FrameStore.MAX_N_STEP)
    gamma = number(gamma, "gamma")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return capacity, dims, stack, num_envs, seed, pad == "first", storage_path, n_step, gamma


def check_shift(shift, frame_shape: Tuple[int, ...]) -> int:
    """``sample``'s ``shift``: an int in [0, min(height, width)) for frames of at least two axes."""
    shift = integer(shift, "shift")
    if shift < 0:
        raise ValueError(f"shift must be non-negative, got {shift}")
    if shift and len(frame_shape) < 2:
        raise ValueError(f"shift needs frames of at least two axes (..., height, width); frame_shape is {frame_shape}")
    if shift and shift >= min(frame_shape[-2:]):
        raise ValueError(f"shift={shift} is larger than the frame: it must be less than the frame's height and "
                         f"width {tuple(frame_shape[-2:])}")
    return shift


# Snapshot kind -> the class that loads it, filled by the modules defining them (no import cycle).
_SNAPSHOT_KINDS: Dict[str, type] = {}

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

    def __init__(self, capacity: int, frame_shape=(84, 84), stack: int = 4, num_envs: int = 1, seed=None,
                 pad: str = "zero", storage_path=None, n_step: int = 1, gamma: float = 0.99):
        super().__init__(*native_store_args(capacity, frame_shape, stack, num_envs, seed, pad, storage_path, n_step, gamma))

    def sample(self, batch_size: int, out: Optional[Batch] = None, *, shift: int = 0) -> Batch:
        """Draw ``batch_size`` transitions; with ``out`` (see :func:`empty_batch`) write into its arrays.

        ``shift=P > 0`` is DrQ's random-shift augmentation, done on the way out: each state's frames
        are padded by P pixels on every side (repeating their edge pixels) and cropped back to their
        size at a random offset (dy, dx), each in [-P, P]. One offset serves all the stacked frames of
        a state; ``obs`` and ``next_obs`` draw independent offsets, except in a shared-frames batch,
        where they are views of one array and so share one offset per row. The shift moves the last
        two axes of a frame (..., height, width), and is written straight into the output arrays.
        The offsets come from their own stream of the buffer's seed and call number, so a shifted
        sample draws exactly the transitions the same call would draw without a shift
        (``dqnfast.replay_reference.shift_offsets`` computes them).
        """
        n = positive_int(batch_size, "batch_size")
        shift = check_shift(shift, self.frame_shape)
        if out is None:
            out = empty_batch(n, self.stack, self.frame_shape)
        self._sample_into(n, out, shift)
        return out

    def sample_sequences(self, batch_size: int, length: int, out: Optional[SequenceBatch] = None) -> SequenceBatch:
        """``batch_size`` sequences of ``length`` steps for recurrent Q-networks (see SequenceBatch).

        Each ends at a uniformly drawn sampleable transition (among those whose whole sequence is
        still stored) and never crosses an episode start or an env stream; steps before the
        episode's start are masked out.
        """
        n = positive_int(batch_size, "batch_size")
        length = positive_int(length, "length", at_most=_MAX_SEQUENCE_LENGTH)
        if out is None:
            out = empty_sequence_batch(n, length, self.frame_shape)
        self._sample_sequences_into(n, length, out)
        return out

    def gather(self, indices, out: Optional[Batch] = None) -> Batch:
        """The transitions with these indices (as in ``Batch.index``); IndexError if one is gone."""
        if out is None:  # indices that are not a 1-D integer array: the native call says what is wrong
            n = len(indices) if isinstance(indices, np.ndarray) and indices.ndim == 1 else 0
            out = empty_batch(n, self.stack, self.frame_shape)
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
            cls = _SNAPSHOT_KINDS["prioritized"]  # a prioritized snapshot loads as one
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
        return self._fillable(empty_batch(positive_int(batch_size, "batch_size"), self.stack, self.frame_shape,
                                          bool(shared_frames)))

    def _fillable(self, out):
        """out, once the native side has accepted its layout for this buffer. Which layouts a buffer
        may fill is the core's rule (a shared-frames batch needs n_step == 1); gathering no rows
        into out runs exactly those checks, so this layer does not restate it."""
        self._gather_into(np.empty(0, np.int64), Batch(*(a[:0] for a in out[:8])))
        return out

    @staticmethod
    def register_snapshot_kind(kind: str, buffer_class: type) -> None:
        """Make ``buffer_class`` the class that :meth:`load` returns for snapshots of ``kind``.

        A module that defines a ReplayBuffer subclass with its own snapshot kind registers it
        when imported (dqnfast.prioritized registers ``"prioritized"``), so this module never
        imports its subclasses: ``ReplayBuffer.load`` of a prioritized snapshot then returns a
        ``dqnfast.PrioritizedReplayBuffer``. Registering a kind again replaces its class.
        ``"prioritized"`` is the only kind the snapshot format has.
        """
        _SNAPSHOT_KINDS[kind] = buffer_class

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, frame_shape={self.frame_shape}, stack={self.stack}, "
                f"num_envs={self.num_envs}, len={len(self)})")
