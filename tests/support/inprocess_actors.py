"""`dqnfast train --ray` with its actors in the test's own process: the Ray transport swapped out, the rest kept.

:func:`patch_ray_loop` makes ``dqnfast.train.ray_loop`` build the pool the config describes (the real
``actor_pool(trainer)``: its epsilons, seed, network, frame shape) but start its :class:`EnvActor`
objects here instead of as Ray actors, and feed the replay with :class:`InProcessIngestor`, which
keeps the real Ingestor's bookkeeping (``_ingest``: gaps, resyncs, the whole-chunk writes) and only
replaces ``ray.wait``/``ray.get`` by direct calls. The trainer, its CLI, checkpoints, resume, logs
and learner loop are the real ones.

What a test reads afterwards is recorded independently of the trainer's counters:

- ``Record.env_steps``: agent steps the envs actually took (each env ``step`` call counts its envs);
- ``Record.games``: every game the envs finished: its actor, env, return and length;
- ``Record.publications``: every weights broadcast, a copy of what was published beside copies of
  the learner's online and target networks at that moment.

The envs are :class:`CountingPixelVectorEnv` (frames that identify themselves), sized to the config's
frame; every one of their steps reaches the replay (no chunk is in flight when the ingest stops).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest

from dqnfast.distributed import ActorPool, EnvActor, Ingestor
from dqnfast.distributed.fake_env import CountingPixelVectorEnv


@dataclass
class Record:
    env_steps: int = 0
    games: List[tuple] = field(default_factory=list)  # (actor, env, return, length) of each finished game
    publications: List[Dict[str, Dict[str, np.ndarray]]] = field(default_factory=list)


def _state(module) -> Dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


class _RecordingEnv(CountingPixelVectorEnv):
    """Counts its steps, and reports each finished game's return and length in ``info`` as
    gymnasium's RecordEpisodeStatistics does (``episode`` with its ``_episode`` mask), keeping its own
    record of them in ``Record.games``."""

    def __init__(self, record: Record, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record
        self.actor = kwargs["actor"]
        self.ret = np.zeros(self.num_envs)
        self.length = np.zeros(self.num_envs, np.int64)

    def reset(self, **kwargs: Any):
        self.ret[:], self.length[:] = 0.0, 0
        return super().reset(**kwargs)

    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        self.record.env_steps += self.num_envs
        self.ret += rewards
        self.length += 1
        ended = terminated | truncated
        if ended.any():
            info["episode"] = {"r": self.ret.copy(), "l": self.length.copy(), "t": np.zeros(self.num_envs)}
            info["_episode"] = ended.copy()
            for e in np.flatnonzero(ended):
                self.record.games.append((self.actor, int(e), float(self.ret[e]), int(self.length[e])))
            self.ret[ended], self.length[ended] = 0.0, 0
        return obs, rewards, terminated, truncated, info


class _RecordingEnvFn:
    def __init__(self, record: Record, frame_shape) -> None:
        self.record, self.frame_shape = record, tuple(frame_shape)

    def __call__(self, actor_index: int, num_envs: int, seed: int) -> CountingPixelVectorEnv:
        return _RecordingEnv(self.record, num_envs, actor=actor_index, seed=seed, frame_shape=self.frame_shape,
                             min_len=5, max_len=40)


class InProcessPool(ActorPool):
    """An ActorPool whose actors are EnvActor objects in this process, built as ``start()`` builds them."""

    record: Record
    learner: Any

    def start(self) -> "InProcessPool":
        self.actors = [EnvActor(i, self.envs_per_actor, self.env_fn, self.epsilons[i], net_fn=self.net_fn,
                                seed=self.seed, rounds_per_chunk=self.rounds_per_chunk, frame_shape=self.frame_shape,
                                stack=self.stack, pad=self.pad, prioritized=self.prioritized, gamma=self.gamma)
                       for i in range(self.num_actors)]
        return self

    def publish_weights(self, state_dict: Dict[str, Any]) -> int:
        published = {k: v.detach().cpu().numpy().copy() for k, v in state_dict.items()}  # as ray.put copies
        self.record.publications.append({"published": published, "online": _state(self.learner.q_network),
                                         "target": _state(self.learner.target_network)})
        version = self._weights[0] + 1
        self._weights = (version, published)
        return version

    def stop(self) -> None:
        self.actors = []


class InProcessIngestor(Ingestor):
    """The Ingestor, its requests answered by direct calls on the pool's in-process actors."""

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for a, actor in enumerate(self.pool.actors):
                    version, weights = self.pool.weights()
                    send = version > self._sent_version[a]
                    if send:
                        self._sent_version[a] = version
                    chunk = actor.collect(weights if send else None, version if send else -1, self._resync[a])
                    self._ingest(a, chunk)
        except BaseException as e:  # surfaced by check()/stop(), as the real thread does
            self.error = e


class LateChunkIngestor(InProcessIngestor):
    """Another chunk is always written just before a pause takes hold (as one can be with Ray, where
    chunks arrive while the learner is between reading the ingest's count and pausing it): the
    learner loop's count is then always behind the replay it pauses."""

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        before = self.stats().transitions
        if not self._stop.is_set():
            t0 = time.monotonic()  # a deadline for a broken ingest only, not a timing assert
            while self.stats().transitions == before and self.running and time.monotonic() - t0 < 60:
                time.sleep(0.001)
        with super().paused():
            yield


@contextlib.contextmanager
def patch_ray_loop(record: Record, ingestor: type = InProcessIngestor, atari: bool = False) -> Iterator[Record]:
    """While inside, `dqnfast train --ray ...` in this process runs its actors here (see the module doc).
    ``atari``: the actors keep the pool's own env function (the config's Atari envs, built by
    make_atari_env, where tests/support/train_records.py records them) instead of counting envs."""
    pytest.importorskip("ray", reason='the trainer checks that Ray is installed (pip install "dqnfast[ray]")')
    from dqnfast.train import ray_loop

    real_actor_pool = ray_loop.actor_pool

    def actor_pool(trainer):
        pool = real_actor_pool(trainer)
        local = InProcessPool.__new__(InProcessPool)
        local.__dict__.update(vars(pool))
        if not atari:
            local.env_fn = _RecordingEnvFn(record, pool.frame_shape)
        local.record, local.learner = record, trainer.learner
        return local

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray_loop, "actor_pool", actor_pool)
        mp.setattr(ray_loop, "Ingestor", ingestor)
        yield record
