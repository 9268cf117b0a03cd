"""Independent records of an evaluation: a wrapper that keeps every action the game received (with the
lives before and after it and the frame it returned), a constant network that keeps every state it
was shown, and checks of the exploration rate played, from those records alone.

Used by tests/train/test_evaluation_protocol.py and tests/train/test_config_fields.py."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

import gymnasium as gym
import numpy as np
import torch

from dqnfast import checkpoint as ckpt
from dqnfast import evaluate
from dqnfast.recurrent import build_learner

FIRE, LEFT = 1, 3  # Breakout: NOOP, FIRE, RIGHT, LEFT


class Spy(gym.Wrapper):
    """Records each game as {"reset": first frame, "steps": [(action, lives before, lives after, frame)]}.

    Spies on several envs played side by side share one list: each appends its games as they start
    and steps into its own game."""

    def __init__(self, env: gym.Env, games: List[Dict[str, Any]]):
        super().__init__(env)
        self.games = games
        self.game: Dict[str, Any] = {}

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.game = {"reset": np.array(obs), "steps": []}
        self.games.append(self.game)
        return obs, info

    def step(self, action):
        ale = self.env.unwrapped.ale
        before = ale.lives()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game["steps"].append((int(action), before, ale.lives(), np.array(obs)))
        return obs, reward, terminated, truncated, info


class ConstantQ(torch.nn.Module):
    """Q-values that always rank LEFT first (so a greedy action is never FIRE); keeps every state it is shown."""

    def __init__(self):
        super().__init__()
        self.seen: List[np.ndarray] = []

    def forward(self, x):
        self.seen.extend(x.cpu().numpy().copy())
        q = torch.zeros(x.shape[0], 4)
        q[:, LEFT] = 1.0
        return q


def spy_on_evaluation_env(monkeypatch, games):
    make_env = evaluate.make_env

    def spied(*args, **kw):
        env = make_env(*args, **kw)
        return Spy(env, games) if kw.get("evaluation") else env

    monkeypatch.setattr(evaluate, "make_env", spied)


def lost_a_life(step) -> bool:
    _, before, after, _ = step
    return after < before


def relaunches(steps) -> List[int]:
    """The steps right after a lost life (where the protocol presses FIRE), from the record alone."""
    return [k + 1 for k in range(len(steps) - 1) if lost_a_life(steps[k])]


def non_greedy(games, greedy_of=lambda k: LEFT):
    """(agent-chosen steps, steps whose action was not the greedy one), FIRE relaunches left out."""
    chosen = off = 0
    k = 0  # index over all steps of all games (the network's forward passes)
    for game in games:
        fire_steps = set(relaunches(game["steps"]))
        for j, (action, _, _, _) in enumerate(game["steps"]):
            if j not in fire_steps:
                chosen += 1
                off += action != greedy_of(k)
            k += 1
    return chosen, off


def assert_epsilon_played(chosen, off, epsilon, min_steps):
    """A random action differs from the greedy one 3 times in 4: ``off`` ~ Binomial(chosen, 0.75 eps).
    At ``min_steps`` the bounds are over 3 standard deviations wide around the mean for ``epsilon``
    and exclude the means for epsilon / 5 and 2 epsilon; epsilon 0 gives exactly 0. (The games are
    seeded, so the outcome is fixed; the width only keeps the test valid across RNG reorderings.)"""
    assert chosen >= min_steps
    mean = 0.75 * epsilon * chosen
    assert mean / 3 <= off <= mean * 5 / 3, \
        f"{off} non-greedy actions in {chosen} steps: epsilon ~ {off / 0.75 / chosen:.3f}, not {epsilon}"


def constant_left_checkpoint(path, cfg):
    """A `dqnfast train` checkpoint whose network ranks LEFT first in every state (last layer: zero
    weights, bias one-hot)."""
    learner = build_learner(cfg, 4, device="cpu", seed=0)
    weights = learner.q_network.state_dict()
    weights["network.9.weight"].zero_()
    weights["network.9.bias"].copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))
    ckpt.save(path, {"format": ckpt.TRAIN_FORMAT, "config": dataclasses.asdict(cfg), "preset": "demo",
                     "counters": {"global_step": 0}, "learner": {"q_network": weights}, "rng": {}, "num_actions": 4})
