"""The learner loop: replay batches into one reused batch, gradient steps at the configured ratio."""
from __future__ import annotations

from typing import Dict

from ..batch import empty_sequence_batch
from ..config import TrainConfig
from ..learner import DQNLearner
from ..replay import ReplayBuffer
from .schedule import updates_due


class LearnerLoop:
    """Owns sampling and updates: ``learn_once`` samples a batch (sequences for DRQN) and takes one
    gradient step; ``due(step)`` says whether the learner is behind the one-update-per-
    `train_frequency`-agent-steps ratio after ``step`` agent steps."""

    def __init__(self, cfg: TrainConfig, learner: DQNLearner, rb: ReplayBuffer) -> None:
        self.cfg, self.learner, self.rb = cfg, learner, rb
        shape = (cfg.frame_size, cfg.frame_size)
        if cfg.recurrent:  # DRQN learns from sequences of single frames
            self.batch = empty_sequence_batch(cfg.batch_size, cfg.sequence_length, shape)
        else:  # one-step targets: obs and next_obs share their frames (stack + 1 per row, not 2 * stack)
            self.batch = learner.empty_batch(cfg.batch_size, shared_frames=rb.n_step == 1)
        self.last_metrics: Dict[str, float] = {}

    def due(self, step: int) -> bool:
        return self.learner.updates < updates_due(self.cfg, step) and len(self.rb) > 0

    def learn_once(self) -> Dict[str, float]:
        cfg = self.cfg
        if cfg.recurrent:
            batch = self.rb.sample_sequences(cfg.batch_size, cfg.sequence_length, out=self.batch)
        else:
            batch = self.rb.sample(cfg.batch_size, out=self.batch)
        self.last_metrics = self.learner.update(batch)
        return self.last_metrics
