"""`DeviceReplayBuffer`: the native replay buffer with its frame store mirrored on a torch device.

The native buffer keeps doing all the bookkeeping (episodes, validity, the random draws); torch only
holds a copy of the frame slots, ``(capacity + 1, *frame_shape)`` uint8 on the device, whose last
row stays zero and stands for padding. ``sample`` asks the native side for the frame-slot indices of
the drawn transitions and gathers the stacks on the device with one ``index_select``, so a batch
never crosses the host-device link as pixels: only ``2 * B * stack`` int64 indices go over.

Results are the same as :meth:`dqnfast.ReplayBuffer.sample` for the same seed and call sequence.

This module imports torch; ``import dqnfast`` does not import it.

Threading: the mirror copy follows the native add, so a sample taken between the two could index
a slot whose mirror row is stale. Every method therefore runs under one lock: calls from several
threads are correct but serialized (unlike the lock-free native buffer). Do not write to the
wrapped native buffer (``.buffer``) directly: its frames would not reach the mirror.

On CUDA, frames go through freshly allocated pinned host tensors and are copied with
``non_blocking=True`` on the current stream. Torch's pinned-memory allocator does not reuse a pinned
block until the copies that read it have completed, so the host may move on at once; ``sample``
runs on the same stream, after those copies.
"""
from __future__ import annotations

import threading
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt
import torch

from ._validate import positive_int
from .batch import Batch
from .replay import ReplayBuffer


