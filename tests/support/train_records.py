"""Recorders for trainer behaviour tests: what the envs really did, and what reached the replay.

The trainer's own counters and logs are what these tests check, so the reference must come from
elsewhere. Two recorders, installed with pytest's ``monkeypatch``, that serve all of the trainer's
loops: the sync loop, the async actor thread, env worker processes (forked: they inherit the
patch), and Ray actors (their processes are not forked from the test: call
``EnvRecorder.patch()`` in the actor before it builds its envs; the records are files, so they
reach the test from any process on this machine):

- :class:`EnvRecorder` puts two recording wrappers into every env stack that
  ``dqnfast.wrappers.make_atari_env`` builds: one right below ``RecordEpisodeStatistics`` (the
  *game*: raw frame-skipped rewards, game overs and time-limit truncations, the seeds real resets got)
  and one around the whole single env (the *agent* stream: exactly what the vector env or the
  actor was given, after episodic life, FIRE on reset and reward clipping). Both write, in call
  order, into one file per env (append-only pickles), so envs stepped in worker processes are
  recorded too; :meth:`EnvRecorder.logs` reads them back as :class:`EnvLog` s.
- :class:`SpyReplay` is a ``ReplayBuffer`` that records every frame written (episode starts and
  transitions, per env stream, with the write number the replay's ``Batch.index`` uses) and every
  batch sampled; :func:`install_replay_spy` makes the trainer build (and load) it.

Nothing here changes what an env or the replay does: the wrappers return what they are given.
"""
from __future__ import annotations

import itertools
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import gymnasium as gym
import numpy as np

from dqnfast import wrappers
from dqnfast.replay import ReplayBuffer

_uids = itertools.count()
# The real classes, taken before any test patches them in: a worker process that unpickles a
# recorder (by reference to this module) finds them here, not the patched names in dqnfast.wrappers.
_ORIGINAL = {"game": wrappers.AtariPreprocessing, "agent": wrappers._SeedFirstReset}


def _episode(info: Dict[str, Any]) -> Optional[Tuple[float, int]]:
    if "episode" not in info:
        return None
    ep = info["episode"]
    return float(np.asarray(ep["r"]).reshape(-1)[0]), int(np.asarray(ep["l"]).reshape(-1)[0])


class _Sink:
    """One env's record file: events appended as pickles, the file opened and closed for each (a
    worker process may be killed at close, and nothing is left open); an env that is never reset
    leaves no file. The name is unique across processes (pid) and envs."""

    def __init__(self, directory: str, phase: str) -> None:
        self.path = os.path.join(directory, f"{phase}-{os.getpid()}-{next(_uids)}.pkl")

    def write(self, event: tuple) -> None:
        with open(self.path, "ab") as f:
            pickle.dump(event, f)


class _Recording(gym.Wrapper):
    """Passes everything through and writes (level, "reset", seed, obs, episode) and
    (level, "step", action, reward, terminated, truncated, obs, episode) events to its sink."""

    def __init__(self, env: gym.Env, sink: _Sink, level: str) -> None:
        super().__init__(env)
        self.sink, self.level = sink, level

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.sink.write((self.level, "reset", seed, np.array(obs), _episode(info)))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.sink.write((self.level, "step", int(action), float(reward), bool(terminated), bool(truncated),
                         np.array(obs), _episode(info)))
        return obs, reward, terminated, truncated, info


class _GameLevel:
    """Stands in for ``wrappers.AtariPreprocessing`` in make_atari_env: the real one, then (if
    ``max_episode_steps``) gymnasium's TimeLimit, where make_atari_env would put one, recorded."""

    def __init__(self, directory: str, phase: str, max_episode_steps: Optional[int]) -> None:
        self.directory, self.phase, self.max_episode_steps = directory, phase, max_episode_steps

    def __call__(self, env, *args, **kwargs):
        game = _ORIGINAL["game"](env, *args, **kwargs)
        if self.max_episode_steps is not None:
            game = gym.wrappers.TimeLimit(game, self.max_episode_steps)
        return _Recording(game, _Sink(self.directory, self.phase), "game")


