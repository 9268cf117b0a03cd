"""`dqnfast train`: Deep Q-Learning on Atari (default: the Breakout `demo` preset, ~10 min on a laptop CPU).

One job per module, in the order a run uses them:

- :mod:`dqnfast.config` - the hyperparameters (``TrainConfig``) and the presets;
  :mod:`.cli` - the command line (tyro over ``TrainConfig``, ``--preset``, ``--resume``);
- :mod:`dqnfast.envs` - the Atari env of a config (no-op starts, frame skip + max, crop, resize,
  grayscale, episodic life, reward clipping; :func:`dqnfast.wrappers.make_atari_env`);
- :mod:`.actor` - the actor: epsilon-greedy acting, env stepping and replay writes (the frame-store
  replay, :class:`dqnfast.ReplayBuffer`, also builds the stacked state the agent acts on); with
  ``--async-actor`` it runs on its own thread (:class:`.actor.ActorThread`);
- :mod:`.learning` - the learner loop: replay batches and gradient steps
  (:class:`dqnfast.learner.DQNLearner`, or DRQN), `replay_ratio` gradient steps per agent step;
- :mod:`.schedule` - epsilon and the update ratio as functions of the agent step;
- :mod:`.runlog` / :mod:`.progress` - CSV + TensorBoard logs, the progress bar;
- :mod:`.checkpoints` - checkpoints with their replay snapshots, retention, RNG states;
- :mod:`.plots` - the learning curve;
- :mod:`.trainer` - the Trainer, which wires these together and runs the loop, then writes a
  final checkpoint, the learning-curve PNG and an evaluation on the real game score
  (:mod:`dqnfast.evaluate`, which needs nothing from this package).

Resuming (``--resume RUN/checkpoint.pt``) restores the network, target network, optimizer, counters
(steps, updates, episodes), the epsilon schedule position, the RNG states and the replay (the
snapshot beside the checkpoint). Without a snapshot (``--no-save-replay``, or a deleted file) the
replay is refilled with epsilon-greedy play of the restored agent up to `learning_starts`
transitions, without learning and without advancing the step counter. The games in progress are
not saved (ALE state): a resumed run starts new games, with a new env seed.
"""
from __future__ import annotations

from ..checkpoint import load_training_checkpoint
from .actor import Actor, ActorThread
from .cli import main, parse_config
from .runlog import RunLog
from .schedule import epsilon_at, updates_due
from .trainer import Trainer

__all__ = ["Actor", "ActorThread", "RunLog", "Trainer", "epsilon_at", "load_training_checkpoint", "main",
           "parse_config", "updates_due"]
