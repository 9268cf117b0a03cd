"""LoopSteps: what a training loop may use of the run it drives.

The sync and async loops (methods of :class:`~dqnfast.train.trainer.Trainer`) and the Ray loop
(:func:`~dqnfast.train.ray_loop.run_with_ray`) are made of the same steps: learn when an update is
due, record finished games, checkpoint when due, show progress, stop when the time budget is
spent. The Trainer provides them; a loop written elsewhere depends on this protocol, not on the
Trainer, so no loop module imports the trainer.
"""
from __future__ import annotations

from typing import Any, List, Protocol, Tuple

from ..config import TrainConfig
from .checkpoints import CheckpointWriter
from .learning import LearnerLoop
from .progress import Progress


class LoopSteps(Protocol):
    cfg: TrainConfig
    learner: Any        # a DQNLearner or DRQNLearner
    rb: Any             # the replay (ReplayBuffer, PrioritizedReplayBuffer or DeviceReplayBuffer)
    learning: LearnerLoop
    checkpoints: CheckpointWriter
    global_step: int    # agent steps so far, earlier runs of a resumed run included
    num_actions: int
    env_seed: int       # this run's env seed (a new one per resume)

    def learn_once(self) -> None:
        """One gradient update, with its metrics logged every ``log_interval`` updates."""

    def record_episodes(self, finished: List[Tuple[float, int]], step: int, epsilon: float) -> None:
        """Finished games (return, length), logged at agent step ``step``, played with ``epsilon``."""

    def out_of_time(self) -> bool:
        """The run's wall-clock budget (``max_seconds``) is spent."""

    def maybe_checkpoint(self) -> None:
        """Writes a checkpoint if one is due at ``global_step``; only while nothing adds to the replay."""

    def show_progress(self, progress: Progress) -> None:
        """Updates the progress bar."""
