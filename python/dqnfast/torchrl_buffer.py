"""TorchRL replay buffers backed by the dqnfast frame store.

Usage, where TorchRL code builds a ``TensorDictReplayBuffer``::

    from dqnfast.torchrl_buffer import DqnfastTensorDictReplayBuffer
    rb = DqnfastTensorDictReplayBuffer(capacity=1_000_000, stack=4, batch_size=32)
    for data in collector:              # [num_envs, T] or flat [N] TensorDicts
        rb.extend(data)
        td = rb.sample()                # td["pixels"]: (32, 4, 84, 84) uint8, td["index"]: (32,) int64

``DqnfastTensorDictPrioritizedReplayBuffer(alpha=, beta=, ...)`` is the prioritized one: after a loss
module wrote ``"td_error"`` into the sampled TensorDict, ``rb.update_tensordict_priority(td)`` (or
``rb.update_priority(td["index"], priority)``) sets the new priorities.

What ``extend`` reads, per step (the layout of a TorchRL collector's output):

- ``pixels`` and ``("next", "pixels")``, uint8. Either single frames, ``(H, W)`` or ``(1, H, W)``,
  or ``CatFrames(N=stack, dim=-3)`` stacks ``(stack, H, W)``, of which only the newest frame is
  stored. Stacks are checked: ``("next", "pixels")`` must be ``pixels`` shifted by one frame,
  ``pixels`` must be the stack the store holds for that env (or a reset stack, padded as ``pad``
  says), so a stack is exactly rebuilt at sample time. Single frames are checked the same way:
  ``pixels`` must be the previous step's ``("next", "pixels")`` unless an episode ended.
- ``("next", "done")``, ``("next", "terminated")``, ``("next", "truncated")``: an episode ends where
  any is set; it ended by termination where ``terminated`` is set (``done`` alone counts as a
  truncation). The next step of that env must then start an episode (a collector's autoreset does).
- ``("next", "reward")``: the reward (n-step returns are computed from it).
- every other entry (``action``, ``("next", "end-of-life")``, ``step_count``, ``("collector",
  "traj_ids")``, ...) is stored as it is, one row per transition, and returned by ``sample`` with
  the same key, dtype and shape, except the keys named in ``exclude_keys``. The keys must be the
  same in every ``extend``.

Envs: a ``[num_envs, T]`` TensorDict holds ``num_envs`` separate streams, each in time order (the
collector's layout: time is the last dim). A flat ``[N]`` TensorDict is one stream when
``num_envs == 1``; with several envs it must be the ``reshape(-1)`` of a ``[num_envs, T]`` one
(env-major), which is what TorchRL's DQN example does with its collector's output.

``pad``: how a state at an episode's start is filled before its first frame. ``"first"`` repeats
the first frame (TorchRL's ``CatFrames(padding="same")``, its default); ``"zero"`` pads with zeros
(``CatFrames(padding="constant", padding_value=0)``).

``sample`` returns what TorchRL's own buffer returns for the same transitions when the env stacks
frames with ``CatFrames``, bit for bit (``tests/integrations/test_torchrl_buffer.py`` checks it), plus
``"index"`` (and ``"priority_weight"`` for the prioritized buffer). With ``n_step > 1`` it also
returns TorchRL's multi-step keys: ``("next", "reward")`` is the discounted sum of up to n rewards,
``("next", "original_reward")`` the step's own reward, ``"steps_to_next_obs"`` m (the steps the
window spans) and ``"gamma"`` gamma^m, and every other ``("next", ...)`` entry, pixels and done
flags included, is that of the window's last step. (TorchRL's ``MultiStepTransform`` keeps the
first step's done flags instead.)

This module imports torch, tensordict and torchrl; ``import dqnfast`` imports none of them.
Thread safety: ``extend``, ``sample`` and the priority updates take one lock, as TorchRL's buffers do.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from dqnfast._validate import positive_int
from dqnfast.batch import Batch, PrioritizedBatch
from dqnfast.prioritized import PrioritizedReplayBuffer
from dqnfast.replay import ReplayBuffer

NestedKey = Union[str, Tuple[str, ...]]
_DONE_KEYS = ("done", "terminated", "truncated")


def _key_name(key: NestedKey) -> str:
    return repr(key if isinstance(key, str) else tuple(key))


class _Rows:
    """The stored entries: each transition's leaves packed as bytes in one row of a (capacity, row)
    uint8 tensor, so a sample reads them with one gather. Leaves are laid out by decreasing item
    size, so each starts aligned and its rows read back as views of the gathered bytes."""

    def __init__(self, step: TensorDictBase, capacity: int) -> None:
        leaves = []
        for key, value in step.items(include_nested=True, leaves_only=True):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"entry {_key_name(key)} is not a tensor ({type(value).__name__}); pass exclude_keys="
                                f"[{_key_name(key)}]")
            leaves.append((key, value.dtype, tuple(value.shape), value.element_size() * value.numel()))
        leaves.sort(key=lambda leaf: -torch.empty((), dtype=leaf[1]).element_size())
        self.layout, offset = [], 0
        for key, dtype, shape, nbytes in leaves:
            self.layout.append((key, dtype, shape, offset, nbytes))
            offset += nbytes
        self.width = max(8, -(-offset // 8) * 8)  # rows start 8-byte aligned
        self.keys = {leaf[0] for leaf in leaves}
        self.data = torch.zeros((capacity, self.width), dtype=torch.uint8)

    def check(self, td: TensorDictBase) -> None:
        """Raise unless ``td`` ([E, T]) has exactly the keys, dtypes and per-step shapes of the first extend."""
        keys = set(td.keys(include_nested=True, leaves_only=True))
        if keys != self.keys:
            raise ValueError(f"data's entries changed: new {sorted(map(_key_name, keys - self.keys))}, missing "
                             f"{sorted(map(_key_name, self.keys - keys))} (every extend must have the same keys; "
                             f"exclude_keys= leaves some out)")
        for key, dtype, shape, _, _ in self.layout:
            value = td.get(key)
            if value.dtype != dtype or tuple(value.shape[2:]) != shape:
                raise ValueError(f"entry {_key_name(key)} is {value.dtype} {tuple(value.shape[2:])} per step; earlier "
                                 f"extends had {dtype} {shape}")

    def write(self, slots: torch.Tensor, td: TensorDictBase) -> None:
        n = len(slots)
        rows = torch.zeros((n, self.width), dtype=torch.uint8)
        for key, dtype, _, offset, nbytes in self.layout:
            rows[:, offset:offset + nbytes] = td.get(key).reshape(n, -1).contiguous().view(torch.uint8)
        self.data[slots] = rows

    def read(self, slots: torch.Tensor, pin: bool = False) -> Dict[NestedKey, torch.Tensor]:
        """key -> (B, *shape) tensors, views of one freshly gathered (B, row) tensor."""
        n = int(slots.shape[0])
        rows = torch.empty((n, self.width), dtype=torch.uint8, pin_memory=pin)
        torch.index_select(self.data, 0, slots, out=rows)
        return {key: rows[:, offset:offset + nbytes].view(dtype).view(n, *shape)
                for key, dtype, shape, offset, nbytes in self.layout}


def _nested(flat: Dict[NestedKey, torch.Tensor]) -> Dict[str, Any]:
    """{("next", "reward"): x} -> {"next": {"reward": x}}: one TensorDict construction for a sample."""
    out: Dict[str, Any] = {}
    for key, value in flat.items():
        path = (key,) if isinstance(key, str) else key
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


class DqnfastTensorDictReplayBuffer:
    """A TorchRL-style replay buffer (``extend`` / ``sample`` of TensorDicts) over a dqnfast frame store.

    Args:
        capacity: frame slots of the store: one per step plus one per episode start (so a bit more
            than the transitions it holds, ~1 per episode more). The oldest are overwritten first.
        stack: frames per state (``CatFrames``' ``N``).
        pad: ``"first"`` (CatFrames ``padding="same"``) or ``"zero"`` (``padding="constant"``).
        num_envs: the streams; default: read off the first ``extend`` (``[num_envs, T]``; a flat one is 1).
        batch_size: ``sample()``'s default batch size.
        n_step, gamma: n-step returns, computed at sample time (use these rather than TorchRL's
            ``MultiStepTransform``, which rewrites the frames as they are written).
        pixels_key: where the frames are (``"pixels"``); ``("next", pixels_key)`` the next ones.
        exclude_keys: entries not to store (e.g. ``"action_value"``).
        pin_memory: sampled TensorDicts are in pinned host memory (CUDA only), so that a
            ``td.to("cuda", non_blocking=True)`` transform overlaps the copy.
        transform: a TorchRL ``Transform`` or a callable on TensorDicts, applied to each sample
            (more with :meth:`append_transform`).
        seed: the store's sampling seed (default: random).
        storage_path: a directory for a file-backed frame store (see :class:`dqnfast.ReplayBuffer`).
    """

    def __init__(self, capacity: int, *, stack: int = 4, pad: str = "first", num_envs: Optional[int] = None,
                 batch_size: Optional[int] = None, n_step: int = 1, gamma: float = 0.99,
                 pixels_key: NestedKey = "pixels", exclude_keys: Sequence[NestedKey] = (),
                 pin_memory: bool = False, transform: Optional[Callable] = None, seed: Optional[int] = None,
                 storage_path: Any = None) -> None:
        self.capacity = positive_int(capacity, "capacity")
        self.stack = positive_int(stack, "stack")
        if pad not in ("first", "zero"):
            raise ValueError(f"pad must be 'first' (CatFrames padding='same') or 'zero' (padding='constant'), "
                             f"got {pad!r}")
        self.pad = pad
        self.num_envs = None if num_envs is None else positive_int(num_envs, "num_envs")
        self.batch_size = None if batch_size is None else positive_int(batch_size, "batch_size")
        self.n_step = positive_int(n_step, "n_step")
        self.gamma = float(gamma)
        self.pixels_key = pixels_key
        self._next_pixels_key = ("next", pixels_key) if isinstance(pixels_key, str) else ("next", *pixels_key)
        self.exclude_keys = list(exclude_keys)
        if pin_memory and not torch.cuda.is_available():
            raise ValueError("pin_memory=True needs CUDA (pinned host memory is for copies to a GPU)")
        self.pin_memory = bool(pin_memory)
        self._seed = seed
        self._storage_path = storage_path
        self._transforms: List[Tuple[Callable, Optional[Callable]]] = []  # (on sample, on extend)
        if transform is not None:
            self.append_transform(transform)
        self._lock = threading.RLock()
        self.store: Optional[ReplayBuffer] = None  # built by the first extend (it gives the frame shape)
        self.write_count = 0  # transitions written

    # ---- construction, on the first extend -------------------------------------------------------
    def _make_store(self, frame_shape: Tuple[int, int], num_envs: int):
        kwargs = dict(stack=self.stack, num_envs=num_envs, seed=self._seed, pad=self.pad,
                      storage_path=self._storage_path, n_step=self.n_step, gamma=self.gamma)
        return ReplayBuffer(self.capacity, frame_shape, **kwargs)

    def _init(self, frames_shape: torch.Size, num_envs: int, extras: TensorDictBase) -> None:
        self.frame_shape = tuple(frames_shape[-2:])
        self.stacked_input = len(frames_shape) == 3 and frames_shape[0] == self.stack and self.stack > 1
        self.store = self._make_store(self.frame_shape, num_envs)
        self.num_envs = num_envs
        cap = self.capacity
        # One row per transition id modulo capacity: the live ids are the last `capacity` write numbers.
        self._rows = _Rows(extras.reshape(-1)[0], cap)
        self._succ = np.full(cap, -1, np.int64)  # id of the same episode's next transition, -1 at its end
        self._last_id = np.full(num_envs, -1, np.int64)  # each env's newest transition, -1 if its episode ended
        self._open = np.zeros(num_envs, bool)  # env has an episode open in the store

    # ---- extend ---------------------------------------------------------------------------------
    def extend(self, data: TensorDictBase) -> torch.Tensor:
        """Write a collector's batch; returns the ids of its transitions (shape of ``data``'s batch)."""
        if not isinstance(data, TensorDictBase):
            raise TypeError(f"extend needs a TensorDict, got {type(data).__name__}")
        with self._lock:
            for _, on_extend in reversed(self._transforms):
                if on_extend is not None:
                    data = on_extend(data)
            shape = data.batch_size
            td = self._as_streams(data.to("cpu") if data.device != torch.device("cpu") else data)
            ids = self._write(td)
            return torch.from_numpy(ids).reshape(shape) if len(shape) == 1 else torch.from_numpy(ids)

    def add(self, data: TensorDictBase) -> int:
        """One step of one env (batch size []): ``extend`` of it; returns its id."""
        if not isinstance(data, TensorDictBase) or data.batch_dims:
            raise TypeError("add takes one step (a TensorDict of batch size []); use extend for batches")
        return int(self.extend(data.unsqueeze(0))[0])

    def _as_streams(self, data: TensorDictBase) -> TensorDictBase:
        """[num_envs, T] from [num_envs, T] or a flat (env-major) [N]."""
        if data.batch_dims == 2:
            if self.num_envs is not None and data.batch_size[0] != self.num_envs:
                raise ValueError(f"data has batch size {tuple(data.batch_size)}: [num_envs, T] with num_envs="
                                 f"{self.num_envs} expected")
            return data
        if data.batch_dims != 1:
            raise ValueError(f"data must be a [num_envs, T] or flat [N] TensorDict, got batch size "
                             f"{tuple(data.batch_size)}")
        envs = self.num_envs or 1
        if data.batch_size[0] % envs:
            raise ValueError(f"a flat TensorDict of {data.batch_size[0]} steps cannot be {envs} env streams: pass "
                             f"[num_envs, T] data or data.reshape(-1) of it")
        return data.reshape(envs, -1)

    def _get(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise KeyError(f"extend: data has no {_key_name(key)} entry")
        return value

    def _frames(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        x = self._get(td, key)
        if x.dtype != torch.uint8:
            raise TypeError(f"{_key_name(key)} must be uint8 frames, got {x.dtype} (keep the env's pixels uint8: "
                            f"no ToTensorImage(from_int=True)/VecNorm before the buffer; normalize in the model)")
        ps = tuple(x.shape[2:])
        ok = len(ps) == 2 or (len(ps) == 3 and ps[0] in (1, self.stack))
        if not ok:
            raise ValueError(f"{_key_name(key)} has per-step shape {ps}: (H, W), (1, H, W) or stacks of "
                             f"stack={self.stack} frames (stack, H, W) expected")
        if self.store is not None and (ps[-2:] != self.frame_shape or
                                       (len(ps) == 3 and ps[0] == self.stack > 1) != self.stacked_input):
            raise ValueError(f"{_key_name(key)} has per-step shape {ps}, but earlier extends had frames of shape "
                             f"{self.frame_shape}{' in stacks of ' + str(self.stack) if self.stacked_input else ''}")
        return x

    def _flag(self, td: TensorDictBase, key: NestedKey, E: int, T: int) -> Optional[np.ndarray]:
        x = td.get(key, None)
        if x is None:
            return None
        if x.dtype != torch.bool or x.numel() != E * T:
            raise TypeError(f"{_key_name(key)} must be bool with one value per step ({E}x{T}), got {x.dtype} "
                            f"{tuple(x.shape)}")
        return x.reshape(E, T).numpy()

    def _write(self, td: TensorDictBase) -> np.ndarray:
        E, T = td.batch_size
        if E * (T + 1) > self.capacity:
            raise ValueError(f"extend of {E}x{T} steps does not fit a store of capacity={self.capacity} frame slots: "
                             f"extend in smaller pieces, or give the buffer more capacity")
        pix, nxt = self._frames(td, self.pixels_key), self._frames(td, self._next_pixels_key)
        if pix.shape != nxt.shape:
            raise ValueError(f"{_key_name(self.pixels_key)} {tuple(pix.shape)} and {_key_name(self._next_pixels_key)}"
                             f" {tuple(nxt.shape)} differ in shape")
        flags = {k: self._flag(td, ("next", k), E, T) for k in _DONE_KEYS}
        if all(v is None for v in flags.values()):
            raise KeyError("extend: data has none of ('next', 'done'), ('next', 'terminated'), ('next', 'truncated')")
        no = np.zeros((E, T), bool)
        terminated = flags["terminated"] if flags["terminated"] is not None else no
        ended = terminated | (flags["done"] if flags["done"] is not None else no) | \
            (flags["truncated"] if flags["truncated"] is not None else no)
        reward = self._get(td, ("next", "reward"))
        if not reward.is_floating_point() and reward.dtype not in (torch.int32, torch.int64) \
                or reward.numel() != E * T:
            raise TypeError(f"('next', 'reward') must be numbers, one per step ({E}x{T}), got {reward.dtype} "
                            f"{tuple(reward.shape)}")
        reward = reward.reshape(E, T).to(torch.float32).numpy()
        extras = td.exclude(self.pixels_key, self._next_pixels_key, *self.exclude_keys)
        if self.store is None:
            self._init(pix.shape[2:], E, extras)
        else:
            self._rows.check(extras)
        cur = pix.reshape(E, T, -1, *self.frame_shape).numpy()  # (E, T, k, H, W), k = 1 or stack
        new = nxt.reshape(E, T, -1, *self.frame_shape).numpy()
        restart = np.zeros((E, T), bool)
        restart[:, 0] = ~self._open
        restart[:, 1:] = ended[:, :-1]
        self._check(cur, new, restart)

        # Checks passed: write step by step, all envs of a step in one native call.
        store, ids = self.store, np.empty((E, T), np.int64)
        actions, all_envs = np.zeros(E, np.int64), np.arange(E)  # actions live with the other entries
        for t in range(T):
            starts = np.flatnonzero(restart[:, t])
            if len(starts):
                store.start_episodes(np.ascontiguousarray(cur[starts, t, -1]), starts)
            store.add_batch(actions, reward[:, t], np.ascontiguousarray(new[:, t, -1]), terminated[:, t],
                            ended[:, t] & ~terminated[:, t], all_envs)
            ids[:, t] = np.arange(store.writes - E, store.writes)  # add_batch's row k is write number writes - E + k
        # The entries, and the links of each episode's transitions (n-step windows read them).
        slots = ids % self.capacity
        self._rows.write(torch.from_numpy(slots.reshape(-1)), extras.reshape(-1))
        self._succ[slots] = -1
        link = ~ended[:, :-1]
        self._succ[slots[:, :-1][link]] = ids[:, 1:][link]
        cont = ~restart[:, 0] & (self._last_id >= 0)
        self._succ[self._last_id[cont] % self.capacity] = ids[cont, 0]
        self._last_id = np.where(ended[:, -1], -1, ids[:, -1])
        self._open = ~ended[:, -1]
        self.write_count += E * T
        return ids

    def _check(self, cur: np.ndarray, new: np.ndarray, restart: np.ndarray) -> None:
        """Raise before anything is written unless the frames are one consistent stream per env."""
        E, T = restart.shape
        key, nkey = _key_name(self.pixels_key), _key_name(self._next_pixels_key)
        if self.stacked_input:
            bad = (new[:, :, :-1] != cur[:, :, 1:]).reshape(E, T, -1).any(-1)
            if bad.any():
                e, t = np.argwhere(bad)[0]
                raise ValueError(f"env {e} step {t}: {nkey} is not {key} shifted by one frame (CatFrames(N="
                                 f"{self.stack}, dim=-3) stacks expected)")
            newest = cur[:, :, -1:]
            pad = newest if self.pad == "first" else np.zeros_like(newest)
            bad = restart & (cur[:, :, :-1] != pad).reshape(E, T, -1).any(-1)
            if bad.any():
                e, t = np.argwhere(bad)[0]
                raise ValueError(f"env {e} step {t}: {key} starts an episode but is not a reset stack padded with "
                                 f"{'its first frame' if self.pad == 'first' else 'zeros'} (pad={self.pad!r}; "
                                 f"CatFrames padding='same' is pad='first', padding='constant' is pad='zero')")
        # Within the batch: a step that does not start an episode continues the previous step.
        bad = ~restart[:, 1:] & (cur[:, 1:] != new[:, :-1, -cur.shape[2]:]).reshape(E, T - 1, -1).any(-1)
        if bad.any():
            e, t = np.argwhere(bad)[0]
            raise ValueError(f"env {e} step {t + 1}: {key} does not continue the previous step's {nkey} and no "
                             f"done/terminated/truncated came between them")
        # Across extends: the first step of an open episode continues what the store holds.
        for e in np.flatnonzero(~restart[:, 0]):
            held = self.store.stacked(int(e))[-cur.shape[2]:]
            if not np.array_equal(held, cur[e, 0]):
                raise ValueError(f"env {e} step 0: {key} does not continue the env's previous step in the buffer "
                                 f"(call end_episodes() if the envs were reset without a done)")

    def end_episodes(self) -> None:
        """Mark every env's episode as over: the next ``extend`` starts each env at its first step
        (for envs reset without a done, e.g. a new collector). Those episodes' last transitions stay."""
        with self._lock:
            if self.store is not None:
                self._open[:] = False
                self._last_id[:] = -1

    @property
    def nbytes(self) -> int:
        """Bytes held: the frame store, the entries' rows and the n-step links (0 before the first extend)."""
        if self.store is None:
            return 0
        return self.store.nbytes + self._rows.data.nbytes + self._succ.nbytes

    # ---- sample ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return 0 if self.store is None else len(self.store)

    def sample(self, batch_size: Optional[int] = None, return_info: bool = False):
        """A [B] TensorDict of uniformly drawn transitions (with replacement), ``"index"`` included."""
        n = self._batch_size(batch_size)
        with self._lock:
            out = self._empty(n)
            self.store.sample(n, out=out)
            return self._finish(out, return_info)

    def _batch_size(self, batch_size: Optional[int]) -> int:
        if batch_size is None:
            if self.batch_size is None:
                raise RuntimeError("batch_size not given: pass it to sample() or to the constructor")
            return self.batch_size
        return positive_int(batch_size, "batch_size")

    def _empty(self, n: int, prioritized: bool = False) -> Batch:
        """A batch of fresh torch-backed arrays (each sample owns its tensors; pinned with pin_memory)."""
        if self.store is None:
            raise RuntimeError("cannot sample: nothing was written yet")
        pin = self.pin_memory
        obs = torch.empty((n, self.stack, *self.frame_shape), dtype=torch.uint8, pin_memory=pin).numpy()
        nxt = torch.empty((n, self.stack, *self.frame_shape), dtype=torch.uint8, pin_memory=pin).numpy()
        b = Batch(obs, np.empty(n, np.int64), np.empty(n, np.float32), nxt, np.empty(n, bool), np.empty(n, bool),
                  np.empty(n, np.int64), np.empty(n, np.float32))
        return PrioritizedBatch(*b, weights=np.empty(n, np.float32)) if prioritized else b

    def _finish(self, b: Batch, return_info: bool):
        index = torch.from_numpy(b.index)
        td = self._build(b)
        for on_sample, _ in self._transforms:
            td = on_sample(td)
        info = {"index": index}
        if isinstance(b, PrioritizedBatch):
            info["priority_weight"] = torch.from_numpy(b.weights)
        for k, v in info.items():  # set after the transforms, on the result's device, as TorchRL does
            td.set(k, v.to(td.device) if td.device is not None else v)
        return (td, info) if return_info else td

    def _build(self, b: Batch) -> TensorDictBase:
        entries = self._rows.read(torch.from_numpy(b.index % self.capacity), self.pin_memory)
        if self.n_step > 1:
            self._n_step_entries(entries, b)
        entries[self.pixels_key] = torch.from_numpy(b.obs)
        entries[self._next_pixels_key] = torch.from_numpy(b.next_obs)
        return TensorDict(_nested(entries), batch_size=[len(b.index)])

    def _n_step_entries(self, entries: Dict[NestedKey, torch.Tensor], b: Batch) -> None:
        """The window's last step: follow each episode's links up to n - 1 times (not past its end)."""
        cur, m = b.index.copy(), np.ones(len(b.index), np.int64)
        for _ in range(self.n_step - 1):
            slot = cur % self.capacity
            go = self._succ[slot] >= 0  # (-1 after an episode's last step)
            cur = np.where(go, self._succ[slot], cur)
            m += go
        last = self._rows.read(torch.from_numpy(cur % self.capacity), self.pin_memory)
        reward = entries[("next", "reward")]
        entries.update((k, v) for k, v in last.items() if not isinstance(k, str) and k[0] == "next")
        entries[("next", "original_reward")] = reward
        entries[("next", "reward")] = torch.from_numpy(b.reward).to(reward.dtype).reshape(reward.shape)
        entries["steps_to_next_obs"] = torch.from_numpy(m)  # one per transition, as MultiStepTransform writes them
        entries["gamma"] = torch.from_numpy(b.discount)

    def __getitem__(self, index) -> TensorDictBase:
        """The transitions with these ids (``"index"`` of a sample, or what ``extend`` returned),
        transforms applied; IndexError for one that is gone."""
        ids = torch.as_tensor(index, dtype=torch.int64).cpu()
        flat = ids.reshape(-1).numpy()
        with self._lock:
            out = self._empty(len(flat))
            self.store.gather(np.ascontiguousarray(flat), out=out)
            td = self._build(out)
        for on_sample, _ in self._transforms:
            td = on_sample(td)
        return td.reshape(ids.shape) if ids.ndim != 1 else td

    # ---- transforms ------------------------------------------------------------------------------
    def append_transform(self, transform: Callable, *, invert: bool = False) -> "DqnfastTensorDictReplayBuffer":
        """Add a transform applied to each sample, after the ones before (TorchRL's ``append_transform``).

        A TorchRL ``Transform``'s inverse runs on ``extend``'s data, as in TorchRL; ``invert=True``
        swaps the two. A transform that changes the frames on the way in (``MultiStepTransform``) cannot
        work on a frame store: use ``n_step=`` instead."""
        self._transforms.append(self._pair(transform, invert))
        return self

    def insert_transform(self, index: int, transform: Callable, *, invert: bool = False) -> "DqnfastTensorDictReplayBuffer":
        self._transforms.insert(index, self._pair(transform, invert))
        return self

    @staticmethod
    def _pair(transform: Callable, invert: bool) -> Tuple[Callable, Optional[Callable]]:
        if not callable(transform):
            raise TypeError(f"transform must be callable (a TorchRL Transform or a function), got "
                            f"{type(transform).__name__}")
        if type(transform).__name__ == "MultiStepTransform":
            raise ValueError("MultiStepTransform rewrites the frames as they are written, which a frame store cannot "
                             "hold: pass n_step= and gamma= to the buffer instead")
        if hasattr(transform, "eval"):
            transform.eval()  # as TorchRL does with buffer transforms
        inverse = getattr(transform, "inv", None)
        return (inverse or (lambda td: td), transform) if invert else (transform, inverse)

    def empty(self) -> None:
        """Drop everything: the next extend starts a new store (with the same settings)."""
        with self._lock:
            self.store = None
            self.write_count = 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(capacity={self.capacity}, stack={self.stack}, pad={self.pad!r}, "
                f"num_envs={self.num_envs}, n_step={self.n_step}, len={len(self)})")


