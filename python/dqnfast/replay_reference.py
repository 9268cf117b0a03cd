"""Pure-Python reference replay buffer with exactly the semantics of :class:`dqnfast.ReplayBuffer`.

It is the executable specification the native buffer is tested against (same valid transitions,
same stacks, same random draws for the same seed and call sequence), and the "pure-Python buffer"
the benchmarks compare with. Single-threaded only. Written for clarity, not speed.

The model: every write (an episode's first frame, or a step) gets the next sequence number ``seq``
and lands in slot ``seq % capacity``. A step written at ``t`` is transition ``t``; ``hist`` lists the
write numbers of its frame and of the ``stack`` frames before it in the same episode (None before
the episode's start). obs = frames hist[stack..1], next_obs = frames hist[stack-1..0]. Transition t
is sampleable while every one of those frames is still in its slot.

With n_step > 1, transition t's window runs forward through the same episode for up to n steps,
stopping early at a terminated or truncated step or where the episode was abandoned (a new
start_episode without a terminal step); t is sampleable once its window is complete.
"""
from __future__ import annotations

import secrets
from typing import List, Optional, Sequence

import numpy as np

from .batch import Batch, SequenceBatch, empty_batch, empty_sequence_batch, shared_frames

_MASK = (1 << 64) - 1
_MAX_REJECTS_PER_DRAW = 256  # then fall back to a scan (as the native buffer does)
_ENDED = "ended"  # _next marker: the episode was abandoned after this frame


class CallRng:
    """SplitMix64 stream for one sample() call: seeded by (seed, call number); see cpp/dqnfast/rng.hpp."""

    def __init__(self, seed: int, call: int) -> None:
        self.state = (seed ^ (call * 0xD1B54A32D192ED03)) & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return (self.next() * n) >> 64


_SHIFT_MIX = 0xA0761D6478BD642F  # cpp/dqnfast/augment.hpp's kShiftMix


def shift_offsets(seed: int, call: int, batch_size: int, shift: int, shared: bool = False) -> np.ndarray:
    """The random-shift offsets sample call ``call`` of a buffer with this seed uses:
    (batch_size, 2, 2) int64, [b, 0] = (dy, dx) of obs and [b, 1] = that of next_obs (the same in the
    shared-frames layout), each in [-shift, shift] (cpp/dqnfast/augment.hpp's stream, bit for bit)."""
    out = np.zeros((batch_size, 2, 2), np.int64)
    if shift == 0:
        return out
    rng = CallRng(seed ^ _SHIFT_MIX, call)
    for b in range(batch_size):
        out[b, 0] = [rng.below(2 * shift + 1) - shift for _ in range(2)]
        out[b, 1] = out[b, 0] if shared else [rng.below(2 * shift + 1) - shift for _ in range(2)]
    return out


def shift_state(state: np.ndarray, shift: int, dy: int, dx: int) -> np.ndarray:
    """DrQ's random shift of one state (..., H, W), written the way DrQ describes it: pad every frame
    by ``shift`` pixels repeating its edges, then crop the frame's size at offset (shift + dy, shift + dx)."""
    h, w = state.shape[-2:]
    widths = [(0, 0)] * (state.ndim - 2) + [(shift, shift), (shift, shift)]
    padded = np.pad(state, widths, mode="edge")
    return padded[..., shift + dy:shift + dy + h, shift + dx:shift + dx + w]