class _AgentLevel:
    """Stands in for ``wrappers._SeedFirstReset`` (the outermost wrapper of each single env): the real
    one, recorded into the same sink as the game below it."""

    def __call__(self, env, *args, **kwargs):
        inner = env
        while not isinstance(inner, _Recording):
            inner = inner.env  # the game-level recorder is somewhere below
        return _Recording(_ORIGINAL["agent"](env, *args, **kwargs), inner.sink, "agent")


@dataclass
class AgentStep:
    """One step of the agent stream of an env: (prev_obs, action) -> (reward, obs, flags)."""
    prev_obs: np.ndarray
    action: int
    reward: float  # what the env gave the agent (clipped, when clipping is on)
    terminated: bool
    truncated: bool
    obs: np.ndarray
    raw_reward: float  # the game's own reward for this step (below all reward wrappers)
    vector_step: int  # 1-based vector step of the run in which it happened


@dataclass
class Game:
    """A real game that ended (game over or time limit): its return and length as the game's
    own steps give them (FIRE and no-op steps made by wrappers at a reset included)."""
    ret: float
    length: int
    vector_step: int  # the vector step during which it ended


@dataclass
class EnvLog:
    phase: str
    events: List[tuple]
    steps: List[AgentStep] = field(default_factory=list)
    games: List[Game] = field(default_factory=list)
    reset_seeds: List[int] = field(default_factory=list)  # seeds real (game-level) resets were given
    first_seed: Optional[int] = None  # the seed of the agent stream's first reset
    vector_steps: int = 0

    def parse(self, same_step: bool) -> "EnvLog":
        """``same_step``: the env is reset inside the step that ends an episode (a single env, or a
        SAME_STEP vector env); else (gymnasium's NEXT_STEP) the reset is a vector step of its own."""
        vstep, prev, raw, started = 0, None, 0.0, False
        ret, length, ended = 0.0, 0, []
        for ev in self.events:
            level, kind = ev[0], ev[1]
            if level == "game":
                if kind == "reset":
                    if ev[2] is not None:
                        self.reset_seeds.append(ev[2])
                    ret, length = 0.0, 0
                else:
                    ret += ev[3]
                    length += 1
                    raw += ev[3]
                    if ev[4] or ev[5]:
                        ended.append((ret, length))
                continue
            if kind == "reset":
                if not started:
                    self.first_seed, started = ev[2], True
                elif not same_step:
                    vstep += 1
            else:
                vstep += 1
                self.steps.append(AgentStep(prev, ev[2], ev[3], ev[4], ev[5], ev[6], raw, vstep))
            self.games += [Game(r, n, vstep) for r, n in ended]
            ended, raw, prev = [], 0.0, ev[-2] if kind == "step" else ev[3]
        self.vector_steps = vstep
        return self


class EnvRecorder:
    """Records every env make_atari_env builds while installed (``install(monkeypatch)``).

    ``max_episode_steps``: those envs also truncate each game after that many game steps
    (gymnasium's TimeLimit, just above AtariPreprocessing as make_atari_env's own option puts it),
    so that runs of a few hundred steps see many games end, by time limit among others."""

    def __init__(self, directory, max_episode_steps: Optional[int] = None) -> None:
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.phase = "train"
        self.max_episode_steps = max_episode_steps

    def _patches(self) -> Dict[str, Any]:
        self._game = _GameLevel(self.directory, self.phase, self.max_episode_steps)
        return {"AtariPreprocessing": self._game, "_SeedFirstReset": _AgentLevel()}

    def install(self, monkeypatch) -> "EnvRecorder":
        for name, value in self._patches().items():
            monkeypatch.setattr(wrappers, name, value)
        return self

    def patch(self):
        """``install`` without pytest, for a process the test does not patch itself (a Ray actor:
        call it there before the actor builds its envs; the records land in the same folder).
        Returns the function that undoes it."""
        saved = {name: getattr(wrappers, name) for name in ("AtariPreprocessing", "_SeedFirstReset")}
        for name, value in self._patches().items():
            setattr(wrappers, name, value)
        return lambda: [setattr(wrappers, name, value) for name, value in saved.items()]

    def set_phase(self, phase: str) -> None:
        """Envs made from now on are logged under ``phase`` (e.g. "eval", or "resumed")."""
        self.phase = self._game.phase = phase

    def watch_evaluation(self, monkeypatch, module) -> None:
        """Envs made inside ``module.evaluate_learner`` (the trainer's final evaluation) are "eval"."""
        evaluate = module.evaluate_learner

        def recorded(*args, **kwargs):
            before = self.phase
            self.set_phase("eval")
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.set_phase(before)

        monkeypatch.setattr(module, "evaluate_learner", recorded)

    def logs(self, phase: str = "train", *, same_step: bool = True) -> List[EnvLog]:
        """The envs of ``phase`` that were reset at least once, in order of their first seed."""
        out = []
        for path in sorted(Path(self.directory).glob(f"{phase}-*.pkl")):
            events = []
            with open(path, "rb") as f:
                while True:
                    try:
                        events.append(pickle.load(f))
                    except EOFError:
                        break
            if any(e[0] == "agent" for e in events):
                out.append(EnvLog(phase, events).parse(same_step))
        return sorted(out, key=lambda log: (log.first_seed is None, log.first_seed or 0))