class DqnfastTensorDictPrioritizedReplayBuffer(DqnfastTensorDictReplayBuffer):
    """Proportional prioritized replay (:class:`dqnfast.PrioritizedReplayBuffer`) with TorchRL's API:
    ``alpha``, ``beta``, ``priority_key`` (``"td_error"``) and ``eps`` as in TorchRL's
    ``TensorDictPrioritizedReplayBuffer``; samples carry ``"priority_weight"``.

    New transitions get the largest priority seen so far. A priority p is stored as (|p| + eps)^alpha.
    The weights are (N P(i))^-beta normalized by the batch's largest weight (TorchRL normalizes by the
    largest weight of the whole buffer: the two differ by one factor per batch)."""

    def __init__(self, capacity: int, *, alpha: float, beta: float, priority_key: NestedKey = "td_error",
                 eps: float = 1e-8, **kwargs) -> None:
        super().__init__(capacity, **kwargs)
        self.alpha, self.beta, self.priority_key, self.eps = float(alpha), float(beta), priority_key, float(eps)

    def _make_store(self, frame_shape, num_envs):
        return PrioritizedReplayBuffer(self.capacity, frame_shape, stack=self.stack, num_envs=num_envs,
                                       seed=self._seed, pad=self.pad, storage_path=self._storage_path,
                                       n_step=self.n_step, gamma=self.gamma, alpha=self.alpha)

    def extend(self, data: TensorDictBase) -> torch.Tensor:
        ids = super().extend(data)
        priority = data.get(self.priority_key, None) if isinstance(data, TensorDictBase) else None
        if priority is not None:  # as TorchRL: priorities that come with the data are used
            self.update_priority(ids, priority)
        return ids

    def sample(self, batch_size: Optional[int] = None, return_info: bool = False):
        n = self._batch_size(batch_size)
        with self._lock:
            out = self._empty(n, prioritized=True)
            self.store.sample(n, self.beta, out=out)
            return self._finish(out, return_info)

    def update_priority(self, index, priority) -> None:
        """Set the priorities of these ids; ids of transitions overwritten since are ignored."""
        if self.store is None:
            raise RuntimeError("update_priority before anything was written")
        index = torch.as_tensor(index).detach().reshape(-1).cpu().to(torch.int64)
        priority = torch.as_tensor(priority).detach().cpu().to(torch.float64)
        if priority.numel() == 1 and len(index) != 1:
            priority = priority.reshape(1).expand(len(index))
        elif priority.numel() != len(index):
            if priority.ndim == 0 or priority.shape[0] != len(index):
                raise ValueError(f"priority must have one value per index ({len(index)}), got shape "
                                 f"{tuple(priority.shape)}")
            priority = priority.reshape(len(index), -1).amax(-1)  # TorchRL's default reduction, "max"
        priority = priority.reshape(-1).abs() + self.eps
        with self._lock:
            self.store.update_priorities(index.numpy(), priority.numpy())

    def update_tensordict_priority(self, data: TensorDictBase) -> None:
        """``update_priority(data["index"], data[priority_key])``, after a loss module wrote the TD errors."""
        priority = data.get(self.priority_key, None)
        if priority is None:
            raise KeyError(f"update_tensordict_priority: data has no {_key_name(self.priority_key)} entry (the loss "
                           f"module writes it; priority_key= names another)")
        self.update_priority(data.get("index"), priority)
