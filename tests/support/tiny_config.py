"""The tiny `demo` configuration the trainer tests run (36x36 frames, a 2,000-slot replay, 100 steps
of warm-up, no evaluation, no progress bar, one torch thread), in a test's own tmp folder."""
from __future__ import annotations

from dqnfast.config import preset


def tiny(tmp_path, **changes):
    values = dict(frame_size=36, crop=None, buffer_size=2000, batch_size=8, learning_starts=100, train_frequency=4,
                  target_update_interval=20, exploration_steps=200, eval_episodes=0, progress=False, torch_threads=1,
                  noop_max=5, log_interval=10, n_step=1, tensorboard=False, run_dir=str(tmp_path), run_name="run",
                  checkpoint_interval=0)
    values.update(changes)
    return preset("demo", **values)
