"""Random multi-env episode streams fed identically to several buffers (native and reference)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np

from support.frames import make_frame


def encode_action(env: int, episode: int, step: int) -> int:
    """The action stored with the step that produced frame (env, episode, step): checkable later."""
    return (env << 40) | ((episode % 256) << 20) | step


def reward_of(step: int) -> float:
    return (step % 97) * 0.5 - 3.0  # exact in float32


@dataclass
class StreamDriver:
    """Plays random episodes on `num_envs` streams: short episodes, terminations, truncations and
    abandoned episodes (a new start_episode mid-episode), in a random interleaving of streams."""

    num_envs: int
    frame_shape: tuple
    seed: int = 0
    p_terminate: float = 0.08
    p_truncate: float = 0.05
    p_restart: float = 0.02
    episode: List[int] = field(default_factory=list)
    step: List[int] = field(default_factory=list)
    active: List[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.episode = [-1] * self.num_envs
        self.step = [0] * self.num_envs
        self.active = [False] * self.num_envs

    def frame(self, env: int) -> np.ndarray:
        return make_frame(env, self.episode[env], self.step[env], self.frame_shape)

    def one(self, buffers, env: int) -> None:
        """One write for `env` (an episode start if needed, else a step) into every buffer."""
        if not self.active[env] or self.rng.random() < self.p_restart:
            self.episode[env] += 1
            self.step[env] = 0
            self.active[env] = True
            for b in buffers:
                b.start_episode(self.frame(env), env)
            return
        self.step[env] += 1
        u = self.rng.random()
        term, trunc = bool(u < self.p_terminate), bool(self.p_terminate <= u < self.p_terminate + self.p_truncate)
        a = encode_action(env, self.episode[env], self.step[env])
        for b in buffers:
            b.add(a, reward_of(self.step[env]), self.frame(env), term, trunc, env)
        if term or trunc:
            self.active[env] = False

    def run(self, buffers, n: int) -> None:
        for _ in range(n):
            self.one(buffers, int(self.rng.integers(self.num_envs)))

    def run_vectorized(self, buffers, n_rounds: int) -> None:
        """Rounds of: start_episodes for the envs that need one, then add_batch for all others."""
        for _ in range(n_rounds):
            need = [e for e in range(self.num_envs) if not self.active[e]]
            if need:
                for e in need:
                    self.episode[e] += 1
                    self.step[e] = 0
                    self.active[e] = True
                frames = np.stack([self.frame(e) for e in need])
                for b in buffers:
                    b.start_episodes(frames, np.array(need))
            go = [e for e in range(self.num_envs) if e not in need]
            if not go:
                continue
            acts, rews, terms, truncs = [], [], [], []
            for e in go:
                self.step[e] += 1
                u = self.rng.random()
                terms.append(bool(u < self.p_terminate))
                truncs.append(bool(self.p_terminate <= u < self.p_terminate + self.p_truncate))
                acts.append(encode_action(e, self.episode[e], self.step[e]))
                rews.append(reward_of(self.step[e]))
            frames = np.stack([self.frame(e) for e in go])
            for b in buffers:
                b.add_batch(np.array(acts), np.array(rews, np.float32), frames, np.array(terms), np.array(truncs),
                            np.array(go))
            for e, t, tr in zip(go, terms, truncs):
                if t or tr:
                    self.active[e] = False
