"""When the trainer explores and when it learns, as functions of the agent step."""
from __future__ import annotations

from ..config import TrainConfig
from ..learner import linear_schedule


def epsilon_at(cfg: TrainConfig, step: int) -> float:
    """1 during the random warm-up (`learning_starts` steps), then linear from start_epsilon to
    end_epsilon over `exploration_steps` steps counted from 0, then constant."""
    if step < cfg.learning_starts:
        return 1.0
    return linear_schedule(cfg.start_epsilon, cfg.end_epsilon, cfg.exploration_steps, step)


def updates_due(cfg: TrainConfig, step: int) -> int:
    """Gradient steps that should have been taken after ``step`` agent steps (one per train_frequency)."""
    return max(0, (step - cfg.learning_starts) // cfg.train_frequency)
