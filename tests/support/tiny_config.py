"""The tiny `demo` configurations the trainer tests run (36x36 frames, a 2,000-slot replay, no
evaluation, no progress bar, one torch thread), in a test's own tmp folder.

``tiny``: 100 steps of warm-up and batches of 8. ``quick``: 60 steps of warm-up, batches of 4 and no
replay snapshot, for the files that run many short trainings (config fields, sample efficiency)."""
from __future__ import annotations

from dqnfast.config import TrainConfig, preset

TINY = dict(frame_size=36, crop=None, buffer_size=2000, batch_size=8, learning_starts=100, train_frequency=4,
            target_update_interval=20, exploration_steps=200, eval_episodes=0, progress=False, torch_threads=1,
            noop_max=5, log_interval=10, n_step=1, tensorboard=False, checkpoint_interval=0)
QUICK = dict(batch_size=4, learning_starts=60, exploration_steps=100, log_interval=1000, save_replay=False)


def tiny(tmp_path, name: str = "run", **changes) -> TrainConfig:
    """The tiny config, its run folder ``tmp_path/name``; ``changes`` override any field."""
    return preset("demo", **{**TINY, "run_dir": str(tmp_path), "run_name": name, **changes})


def quick(tmp_path, name: str = "run", **changes) -> TrainConfig:
    """The tiny config with the shorter warm-up and smaller batches of :data:`QUICK`."""
    return tiny(tmp_path, name, **{**QUICK, **changes})
