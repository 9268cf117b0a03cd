"""A tiny gymnasium pixel env whose frames identify themselves (tests/support/frames.py), for adapter tests."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from support.frames import make_frame
from support.streams import reward_of


class PixelEnv(gym.Env):
    """Frame = make_frame(env_id, episode, step) of shape ``frame_shape`` (e.g. (H, W, 1) as SB3's
    Atari wrappers give). Episodes end by termination (probability ``p_terminate`` per step) or by
    truncation after ``max_steps`` steps, so both kinds of episode end occur."""

    metadata = {"render_modes": []}

    def __init__(self, env_id: int, frame_shape=(36, 36, 1), max_steps: int = 12, p_terminate: float = 0.08,
                 seed: int = 0) -> None:
        self.env_id, self.frame_shape, self.max_steps, self.p_terminate = env_id, tuple(frame_shape), max_steps, p_terminate
        self.observation_space = spaces.Box(0, 255, self.frame_shape, np.uint8)
        self.action_space = spaces.Discrete(3)
        self.episode, self.step_count = -1, 0
        self._rng = np.random.default_rng(seed)

    def _frame(self) -> np.ndarray:
        return make_frame(self.env_id, self.episode, self.step_count, self.frame_shape)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.step_count = 0
        return self._frame(), {}

    def step(self, action):
        self.step_count += 1
        terminated = bool(self._rng.random() < self.p_terminate)
        truncated = not terminated and self.step_count >= self.max_steps
        return self._frame(), reward_of(self.step_count) + int(action), terminated, truncated, {}
