"""A cheap vector env of pixel frames that say who made them, for the ingest bench and exactness tests.

Each frame starts with six little-endian uint32: a magic number, then (actor, env, seed, episode,
step); the rest of the frame is a constant fill. The reward of step s is ``s % 7``. Episode
lengths are drawn from ``seed``; an episode ends terminated or truncated (about half each), so both
kinds of episode end reach the replay. Autoreset is SAME_STEP, like gymnasium vector envs
configured for replay: the last frame arrives in ``info["final_obs"]``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .._validate import positive_int

MAGIC = 0x4451_4E46  # "DQNF"
HEADER = 6  # uint32 words


class _Discrete:
    def __init__(self, n: int) -> None:
        self.n = n


def decode_frame(frame: np.ndarray) -> Tuple[int, int, int, int, int]:
    """(actor, env, seed, episode, step) of a frame made by :class:`CountingPixelVectorEnv`;
    ValueError if it is not one (a zero padding frame, for instance)."""
    words = np.ascontiguousarray(frame).reshape(-1)[: HEADER * 4].view("<u4")
    if words[0] != MAGIC:
        raise ValueError("not a CountingPixelVectorEnv frame")
    return tuple(int(w) for w in words[1:])  # type: ignore[return-value]


class CountingPixelVectorEnv:
    """``CountingPixelVectorEnv(num_envs, actor=0, seed=0, frame_shape=(84, 84), min_len=5, max_len=40,
    num_actions=4)``: the gymnasium vector-env calls an actor uses (reset, step, single_action_space,
    metadata["autoreset_mode"])."""

    metadata = {"autoreset_mode": "SameStep"}

    def __init__(self, num_envs: int, actor: int = 0, seed: int = 0, frame_shape: Sequence[int] = (84, 84),
                 min_len: int = 5, max_len: int = 40, num_actions: int = 4) -> None:
        num_envs = positive_int(num_envs, "num_envs")
        if not 1 <= min_len <= max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
        self.num_envs, self.actor, self.seed = num_envs, actor, seed % 2**32
        self.frame_shape = tuple(frame_shape)
        if int(np.prod(self.frame_shape)) < HEADER * 4:
            raise ValueError(f"frame_shape {self.frame_shape} is too small for the {HEADER * 4}-byte header")
        self.min_len, self.max_len = min_len, max_len
        self.single_action_space = _Discrete(num_actions)
        self._rng = np.random.default_rng([self.seed, actor])
        self._episode = np.full(num_envs, -1, np.int64)
        self._step = np.zeros(num_envs, np.int64)
        self._length = np.zeros(num_envs, np.int64)
        self._truncates = np.zeros(num_envs, bool)
        self._fill = np.full((num_envs,) + self.frame_shape, 17, np.uint8)

    def _new_episode(self, e: int) -> None:
        self._episode[e] += 1
        self._step[e] = 0
        self._length[e] = self._rng.integers(self.min_len, self.max_len + 1)
        self._truncates[e] = bool(self._rng.random() < 0.5)

    def _frames(self, envs: np.ndarray) -> np.ndarray:
        out = self._fill[: len(envs)].copy()
        words = out.reshape(len(envs), -1)[:, : HEADER * 4].view("<u4")
        words[:, 0] = MAGIC
        words[:, 1] = self.actor
        words[:, 2] = envs
        words[:, 3] = self.seed
        words[:, 4] = self._episode[envs]
        words[:, 5] = self._step[envs]
        return out

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        for e in range(self.num_envs):
            self._new_episode(e)
        return self._frames(np.arange(self.num_envs)), {}

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        self._step += 1
        rewards = (self._step % 7).astype(np.float32)
        ended = self._step >= self._length
        terminated, truncated = ended & ~self._truncates, ended & self._truncates
        info: Dict[str, Any] = {}
        if ended.any():
            info["final_obs"] = self._frames(np.arange(self.num_envs))
            info["_final_obs"] = ended.copy()
            for e in np.flatnonzero(ended):
                self._new_episode(int(e))
        return self._frames(np.arange(self.num_envs)), rewards, terminated, truncated, info

    def close(self) -> None:
        pass


def counting_env_fn(min_len: int = 5, max_len: int = 40, frame_shape: Sequence[int] = (84, 84)):
    """An ``env_fn(actor_index, num_envs, seed)`` for :class:`ActorPool` making CountingPixelVectorEnvs."""
    return _CountingEnvFn(min_len, max_len, tuple(frame_shape))


class _CountingEnvFn:  # a class, not a closure, so it pickles by reference to this module
    def __init__(self, min_len: int, max_len: int, frame_shape: Tuple[int, ...]) -> None:
        self.min_len, self.max_len, self.frame_shape = min_len, max_len, frame_shape

    def __call__(self, actor_index: int, num_envs: int, seed: int) -> CountingPixelVectorEnv:
        return CountingPixelVectorEnv(num_envs, actor=actor_index, seed=seed, frame_shape=self.frame_shape,
                                      min_len=self.min_len, max_len=self.max_len)
