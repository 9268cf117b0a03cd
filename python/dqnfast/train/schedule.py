"""When the trainer explores and when it learns, as functions of the agent step."""
from __future__ import annotations

import math
from fractions import Fraction

from ..config import TrainConfig
from ..learner import linear_schedule


def epsilon_at(cfg: TrainConfig, step: int) -> float:
    """1 during the random warm-up (`learning_starts` steps), then linear from start_epsilon to
    end_epsilon over `exploration_steps` steps counted from 0 (or from `learning_starts` with
    `exploration_after_warmup`), then constant."""
    if step < cfg.learning_starts:
        return 1.0
    origin = cfg.learning_starts if cfg.exploration_after_warmup else 0
    return linear_schedule(cfg.start_epsilon, cfg.end_epsilon, cfg.exploration_steps, step - origin)


def replay_ratio(cfg: TrainConfig) -> Fraction:
    """Gradient steps per agent step, exactly: ``replay_ratio`` as the decimal it was written as
    (0.7 is 7/10, not the float just below it), or 1 / train_frequency."""
    if cfg.replay_ratio is None:
        return Fraction(1, cfg.train_frequency)
    return Fraction(repr(float(cfg.replay_ratio)))


def updates_due(cfg: TrainConfig, step: int) -> int:
    """Gradient steps that should have been taken after ``step`` agent steps:
    floor(replay_ratio * (step - learning_starts)), never negative."""
    return max(0, math.floor(replay_ratio(cfg) * (step - cfg.learning_starts)))


def steps_for_updates(cfg: TrainConfig, updates: int) -> int:
    """The fewest agent steps after which ``updates`` gradient steps are due."""
    return cfg.learning_starts + math.ceil(updates / replay_ratio(cfg))