# -- the replay ----------------------------------------------------------------------------------------
@dataclass
class Written:
    """One frame written to an env stream: an episode start (action None) or a transition's next frame."""
    env: int
    write: int  # the replay's write number of the frame (a transition's Batch.index)
    frame: np.ndarray
    action: Optional[int] = None
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    prev: Optional[np.ndarray] = None  # a transition's previous frame in its stream


class SpyReplay(ReplayBuffer):
    """A ReplayBuffer that records what is written to it and what is sampled from it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.streams: Dict[int, List[Written]] = {}
        self.by_write: Dict[int, Written] = {}
        self.samples: List[Dict[str, np.ndarray]] = []
        self.sequence_samples = 0

    def _put(self, w: Written) -> None:
        stream = self.streams.setdefault(w.env, [])
        if w.action is not None and stream:
            w.prev = stream[-1].frame
        stream.append(w)
        self.by_write[w.write] = w

    def start_episode(self, frame, env=0):
        w = self.writes
        out = super().start_episode(frame, env)
        self._put(Written(int(env), w, np.array(frame)))
        return out

    def start_episodes(self, frames, envs=None):
        w = self.writes
        super().start_episodes(frames, envs)
        envs = range(len(frames)) if envs is None else np.asarray(envs).tolist()
        for k, env in enumerate(envs):
            self._put(Written(int(env), w + k, np.array(frames[k])))

    def add(self, action, reward, next_frame, terminated, truncated=False, env=0):
        w = self.writes
        out = super().add(action, reward, next_frame, terminated, truncated, env)
        self._put(Written(int(env), w, np.array(next_frame), int(action), float(np.float32(reward)),
                          bool(terminated), bool(truncated)))
        return out

    def add_batch(self, actions, rewards, next_frames, terminated, truncated=None, envs=None):
        w = self.writes
        super().add_batch(actions, rewards, next_frames, terminated, truncated, envs)
        n = len(actions)
        envs = range(n) if envs is None else np.asarray(envs).tolist()
        trunc = np.zeros(n, bool) if truncated is None else np.asarray(truncated, bool)
        for k, env in enumerate(envs):
            self._put(Written(int(env), w + k, np.array(next_frames[k]), int(actions[k]),
                              float(np.float32(rewards[k])), bool(terminated[k]), bool(trunc[k])))

    def sample(self, batch_size, out=None, **kw):
        batch = super().sample(batch_size, out, **kw)
        self.samples.append({k: np.array(getattr(batch, k)) for k in
                             ("index", "action", "reward", "discount", "terminated", "truncated")})
        return batch

    def sample_sequences(self, batch_size, length, out=None):
        self.sequence_samples += 1
        return super().sample_sequences(batch_size, length, out)

    def transitions(self, env: int) -> List[Written]:
        return [w for w in self.streams.get(env, []) if w.action is not None]


def install_replay_spy(monkeypatch) -> None:
    """The trainer builds its replay, and loads replay snapshots, as :class:`SpyReplay` s."""
    from dqnfast.train import checkpoints, trainer
    monkeypatch.setattr(trainer, "ReplayBuffer", SpyReplay)
    monkeypatch.setattr(checkpoints, "ReplayBuffer", SpyReplay)
