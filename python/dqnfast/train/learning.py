"""The learner loop: replay batches into one reused batch, gradient steps at the configured ratio."""
from __future__ import annotations

import warnings
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..batch import empty_sequence_batch
from ..config import TrainConfig
from ..learner import DQNLearner
from ..replay import ReplayBuffer
from .schedule import updates_due


class LearnerLoop:
    """Owns sampling and updates: ``learn_once`` samples a batch (sequences for DRQN) and takes one
    gradient step; ``due(step)`` says whether the learner is behind the configured ratio of
    updates to agent steps (``replay_ratio``) after ``step`` agent steps."""

    def __init__(self, cfg: TrainConfig, learner: DQNLearner, rb: ReplayBuffer) -> None:
        self.cfg, self.learner, self.rb = cfg, learner, rb
        shape = (cfg.frame_size, cfg.frame_size)
        self.on_device = cfg.replay_device != "cpu"  # a DeviceReplayBuffer: batches are gathered on the GPU
        shared = getattr(rb, "buffer", rb).n_step == 1 and not self.on_device
        self.batch: Optional[object] = None
        if cfg.recurrent:  # DRQN learns from sequences of single frames
            self.batch = empty_sequence_batch(cfg.batch_size, cfg.sequence_length, shape)
        elif cfg.prioritized:
            self.batch = rb.empty_prioritized_batch(cfg.batch_size, shared_frames=shared)
        elif not self.on_device:  # one-step targets: obs and next_obs share their frames (stack + 1 per row)
            self.batch = learner.empty_batch(cfg.batch_size, shared_frames=shared)
        self.update_mode = update_mode(cfg, learner)
        if cfg.bf16 and learner.device.type == "cpu":
            warn_if_slow_bf16()
        self.update: Callable[..., Optional[Dict[str, float]]] = lambda batch, metrics=True: learner.update(batch)
        self.update_prioritized: Callable[..., Tuple[Optional[Dict[str, float]], np.ndarray]] = \
            lambda batch, metrics=True: learner.update_prioritized(batch)
        if self.update_mode != "eager":
            from ..fast_update import make_update
            self.update = make_update(learner, self.update_mode, batch_size=cfg.batch_size, shared_frames=shared,
                                      autocast_bf16=cfg.bf16)
            if cfg.prioritized:  # (update_mode() leaves only compile for prioritized replay)
                self.update_prioritized = self.update.prioritized
        self.last_metrics: Dict[str, float] = {}

    def beta(self) -> float:
        """Prioritized replay's importance-weight exponent for the next update: priority_beta at the
        first update, linear to 1 at the last one the run will take (updates_due at total_steps)."""
        last = max(updates_due(self.cfg, self.cfg.total_steps) - 1, 1)
        b0 = self.cfg.priority_beta
        return b0 + (1.0 - b0) * min(1.0, self.learner.updates / last)

    def due(self, step: int) -> bool:
        return self.learner.updates < updates_due(self.cfg, step) and len(self.rb) > 0

    def learn_once(self, metrics: bool = True) -> Optional[Dict[str, float]]:
        """One gradient step. ``metrics=False`` skips reading the loss back (a GPU sync); the
        metrics of the last step that read them stay in ``last_metrics``."""
        cfg = self.cfg
        if cfg.recurrent:
            batch = self.rb.sample_sequences(cfg.batch_size, cfg.sequence_length, out=self.batch)
            m = self.learner.update(batch)
        elif cfg.prioritized:
            batch = self.rb.sample(cfg.batch_size, self.beta(), out=self.batch, shift=cfg.shift)
            m, td_error = self.update_prioritized(batch)
            self.rb.update_priorities(batch.index, td_error + cfg.priority_eps)
        elif self.on_device:
            m = self.update(self.rb.sample(cfg.batch_size), metrics)
        else:  # (shift: DrQ's random shift, done by the replay as it copies the frames out)
            m = self.update(self.rb.sample(cfg.batch_size, out=self.batch, shift=cfg.shift), metrics)
        if cfg.reset_interval and self.learner.updates % cfg.reset_interval == 0:
            self.learner.reset_layers(cfg.reset_layers, cfg.reset_shrink)
        if m is not None:
            self.last_metrics = m
        return m


def warn_if_slow_bf16() -> None:
    """A RuntimeWarning where bf16 on this CPU is slower than float32 (no bfloat16 dot products): the
    run is still the one asked for, but the option meant to save time costs time. Silent where the
    CPU's flags cannot be read (not Linux)."""
    from ..fast_update import bf16_dot_products
    if bf16_dot_products() == "":
        warnings.warn("bf16 on a CPU without bfloat16 dot products (neither avx512_bf16 nor amx_bf16): the "
                      "update runs slower than in float32 here (5.3x slower measured with AVX2 kernels); "
                      "leave --bf16 off on this machine", RuntimeWarning, stacklevel=3)


def update_mode(cfg: TrainConfig, learner: DQNLearner) -> str:
    """The update mode a config asks for, with ``auto`` resolved: one CUDA graph on a GPU, eager on CPU
    (always eager for DRQN; auto is eager for prioritized replay, resets and the intensity
    augmentation, which the one CUDA graph cannot hold: importance weights and new priorities, the
    optimizer state a reset drops, factors drawn for each batch; compile takes all three).
    ValueError if ``bf16`` is on and that is the eager update (which has no bf16)."""
    if cfg.recurrent:
        mode = "eager"
    elif cfg.update_mode == "auto":
        graph_holds_it = not (cfg.prioritized or cfg.reset_interval or cfg.intensity)
        mode = "graph" if learner.device.type == "cuda" and graph_holds_it else "eager"
    else:
        mode = cfg.update_mode
    if cfg.bf16 and mode == "eager":  # say so rather than train in float32 while the config says bf16
        if cfg.recurrent:
            raise ValueError("bf16 needs update_mode compile or graph; DRQN's update is always eager: leave bf16 off")
        raise ValueError(f"bf16 needs update_mode compile or graph; update_mode {cfg.update_mode!r} is the eager "
                         f"update on {learner.device.type}: choose --update-mode compile, or leave bf16 off")
    return mode
