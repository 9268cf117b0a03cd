"""The Atari env a :class:`dqnfast.config.TrainConfig` describes, for training and for evaluation.

Shared by the trainer and `dqnfast evaluate`, so that evaluation needs nothing from the trainer.
"""
from __future__ import annotations

from .config import TrainConfig


def make_env(cfg: TrainConfig, *, num_envs: int, seed: int, evaluation: bool = False):
    """The env of ``cfg`` (a gymnasium vector env when ``num_envs > 1`` or with env workers; env i is
    seeded ``seed + i``). Training with ``cfg.env_workers`` steps the envs on that many worker
    processes (:class:`dqnfast.vector_env.ProcessVectorEnv`); evaluation steps its env in-process.

    ``evaluation=True`` gives the real game: all lives in one episode and unclipped rewards, so a
    score is the game's score; the preprocessing stays the one the agent was trained with."""
    from .wrappers import make_atari_env
    workers = None if evaluation or not cfg.env_workers else cfg.env_workers
    return make_atari_env(
        cfg.env_id, num_envs=num_envs, seed=seed, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
        screen_size=cfg.frame_size, crop=cfg.crop, interp=cfg.interp, gray=cfg.gray, fire_reset=cfg.fire_reset,
        episodic_life=False if evaluation else cfg.episodic_life,
        clip_rewards=False if evaluation else cfg.clip_rewards,
        workers=workers,
        infos="all" if workers is None else "episode",  # (the trainer reads only the episode statistics)
    )