class PyReplayBuffer:
    """Same constructor and methods as :class:`dqnfast.ReplayBuffer`, in plain Python."""

    def __init__(self, capacity: int, frame_shape: Sequence[int] = (84, 84), stack: int = 4, num_envs: int = 1,
                 seed: Optional[int] = None, pad: str = "zero", n_step: int = 1, gamma: float = 0.99) -> None:
        if pad not in ("zero", "first"):
            raise ValueError(f"pad must be 'zero' or 'first', got {pad!r}")
        if not 1 <= n_step <= 1000:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.pad, self.n_step, self.gamma = pad, int(n_step), float(gamma)
        for name, v in (("capacity", capacity), ("stack", stack), ("num_envs", num_envs)):
            if isinstance(v, (bool, float)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
            if v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        if capacity < num_envs * (stack + 1):
            raise ValueError(f"capacity must be at least num_envs * (stack + 1) = {num_envs * (stack + 1)}")
        self.capacity, self.stack, self.num_envs = int(capacity), int(stack), int(num_envs)
        self.frame_shape = tuple(int(d) for d in frame_shape)
        if not self.frame_shape or min(self.frame_shape) <= 0:
            raise ValueError("frame_shape entries must be positive")
        self.seed = secrets.randbits(64) if seed is None else int(seed)
        self._frames = np.zeros((self.capacity, *self.frame_shape), np.uint8)
        self._slot_seq: List[Optional[int]] = [None] * self.capacity  # write number held by each slot
        self._is_first = [False] * self.capacity
        self._action = [0] * self.capacity
        self._reward = [0.0] * self.capacity
        self._terminated = [False] * self.capacity
        self._truncated = [False] * self.capacity
        self._hist: List[tuple] = [()] * self.capacity
        self._next: List[object] = [None] * self.capacity  # successor write of each frame, or _ENDED
        self._stream_hist: List[List[Optional[int]]] = [[None] * (self.stack + 1) for _ in range(self.num_envs)]
        self._active = [False] * self.num_envs
        # each stream's own copy of its episode's last `stack` frames, for stacked()
        self._recent: List[List[np.ndarray]] = [[] for _ in range(self.num_envs)]
        self._head = 0
        self._calls = 0

    # -- properties ------------------------------------------------------------------------------
    @property
    def writes(self) -> int:
        return self._head

    def __len__(self) -> int:
        return len(self.valid_indices())

    def episode_active(self, env: int = 0) -> bool:
        self._check_env(env)
        return self._active[env]

    # -- writing ---------------------------------------------------------------------------------
    def _check_env(self, env: int) -> None:
        if not 0 <= env < self.num_envs:
            raise IndexError(f"env {env} out of range for num_envs={self.num_envs}")

    def _check_frame(self, frame: np.ndarray, name: str, shape: tuple) -> None:
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise TypeError(f"{name} must have dtype uint8, got {frame.dtype}")
        if frame.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {frame.shape}")

    def _write(self, env: int, frame: np.ndarray, first: bool, action: int = 0, reward: float = 0.0,
               terminated: bool = False, truncated: bool = False) -> int:
        seq = self._head
        self._head += 1
        hist = self._stream_hist[env]
        if first:
            if self._active[env] and self._intact(hist[0]):
                self._next[hist[0] % self.capacity] = _ENDED  # the episode was abandoned
            hist[:] = [seq] + [None] * self.stack
            self._active[env] = True
            self._recent[env] = []
        else:
            prev = hist[0]
            hist[:] = [seq] + hist[:-1]
            if terminated or truncated:
                self._active[env] = False
        self._recent[env] = (self._recent[env] + [frame.copy()])[-self.stack:]
        slot = seq % self.capacity
        self._frames[slot] = frame
        self._slot_seq[slot] = seq
        self._is_first[slot] = first
        self._action[slot], self._reward[slot] = int(action), float(np.float32(reward))
        self._terminated[slot], self._truncated[slot] = bool(terminated), bool(truncated)
        self._hist[slot] = tuple(hist)
        self._next[slot] = None
        if not first and self._intact(prev):
            self._next[prev % self.capacity] = seq
        return seq

    def start_episode(self, frame: np.ndarray, env: int = 0) -> int:
        self._check_env(env)
        self._check_frame(frame, "frame", self.frame_shape)
        return self._write(env, frame, first=True)

    def add(self, action: int, reward: float, next_frame: np.ndarray, terminated: bool, truncated: bool = False,
            env: int = 0) -> int:
        self._check_env(env)
        self._check_frame(next_frame, "next_frame", self.frame_shape)
        if not self._active[env]:
            raise ValueError(f"env {env}: add() before start_episode()")
        return self._write(env, next_frame, False, action, reward, terminated, truncated)

    def start_episodes(self, frames: np.ndarray, envs=None) -> None:
        envs = range(self.num_envs) if envs is None else [int(e) for e in envs]
        for i, e in enumerate(envs):
            self.start_episode(frames[i], e)

    def add_batch(self, actions, rewards, next_frames, terminated, truncated=None, envs=None) -> None:
        envs = list(range(self.num_envs)) if envs is None else [int(e) for e in envs]
        for i, e in enumerate(envs):
            self.add(int(actions[i]), float(rewards[i]), next_frames[i], bool(terminated[i]),
                     False if truncated is None else bool(truncated[i]), e)

    # -- reading ---------------------------------------------------------------------------------
    def _intact(self, seq: int) -> bool:
        return self._slot_seq[seq % self.capacity] == seq

    def _frames_valid(self, t: int) -> bool:
        slot = t % self.capacity
        if self._slot_seq[slot] != t or self._is_first[slot]:
            return False
        return all(self._intact(s) for s in self._hist[slot] if s is not None)

    def _window(self, t: int):
        """(last transition, discounted return, gamma^m) of t's n-step window; None if not complete."""
        ret, discount, cur = 0.0, 1.0, t
        for k in range(self.n_step):
            slot = cur % self.capacity
            ret += discount * self._reward[slot]
            discount *= self.gamma
            if self._terminated[slot] or self._truncated[slot] or k + 1 == self.n_step:
                return cur, ret, discount
            nxt = self._next[slot]
            if nxt is None:
                return None  # the future is not written yet
            if nxt is _ENDED:
                return cur, ret, discount
            cur = nxt
        raise AssertionError("unreachable")

    def _is_valid(self, t: int) -> bool:
        return self._frames_valid(t) and self._window(t) is not None

    def valid_indices(self) -> np.ndarray:
        lo = max(0, self._head - self.capacity)
        return np.array([t for t in range(lo, self._head) if self._is_valid(t)], dtype=np.int64)

    def _frame(self, seq: Optional[int], first: Optional[int] = None) -> np.ndarray:
        """Frame `seq`; for padding (None) zeros, or with pad="first" the episode's first frame."""
        if seq is None:
            if self.pad == "first":
                return self._frames[first % self.capacity]
            return np.zeros(self.frame_shape, np.uint8)
        return self._frames[seq % self.capacity]

    def stacked(self, env: int = 0) -> np.ndarray:
        self._check_env(env)
        recent = self._recent[env]
        if not recent:
            raise ValueError(f"env {env} has no frame yet: call start_episode() first")
        pad = [np.zeros(self.frame_shape, np.uint8) if self.pad == "zero" else recent[0]] * (self.stack - len(recent))
        return np.stack(pad + recent)

    def _frames_out(self, out: Batch) -> Optional[np.ndarray]:
        """The shared-frames array of ``out`` (see dqnfast.Batch), None for separate obs / next_obs.
        As the native buffer, refuses a shared batch with n_step > 1 and obs / next_obs that overlap
        in any other way (writing one would then overwrite the other)."""
        frames = shared_frames(out)
        if frames is not None and self.n_step > 1:
            raise ValueError(f"a shared-frames batch (next_obs = obs shifted by one frame) needs n_step == 1, but "
                             f"this buffer has n_step={self.n_step}")
        if frames is None and np.shares_memory(out.obs, out.next_obs):
            raise ValueError("obs and next_obs must not share memory, unless they are the two views of a "
                             "shared-frames array")
        return frames

    def _fill(self, out: Batch, b: int, t: int, frames: Optional[np.ndarray] = None) -> None:
        """Row b of out := transition t; ``frames``: out's shared-frames array, if it has one."""
        slot = t % self.capacity
        last, ret, discount = self._window(t)
        hist, last_hist = self._hist[slot], self._hist[last % self.capacity]
        first = [s for s in hist if s is not None][-1]  # the oldest real frame: the episode's first when padding
        last_first = [s for s in last_hist if s is not None][-1]
        obs = [self._frame(hist[self.stack - k], first) for k in range(self.stack)]
        if frames is not None:  # one-step: next_obs is obs shifted by one, so write each frame once
            frames[b] = np.stack(obs + [self._frame(last_hist[0])])
        else:
            out.obs[b] = np.stack(obs)
            out.next_obs[b] = np.stack([self._frame(last_hist[self.stack - 1 - k], last_first)
                                        for k in range(self.stack)])
        out.action[b] = self._action[slot]
        out.reward[b] = ret
        out.terminated[b] = self._terminated[last % self.capacity]
        out.truncated[b] = self._truncated[last % self.capacity]
        out.index[b] = t
        out.discount[b] = discount

    def _shift_batch(self, out, call: int, shift: int) -> None:
        """Random shift of every sampled state in place, with call ``call``'s offsets."""
        if shift == 0:
            return
        frames = self._frames_out(out)
        offsets = shift_offsets(self.seed, call, len(out.obs), shift, frames is not None)
        for b, ((dy, dx), (ndy, ndx)) in enumerate(offsets):
            if frames is not None:  # obs and next_obs are views of one row: shift its stack + 1 frames once
                frames[b] = shift_state(frames[b].copy(), shift, dy, dx)
            else:
                out.obs[b] = shift_state(out.obs[b].copy(), shift, dy, dx)
                out.next_obs[b] = shift_state(out.next_obs[b].copy(), shift, ndy, ndx)

    def sample(self, batch_size: int, out: Optional[Batch] = None, *, shift: int = 0) -> Batch:
        call = self._calls
        out = self._sample_plain(batch_size, out)
        self._shift_batch(out, call, shift)
        return out

    def _sample_plain(self, batch_size: int, out: Optional[Batch] = None) -> Batch:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = empty_batch(batch_size, self.stack, self.frame_shape) if out is None else out
        frames = self._frames_out(out)
        rng = CallRng(self.seed, self._calls)
        lo = max(0, self._head - self.capacity)
        for b in range(batch_size):
            for _ in range(_MAX_REJECTS_PER_DRAW if self._head > lo else 0):
                t = lo + rng.below(self._head - lo)
                if self._is_valid(t):
                    break
            else:  # rare: almost nothing is sampleable, so draw from the full list
                valid = self.valid_indices()
                if len(valid) == 0:
                    raise ValueError("cannot sample: the buffer holds no sampleable transition yet")
                t = int(valid[rng.below(len(valid))])
            self._fill(out, b, t, frames)
        self._calls += 1  # the native buffer, too, spends a call number only when it can sample
        return out

    def _sequence(self, t: int, length: int):
        """Frame writes of the sequence ending at t, newest first (None before the episode's start),
        or None if one of them is no longer stored."""
        seqs = [t]
        for _ in range(length):
            cur = seqs[-1]
            if cur is None:
                seqs.append(None)
                continue
            if not self._intact(cur):
                return None
            seqs.append(self._hist[cur % self.capacity][1])
        return seqs if seqs[-1] is None or self._intact(seqs[-1]) else None

    def sample_sequences(self, batch_size: int, length: int, out: Optional[SequenceBatch] = None) -> SequenceBatch:
        if batch_size <= 0 or length <= 0:
            raise ValueError("batch_size and length must be positive")
        out = empty_sequence_batch(batch_size, length, self.frame_shape) if out is None else out
        rng = CallRng(self.seed, self._calls)
        lo = max(0, self._head - self.capacity)

        def whole(t):
            return self._is_valid(t) and self._sequence(t, length) is not None

        for b in range(batch_size):
            for _ in range(_MAX_REJECTS_PER_DRAW if self._head > lo else 0):
                t = lo + rng.below(self._head - lo)
                if whole(t):
                    break
            else:
                valid = [t for t in range(lo, self._head) if whole(t)]
                if not valid:
                    if len(self) == 0:
                        raise ValueError("cannot sample: the buffer holds no sampleable transition yet")
                    self._calls += 1  # as the native buffer, which had already drawn its call number
                    raise ValueError("cannot sample sequences: no transition has its whole sequence stored yet")
                t = valid[rng.below(len(valid))]
            seqs = self._sequence(t, length)
            first = [s for s in seqs if s is not None][-1]
            for q in range(length + 1):  # oldest first
                out.frames[b, q] = self._frame(seqs[length - q], first)
            for p in range(length):  # step p produced frame p + 1
                real = seqs[length - p] is not None  # frame p exists, so frame p + 1 is a step's
                slot = seqs[length - 1 - p] % self.capacity if real else None
                out.mask[b, p] = real
                out.action[b, p] = self._action[slot] if real else 0
                out.reward[b, p] = self._reward[slot] if real else 0.0
                out.terminated[b, p] = real and self._terminated[slot]
                out.truncated[b, p] = real and self._truncated[slot]
            out.index[b] = t
        self._calls += 1
        return out

    def gather(self, indices: np.ndarray, out: Optional[Batch] = None) -> Batch:
        out = empty_batch(len(indices), self.stack, self.frame_shape) if out is None else out
        frames = self._frames_out(out)
        for b, t in enumerate(indices):
            if t < 0 or not self._is_valid(int(t)):
                raise IndexError(f"index {t} is not a sampleable transition")
            self._fill(out, b, int(t), frames)
        return out


class PySumTree:
    """The sum tree of cpp/dqnfast/sum_tree.hpp: parents recomputed from children on each update."""

    def __init__(self, size: int) -> None:
        self.leaves = 1
        while self.leaves < size:
            self.leaves <<= 1
        self.tree = [0.0] * (2 * self.leaves)

    def set(self, i: int, value: float) -> None:
        k = self.leaves + i
        self.tree[k] = value
        k >>= 1
        while k >= 1:
            self.tree[k] = self.tree[2 * k] + self.tree[2 * k + 1]
            k >>= 1

    def get(self, i: int) -> float:
        return self.tree[self.leaves + i]

    def find(self, u: float) -> int:
        i = 1
        while i < self.leaves:
            left = self.tree[2 * i]
            if u < left:
                i = 2 * i
            else:
                u -= left
                i = 2 * i + 1
        return i - self.leaves


class PyPrioritizedReplayBuffer(PyReplayBuffer):
    """Pure-Python twin of :class:`dqnfast.PrioritizedReplayBuffer` (same draws for the same seed)."""

    def __init__(self, capacity: int, frame_shape: Sequence[int] = (84, 84), stack: int = 4, num_envs: int = 1,
                 seed: Optional[int] = None, pad: str = "zero", n_step: int = 1, gamma: float = 0.99,
                 alpha: float = 0.6) -> None:
        super().__init__(capacity, frame_shape, stack, num_envs, seed, pad, n_step, gamma)
        if not alpha >= 0.0:
            raise ValueError("alpha must be finite and >= 0")
        self.alpha = float(alpha)
        self.max_priority = 1.0
        self._tree = PySumTree(self.capacity)

    def _write(self, env, frame, first, action=0, reward=0.0, terminated=False, truncated=False) -> int:
        seq = super()._write(env, frame, first, action, reward, terminated, truncated)
        self._tree.set(seq % self.capacity, 0.0 if first else self.max_priority ** self.alpha)
        return seq

    def update_priorities(self, index: np.ndarray, priorities: np.ndarray) -> int:
        if len(index) != len(priorities):
            raise ValueError("index and priorities must have the same length")
        applied = 0
        for t, p in zip(index.tolist(), priorities.tolist()):
            if not (p >= 0.0 and np.isfinite(p)):
                raise ValueError(f"priorities must be finite and >= 0, got {p}")
            slot = t % self.capacity
            if t >= 0 and self._slot_seq[slot] == t and not self._is_first[slot]:
                self._tree.set(slot, p ** self.alpha)
                self.max_priority = max(self.max_priority, p)
                applied += 1
        return applied

    def sample(self, batch_size: int, beta: float = 0.4, out=None, *, shift: int = 0):
        call = self._calls
        out = self._sample_prioritized(batch_size, beta, out)
        self._shift_batch(out, call, shift)
        return out

    def _sample_prioritized(self, batch_size: int, beta: float, out):
        from .batch import empty_prioritized_batch

        if len(self) == 0:
            raise ValueError("cannot sample: the buffer holds no sampleable transition yet")
        out = empty_prioritized_batch(batch_size, self.stack, self.frame_shape) if out is None else out
        frames = self._frames_out(out)
        rng = CallRng(self.seed, self._calls)
        self._calls += 1
        prob = []
        for b in range(batch_size):
            for _ in range(_MAX_REJECTS_PER_DRAW):
                total = self._tree.tree[1]
                if not total > 0.0:
                    break
                slot = self._tree.find(((rng.next() >> 11) * 2.0 ** -53) * total)
                p = self._tree.get(slot) if slot < self.capacity else 0.0
                if not p > 0.0:
                    continue
                t = self._slot_seq[slot]
                if not self._frames_valid(t):
                    self._tree.set(slot, 0.0)  # its frames are gone for good
                    continue
                if self._is_valid(t):
                    self._fill(out, b, t, frames)
                    prob.append(p / total)
                    break
            else:
                prob.append(self._fallback(rng, out, b, frames))
                continue
            if len(prob) == b:  # the loop broke on an empty tree
                prob.append(self._fallback(rng, out, b, frames))
        n = float(len(self))
        w = [(n * q) ** -beta for q in prob]
        m = max(w)
        out.weights[:] = [np.float32(x / m) for x in w]
        return out

    def _fallback(self, rng: CallRng, out, b: int, frames: Optional[np.ndarray] = None) -> float:
        lo = max(0, self._head - self.capacity)
        cand, cum, total = [], [], 0.0
        for t in range(lo, self._head):
            p = self._tree.get(t % self.capacity)
            if p > 0.0 and self._is_valid(t):
                total += p
                cand.append(t)
                cum.append(total)
        if not cand:
            raise ValueError("cannot sample: no sampleable transition has a positive priority")
        u = ((rng.next() >> 11) * 2.0 ** -53) * total
        k = min(int(np.searchsorted(np.array(cum), u, side="right")), len(cand) - 1)
        self._fill(out, b, cand[k], frames)
        return (cum[k] - (cum[k - 1] if k else 0.0)) / self._tree.tree[1]
