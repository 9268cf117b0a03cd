"""Chunks: what an actor sends the learner, and how they go into a replay whole or not at all.

A chunk is a dict of flat numpy arrays, one row per frame an actor's envs produced, in the order
they must be written, plus ``segments`` that group the rows into replay calls:

- ``frames`` (M, *frame_shape) uint8; ``env`` (M,) int32, the actor's own env index (0..K-1);
  ``action`` (M,) int64, ``reward`` (M,) float32, ``terminated``/``truncated`` (M,) bool (unused on
  episode-start rows); ``priority`` (M,) float32 on prioritized runs (initial priorities from the
  actor's copy of the network; unused on episode-start rows).
- ``segments`` (S, 3) int64 rows ``[begin, end, is_start]``: rows begin..end-1 are either episode
  starts (``start_episodes``) or steps (``add_batch``) of distinct envs.
- ``meta``: ``actor``, ``incarnation`` (random per actor process, new after a restart), ``seq``
  (chunk number within the incarnation), ``weights_version``, ``episode_returns`` and
  ``episode_lengths`` (real returns and lengths of the episodes that ended in the chunk, when the
  env reports them).

Whole numpy arrays travel through Ray's object store (read zero-copy on the learner's node);
nothing is pickled per transition.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..prioritized import PrioritizedReplayBuffer

Chunk = Dict[str, Any]


class ChunkBuilder:
    """Collects one chunk on the actor side, segment by segment."""

    def __init__(self, frame_shape: Sequence[int], prioritized: bool) -> None:
        self.frame_shape = tuple(frame_shape)
        self.prioritized = prioritized
        self._frames: List[np.ndarray] = []
        self._env: List[np.ndarray] = []
        self._action: List[np.ndarray] = []
        self._reward: List[np.ndarray] = []
        self._term: List[np.ndarray] = []
        self._trunc: List[np.ndarray] = []
        self._prio: List[np.ndarray] = []
        self._segments: List[Tuple[int, int, int]] = []
        self.rows = 0
        self.steps = 0

    def _segment(self, n: int, is_start: bool) -> None:
        self._segments.append((self.rows, self.rows + n, int(is_start)))
        self.rows += n

    # The replay's write API (start_episodes / add_batch), so dqnfast.feed.StepFeed writes a step into
    # a chunk exactly as it writes one into a replay.
    def start_episodes(self, frames: np.ndarray, envs: np.ndarray) -> None:
        """Episode starts: ``frames[i]`` is the first frame of env ``envs[i]``."""
        n = len(envs)
        if n == 0:
            return
        self._frames.append(np.array(frames, np.uint8).reshape((n,) + self.frame_shape))
        self._env.append(np.asarray(envs, np.int32))
        self._action.append(np.zeros(n, np.int64))
        self._reward.append(np.zeros(n, np.float32))
        self._term.append(np.zeros(n, bool))
        self._trunc.append(np.zeros(n, bool))
        if self.prioritized:
            self._prio.append(np.zeros(n, np.float32))
        self._segment(n, True)

    def add_batch(self, actions: np.ndarray, rewards: np.ndarray, next_frames: np.ndarray, terminated: np.ndarray,
                  truncated: np.ndarray, envs: Optional[np.ndarray] = None,
                  priorities: Optional[np.ndarray] = None) -> None:
        """One step of each env in ``envs`` (each at most once; all of the actor's envs when None)."""
        if envs is None:
            envs = np.arange(len(actions))
        n = len(envs)
        if n == 0:
            return
        self._frames.append(np.array(next_frames, np.uint8).reshape((n,) + self.frame_shape))
        self._env.append(np.asarray(envs, np.int32))
        self._action.append(np.asarray(actions, np.int64))
        self._reward.append(np.asarray(rewards, np.float32))
        self._term.append(np.asarray(terminated, bool))
        self._trunc.append(np.asarray(truncated, bool))
        if self.prioritized:
            if priorities is None:
                raise ValueError("a prioritized chunk needs priorities for every step")
            self._prio.append(np.asarray(priorities, np.float32))
        self._segment(n, False)
        self.steps += n

    def build(self, meta: Dict[str, Any]) -> Chunk:
        def cat(parts: List[np.ndarray], empty: np.ndarray) -> np.ndarray:
            return np.concatenate(parts) if parts else empty

        chunk: Chunk = {
            "frames": cat(self._frames, np.zeros((0,) + self.frame_shape, np.uint8)),
            "env": cat(self._env, np.zeros(0, np.int32)),
            "action": cat(self._action, np.zeros(0, np.int64)),
            "reward": cat(self._reward, np.zeros(0, np.float32)),
            "terminated": cat(self._term, np.zeros(0, bool)),
            "truncated": cat(self._trunc, np.zeros(0, bool)),
            "segments": np.array(self._segments, np.int64).reshape(-1, 3),
            "meta": dict(meta),
        }
        if self.prioritized:
            chunk["priority"] = cat(self._prio, np.zeros(0, np.float32))
        return chunk


def starts_all_envs(chunk: Chunk, envs_per_actor: int) -> bool:
    """Whether the chunk opens with an episode start of every one of the actor's envs, so it does
    not depend on anything the learner received before (the first chunk after a (re)start)."""
    seg = chunk["segments"]
    if len(seg) == 0 or not seg[0, 2]:
        return False
    first = chunk["env"][seg[0, 0]:seg[0, 1]]
    return len(first) == envs_per_actor and np.array_equal(np.sort(first), np.arange(envs_per_actor))


class ChunkWriter:
    """Writes chunks into one replay: env e of actor a is the replay's stream ``a * K + e``.

    ``check`` validates a whole chunk against a mirror of which streams have an active episode
    before anything is written, so a chunk goes in whole or not at all. Must be the replay's only
    writer (prioritized chunks take their transitions' ids from ``replay.writes``).
    """

    def __init__(self, replay: Any, num_actors: int, envs_per_actor: int) -> None:
        if replay.num_envs != num_actors * envs_per_actor:
            raise ValueError(f"the replay must have num_envs = num_actors * envs_per_actor = "
                             f"{num_actors} * {envs_per_actor} = {num_actors * envs_per_actor} (one stream per "
                             f"actor env), got num_envs={replay.num_envs}")
        self.replay = replay
        self.num_actors, self.envs_per_actor = num_actors, envs_per_actor
        self.frame_shape = tuple(replay.frame_shape)
        self.prioritized = isinstance(replay, PrioritizedReplayBuffer)
        self.active = np.array([replay.episode_active(s) for s in range(replay.num_envs)], bool)

    def check(self, chunk: Chunk) -> np.ndarray:
        """ValueError naming the problem if the chunk cannot go in whole; else the actor's streams'
        active flags after it."""
        meta = chunk.get("meta")
        if not isinstance(meta, dict) or "actor" not in meta:
            raise ValueError("chunk has no meta['actor']")
        a = int(meta["actor"])
        if not 0 <= a < self.num_actors:
            raise ValueError(f"chunk from actor {a}, but the pool has {self.num_actors} actors")
        frames, env, seg = chunk["frames"], chunk["env"], chunk["segments"]
        m = len(env)
        if frames.dtype != np.uint8 or frames.shape != (m,) + self.frame_shape:
            raise ValueError(f"chunk frames must be uint8 {(m,) + self.frame_shape}, got {frames.dtype} {frames.shape}")
        for key in ("action", "reward", "terminated", "truncated") + (("priority",) if self.prioritized else ()):
            if key not in chunk or chunk[key].shape != (m,):
                raise ValueError(f"chunk {key!r} must have shape ({m},)")
        if m and (env.min() < 0 or env.max() >= self.envs_per_actor):
            raise ValueError(f"chunk env index out of range 0..{self.envs_per_actor - 1}")
        if seg.ndim != 2 or seg.shape[1] != 3:
            raise ValueError("chunk segments must have shape (S, 3)")
        if len(seg) and (seg[0, 0] != 0 or seg[-1, 1] != m or np.any(seg[1:, 0] != seg[:-1, 1])
                         or np.any(seg[:, 1] <= seg[:, 0])):
            raise ValueError("chunk segments must tile its rows in order, none empty")
        if not len(seg) and m:
            raise ValueError("chunk has rows but no segments")
        seg_of_row = np.repeat(np.arange(len(seg)), seg[:, 1] - seg[:, 0]) if len(seg) else np.zeros(0, np.int64)
        if np.unique(seg_of_row * self.envs_per_actor + env).size != m:
            raise ValueError("an env appears twice in one segment of the chunk")
        if self.prioritized:
            p = chunk["priority"][~np.repeat(seg[:, 2].astype(bool), seg[:, 1] - seg[:, 0])] if m else chunk["priority"]
            if p.size and not (np.all(np.isfinite(p)) and p.min() >= 0):
                raise ValueError("chunk priorities must be finite and >= 0")
        base = a * self.envs_per_actor
        active = self.active[base:base + self.envs_per_actor].copy()
        done = chunk["terminated"] | chunk["truncated"]
        for b, e, is_start in seg.tolist():
            ids = env[b:e]
            if is_start:
                active[ids] = True
            else:
                if not active[ids].all():
                    bad = int(ids[~active[ids]][0])
                    raise ValueError(f"chunk of actor {a} steps env {bad} (stream {base + bad}) without an "
                                     f"active episode")
                active[ids[done[b:e]]] = False
        return active

    def write(self, chunk: Chunk) -> int:
        """Validate, then write the whole chunk; returns the number of transitions added."""
        active_after = self.check(chunk)
        a = int(chunk["meta"]["actor"])
        base = a * self.envs_per_actor
        rb = self.replay
        frames, streams = chunk["frames"], chunk["env"].astype(np.int64) + base
        act, rew, term, trunc = chunk["action"], chunk["reward"], chunk["terminated"], chunk["truncated"]
        ids: List[np.ndarray] = []
        prio_rows: List[slice] = []
        steps = 0
        for b, e, is_start in chunk["segments"].tolist():
            if is_start:
                rb.start_episodes(frames[b:e], streams[b:e])
                continue
            first = rb.writes
            rb.add_batch(act[b:e], rew[b:e], frames[b:e], term[b:e], trunc[b:e], streams[b:e])
            steps += e - b
            if self.prioritized:
                if rb.writes != first + (e - b):
                    raise RuntimeError("another thread wrote to the replay during a chunk; the ingestor must be "
                                       "its only writer")
                ids.append(np.arange(first, first + (e - b), dtype=np.int64))
                prio_rows.append(slice(b, e))
        self.active[base:base + self.envs_per_actor] = active_after
        if ids:
            prio = np.concatenate([chunk["priority"][s] for s in prio_rows]).astype(np.float64)
            rb.update_priorities(np.concatenate(ids), prio)
        return steps
