"""A tiny pixel game for learning tests: Catch, 36x36 uint8 frames, three actions.

A ball falls from a random column of the top row, one row per step; the agent moves a paddle along
the bottom row (0: stay, 1: left, 2: right). When the ball reaches the bottom row the episode ends
with reward +1 if the paddle is under it and -1 otherwise. Episodes last ``rows - 1`` steps.

Random play scores about -0.5 per episode; perfect play scores +1 (the paddle can always reach the
ball in time). The game is small enough for the Nature CNN at its smallest input size (36x36) to
learn it in seconds on a CPU. Gymnasium-style API (reset/step with the same return values), without
depending on gymnasium.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


class CatchEnv:
    num_actions = 3

    def __init__(self, cells: int = 6, cell_px: int = 6, max_steps: Optional[int] = None) -> None:
        self.cells, self.cell_px = cells, cell_px
        self.frame_shape = (cells * cell_px, cells * cell_px)
        self.max_steps = max_steps  # optional time limit (truncation) for tests of truncated episodes
        self.rng = np.random.default_rng()
        self.ball_row = self.ball_col = self.paddle = self.t = 0

    def _frame(self) -> np.ndarray:
        f = np.zeros(self.frame_shape, np.uint8)
        p = self.cell_px
        f[self.ball_row * p:(self.ball_row + 1) * p, self.ball_col * p:(self.ball_col + 1) * p] = 255
        f[(self.cells - 1) * p:, self.paddle * p:(self.paddle + 1) * p] = 128
        return f

    def reset(self, seed: Optional[int] = None) -> Tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.ball_row, self.t = 0, 0
        self.ball_col = int(self.rng.integers(self.cells))
        self.paddle = int(self.rng.integers(self.cells))
        return self._frame(), {}

    def step(self, action: int) -> Tuple[np.ndarray, float, bool, bool, dict]:
        if action not in (0, 1, 2):
            raise ValueError(f"action must be 0, 1 or 2, got {action!r}")
        self.paddle = int(np.clip(self.paddle + (0, -1, 1)[action], 0, self.cells - 1))
        self.ball_row += 1
        self.t += 1
        terminated = self.ball_row == self.cells - 1
        reward = (1.0 if self.paddle == self.ball_col else -1.0) if terminated else 0.0
        truncated = not terminated and self.max_steps is not None and self.t >= self.max_steps
        return self._frame(), reward, terminated, truncated, {}