class TorchBatch(NamedTuple):
    """Sampled transitions as torch tensors on the buffer's device; fields as in :class:`dqnfast.Batch`.

    obs, next_obs: (B, stack, *frame_shape) uint8; action int64; reward float32; terminated,
    truncated bool; index int64 (pass it to ``buffer.gather`` to read the same transitions on the host);
    discount float32 (gamma^m of the n-step window).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    index: torch.Tensor
    discount: torch.Tensor


def _device_arg(device: object) -> torch.device:
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError as e:  # torch's message lists the known device types
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available to torch")
    if dev.type not in ("cpu", "cuda"):
        # index_select/copy_ work elsewhere too, but only cpu and cuda are tested.
        raise ValueError(f"device must be a cpu or cuda device, got {device!r}")
    return dev


class DeviceReplayBuffer:
    """A :class:`dqnfast.ReplayBuffer` whose frames are mirrored on ``device`` for sampling there.

    ``DeviceReplayBuffer(capacity, frame_shape=(84, 84), stack=4, num_envs=1, seed=None, pad="zero",
    *, device="cpu")`` builds a new native buffer; ``DeviceReplayBuffer(buffer=rb, device=...)``
    wraps an existing one (its stored frames are copied to the device once).

    The write API is the native one (``start_episode``, ``add``, ``start_episodes``, ``add_batch``,
    ``stacked``, ``len``); ``sample(B)`` returns a :class:`TorchBatch` on the device and
    ``sample_numpy(B)`` a host :class:`dqnfast.Batch`. Both draw from the same random stream, so any
    mix of them equals the same sequence of ``ReplayBuffer.sample`` calls.
    """

    def __init__(self, capacity: Optional[int] = None, frame_shape: Sequence[int] = (84, 84), stack: int = 4,
                 num_envs: int = 1, seed: Optional[int] = None, pad: str = "zero", *, n_step: int = 1,
                 gamma: float = 0.99, device: Union[str, torch.device] = "cpu",
                 buffer: Optional[ReplayBuffer] = None) -> None:
        self.device = _device_arg(device)
        if buffer is not None:
            if not isinstance(buffer, ReplayBuffer):
                raise TypeError(f"buffer must be a dqnfast.ReplayBuffer, got {type(buffer).__name__}")
            if capacity is not None:
                raise ValueError("pass either buffer= or capacity and the other constructor arguments, not both")
            self.buffer = buffer
        else:
            if capacity is None:
                raise TypeError("DeviceReplayBuffer needs capacity (or buffer=an existing ReplayBuffer)")
            self.buffer = ReplayBuffer(capacity, frame_shape, stack, num_envs, seed, pad, n_step=n_step, gamma=gamma)
        rb = self.buffer
        self._cuda = self.device.type == "cuda"
        self._lock = threading.Lock()
        self._shape = tuple(rb.frame_shape)
        self._frames = torch.zeros((rb.capacity + 1, *self._shape), dtype=torch.uint8, device=self.device)
        self._host_mirror = None if self._cuda else self._frames.numpy()  # the same memory, for writes
        self._synced = rb.writes  # writes the mirror holds; anything else writing to rb breaks the mirror
        stored = min(rb.writes, rb.capacity)
        view = rb.frames_view()  # an existing buffer: copy what it holds (unwritten slots are zero in both),
        for a in range(0, stored, 4096):  # in chunks, so that CUDA staging stays small
            self._write_slots(a, view[a:min(a + 4096, stored)])

    # ---- the native buffer's properties ------------------------------------------------------------
    capacity = property(lambda self: self.buffer.capacity)
    frame_shape = property(lambda self: self.buffer.frame_shape)
    stack = property(lambda self: self.buffer.stack)
    num_envs = property(lambda self: self.buffer.num_envs)
    seed = property(lambda self: self.buffer.seed)
    pad = property(lambda self: self.buffer.pad)
    writes = property(lambda self: self.buffer.writes)

    @property
    def frames(self) -> torch.Tensor:
        """The device mirror, (capacity + 1, *frame_shape) uint8; the last row is the zero padding frame."""
        return self._frames

    def __len__(self) -> int:
        return len(self.buffer)

    def episode_active(self, env: int = 0) -> bool:
        return self.buffer.episode_active(env)

    def stacked(self, env: int = 0, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The state ``env`` acts on now, on the host (as :meth:`dqnfast.ReplayBuffer.stacked`)."""
        return self.buffer.stacked(env, out)

    def valid_indices(self) -> np.ndarray:
        return self.buffer.valid_indices()

    # ---- writes: native first (it validates everything), then the same rows to the mirror ----------
    def start_episode(self, frame: np.ndarray, env: int = 0) -> int:
        with self._lock:
            self._check_in_sync()
            self.buffer.start_episode(frame, env)
            return self._mirror_rows(frame[None])

    def add(self, action: int, reward: float, next_frame: np.ndarray, terminated: bool, truncated: bool = False,
            env: int = 0) -> int:
        with self._lock:
            self._check_in_sync()
            self.buffer.add(action, reward, next_frame, terminated, truncated, env)
            return self._mirror_rows(next_frame[None])

    def start_episodes(self, frames: np.ndarray, envs: Optional[npt.ArrayLike] = None) -> None:
        with self._lock:
            self._check_in_sync()
            self.buffer.start_episodes(frames, envs)
            self._mirror_rows(frames)

    def add_batch(self, actions: np.ndarray, rewards: np.ndarray, next_frames: np.ndarray, terminated: np.ndarray,
                  truncated: Optional[np.ndarray] = None, envs: Optional[npt.ArrayLike] = None) -> None:
        with self._lock:
            self._check_in_sync()
            self.buffer.add_batch(actions, rewards, next_frames, terminated, truncated, envs)
            self._mirror_rows(next_frames)

    def _check_in_sync(self) -> None:
        if self.buffer.writes != self._synced:
            raise RuntimeError("the wrapped ReplayBuffer was written to directly, not through this "
                               "DeviceReplayBuffer: the device mirror is out of sync")

    def _mirror_rows(self, frames: np.ndarray) -> int:
        """After a native write of len(frames) rows: copy them to their slots; returns the first write number."""
        # The native call stored the rows, in order, at consecutive write numbers ending at writes - 1
        # (the lock keeps other writers out; _check_in_sync catches writes that bypass it).
        first = self._synced
        self._synced += len(frames)
        if self.buffer.writes != self._synced:
            raise RuntimeError("the wrapped ReplayBuffer was written to directly while this DeviceReplayBuffer "
                               "wrote to it: the device mirror is out of sync")
        self._write_slots(first % self.buffer.capacity, frames)
        return first

    def _write_slots(self, slot: int, frames: np.ndarray) -> None:
        """Copy rows to the mirror at slots slot, slot + 1, ... (wrapping at capacity)."""
        n, cap = len(frames), self.buffer.capacity
        head = min(n, cap - slot)  # rows before the wrap
        parts = [(slot, 0, head), (0, head, n)]  # (first slot, first row, end row)
        if not self._cuda:  # a cpu mirror: plain numpy stores into its memory (no torch op per add)
            for dst, a, b in parts:
                self._host_mirror[dst:dst + b - a] = frames[a:b]
            return
        # CUDA: copy into a fresh pinned tensor first. The caller may then reuse `frames` at once,
        # and torch's pinned allocator keeps the staging block until the async copy has read it.
        staging = torch.empty((n, *self._shape), dtype=torch.uint8, pin_memory=True)
        np.copyto(staging.numpy(), frames)
        for dst, a, b in parts:
            if a < b:
                self._frames[dst:dst + b - a].copy_(staging[a:b], non_blocking=True)

    # ---- sampling --------------------------------------------------------------------------------
    def sample(self, batch_size: int) -> TorchBatch:
        """Draw ``batch_size`` transitions (as ``ReplayBuffer.sample``) and gather them on the device."""
        n = positive_int(batch_size, "batch_size")
        st = self.buffer.stack
        # One host block for all int64 outputs, so slots, actions and indices cross in one copy.
        ints = torch.empty(2 * n * st + 2 * n, dtype=torch.int64, pin_memory=self._cuda)
        floats = torch.empty(2 * n, dtype=torch.float32, pin_memory=self._cuda)  # reward, then discount
        flags = torch.empty(2 * n, dtype=torch.bool, pin_memory=self._cuda)  # terminated, then truncated
        ints_np, flags_np, floats_np = ints.numpy(), flags.numpy(), floats.numpy()
        slots = ints_np[:2 * n * st]
        with self._lock:
            meta = Batch(obs=None, action=ints_np[2 * n * st:2 * n * st + n], reward=floats_np[:n], next_obs=None,
                         terminated=flags_np[:n], truncated=flags_np[n:], index=ints_np[2 * n * st + n:],
                         discount=floats_np[n:])  # frames are gathered on the device instead
            self.buffer.sample_slots_into(n, slots[:n * st].reshape(n, st), slots[n * st:].reshape(n, st), meta)
            slots[slots < 0] = self.buffer.capacity  # zero padding: the mirror's last row
            ints_d = ints.to(self.device, non_blocking=self._cuda)
            floats_d = floats.to(self.device, non_blocking=self._cuda)
            flags_d = flags.to(self.device, non_blocking=self._cuda)
            # One gather for obs and next_obs; each is a contiguous half of the result.
            states = self._frames.index_select(0, ints_d[:2 * n * st]).view(2, n, st, *self._shape)
        return TorchBatch(obs=states[0], action=ints_d[2 * n * st:2 * n * st + n], reward=floats_d[:n],
                          next_obs=states[1], terminated=flags_d[:n], truncated=flags_d[n:],
                          index=ints_d[2 * n * st + n:], discount=floats_d[n:])

    def sample_numpy(self, batch_size: int, out: Optional[Batch] = None) -> Batch:
        """Host-side sampling from the native store (the same random stream as :meth:`sample`)."""
        with self._lock:
            return self.buffer.sample(batch_size, out)

    def __repr__(self) -> str:
        rb = self.buffer
        return (f"DeviceReplayBuffer(capacity={rb.capacity}, frame_shape={rb.frame_shape}, stack={rb.stack}, "
                f"num_envs={rb.num_envs}, device='{self.device}', len={len(rb)})")
