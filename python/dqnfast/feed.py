"""The one place where raw env steps become replay writes.

A step of N env streams, as an env returned it, becomes at most two writes into a *sink*: anything
with the replay's write API, ``start_episodes(frames, envs)`` and ``add_batch(actions, rewards,
next_frames, terminated, truncated, envs)``: a :class:`dqnfast.ReplayBuffer`, a prioritized one, or
the Ray actors' :class:`dqnfast.distributed.ChunkBuilder`. How depends on how the env resets an
ended episode (:func:`autoreset_mode`):

- ``"same_step"`` (gymnasium's SAME_STEP, and :class:`dqnfast.vector_env.ProcessVectorEnv`): every
  env steps; an ended episode's transition ends at its real last frame (``info["final_obs"]``), and
  the ``obs`` returned for that env already starts its next episode;
- ``"next_step"`` (gymnasium's default NEXT_STEP): the step after an episode's end is only that
  env's reset (its action is ignored): it starts the next episode and is no transition;
- ``None``, a single env: the caller resets an ended env itself and hands the first frame of the
  next episode to :meth:`StepFeed.start`.

Numpy only: the trainer's actor, the Ray actors, the vector-env helpers and the benchmarks share it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

SAME_STEP, NEXT_STEP = "same_step", "next_step"


def autoreset_name(mode: Any) -> Optional[str]:
    """``"same_step"`` or ``"next_step"`` for any spelling of one: gymnasium's ``AutoresetMode`` or its
    value (``"SameStep"``), or these names in any case, with or without "_"; None for anything else."""
    key = str(getattr(mode, "value", mode)).replace("_", "").lower()
    return {"samestep": SAME_STEP, "nextstep": NEXT_STEP}.get(key)


def autoreset_mode(env: Any) -> Optional[str]:
    """``"same_step"`` or ``"next_step"`` for a gymnasium vector env (its ``metadata["autoreset_mode"]``;
    NEXT_STEP when absent, gymnasium's default), None for a single env. A vector env that does not
    reset ended envs itself (DISABLED) is a ValueError."""
    if not hasattr(env, "single_action_space"):
        return None
    mode = getattr(env, "metadata", {}).get("autoreset_mode", "NextStep")
    name = autoreset_name(mode)
    if name is None:
        raise ValueError(f"the vector env must reset ended envs itself (SAME_STEP or NEXT_STEP autoreset), "
                         f"got {mode!r}")
    return name


@dataclass
class StepRows:
    """One env step as replay rows: the transitions of the envs in ``stepping`` (``next_frames``,
    ``terminated``, ``truncated``, one row each, in env order), then the episodes that begin at
    ``starts`` with ``start_frames``. ``ended`` are the envs whose episode ended at this step (for a
    single env, the caller must reset it)."""

    stepping: np.ndarray
    next_frames: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    starts: np.ndarray
    start_frames: np.ndarray
    ended: np.ndarray


class StepFeed:
    """Feeds the steps of ``num_envs`` env streams of one autoreset ``mode`` (see the module doc).

    ``rows(...)`` says what a step writes, without writing (the Ray actor updates its acting states
    and computes priorities from them first); ``write(sink, rows, actions, rewards)`` writes it;
    ``step(...)`` does both."""

    def __init__(self, num_envs: int, mode: Optional[str]) -> None:
        if mode not in (SAME_STEP, NEXT_STEP, None):
            raise ValueError(f"mode must be {SAME_STEP!r}, {NEXT_STEP!r} or None, got {mode!r}")
        if mode is None and num_envs != 1:
            raise ValueError("mode None is a single env: num_envs must be 1")
        self.num_envs, self.mode = int(num_envs), mode
        self.pending_reset = np.zeros(self.num_envs, bool)  # NEXT_STEP: these envs' next step is their reset
        self._all = np.arange(self.num_envs)

    def start(self, sink: Any, frames: Any, envs: Optional[np.ndarray] = None) -> None:
        """Episodes begin: ``frames[i]`` is the first frame of env ``envs[i]`` (all envs when None),
        after a reset the caller made."""
        envs = self._all if envs is None else np.asarray(envs, np.int64)
        sink.start_episodes(np.ascontiguousarray(frames), envs=envs)
        self.pending_reset[envs] = False

    def rows(self, obs: Any, terminated: Any, truncated: Any, info: Any) -> StepRows:
        obs = np.asarray(obs)
        terminated = np.asarray(terminated, bool).reshape(self.num_envs)
        truncated = np.asarray(truncated, bool).reshape(self.num_envs)
        done = terminated | truncated
        empty = self._all[:0]
        if self.mode == NEXT_STEP:
            resetting = self.pending_reset.copy()
            stepping = self._all[~resetting]
            ended = self._all[done & ~resetting]
            return StepRows(stepping, obs[stepping], terminated[stepping], truncated[stepping],
                            self._all[resetting], obs[resetting], ended)
        ended = self._all[done]
        next_frames = obs
        if ended.size and self.mode == SAME_STEP:  # the transition ends at the real last frame
            next_frames = np.array(obs)
            final_obs = info["final_obs"]  # gymnasium's object array (None elsewhere), or one row per env
            for i in ended:
                next_frames[i] = final_obs[i]
        starts = ended if self.mode == SAME_STEP else empty
        return StepRows(self._all, next_frames, terminated, truncated, starts, obs[starts], ended)

    def write(self, sink: Any, rows: StepRows, actions: Any, rewards: Any, *, streams: Optional[np.ndarray] = None,
              **extra: Any) -> None:
        """``actions`` and ``rewards`` of every env (rows of envs that only reset are dropped);
        ``streams[i]`` is the sink's stream of env i (env i itself when None: a ``recv`` group writes
        into its envs' streams); ``extra`` (a ChunkBuilder's ``priorities``, one per stepping env)
        goes to ``add_batch``."""
        actions, rewards = np.asarray(actions), np.asarray(rewards, np.float32)
        if rows.stepping.size:
            every_env = rows.stepping.size == self.num_envs  # add_batch may then take envs=None
            if not every_env:
                actions, rewards = actions[rows.stepping], rewards[rows.stepping]
            envs = None if every_env and streams is None else \
                (rows.stepping if streams is None else np.asarray(streams)[rows.stepping])
            sink.add_batch(actions, rewards, rows.next_frames, rows.terminated, rows.truncated, envs=envs, **extra)
        if rows.starts.size:
            starts = rows.starts if streams is None else np.asarray(streams)[rows.starts]
            sink.start_episodes(np.ascontiguousarray(rows.start_frames), envs=starts)
        if self.mode == NEXT_STEP:
            self.pending_reset[:] = False
            self.pending_reset[rows.ended] = True

    def step(self, sink: Any, actions: Any, obs: Any, rewards: Any, terminated: Any, truncated: Any,
             info: Any) -> StepRows:
        """``rows`` then ``write``: one step of every env, as the env returned it."""
        rows = self.rows(obs, terminated, truncated, info)
        self.write(sink, rows, actions, rewards)
        return rows
