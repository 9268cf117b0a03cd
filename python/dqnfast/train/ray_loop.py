"""The learner's loop when the actors run on Ray (``dqnfast train --ray ADDRESS``), Ape-X style.

``--ray-actors N`` Ray actors each step ``--envs-per-actor K`` envs and act epsilon-greedily with
their own epsilon (``0.4^(1 + 7 i / (N - 1))``), sending whole chunks of steps; an
:class:`~dqnfast.distributed.Ingestor` thread writes them into the replay (one stream per actor
env) while this loop samples and learns. The actors' network follows the learner's through Ray's
object store every ``--ray-weights-interval`` updates. Agent steps are those that reached the
replay. The learner keeps to the configured updates per agent step: while updates are due, the
ingest waits, so the actors wait too; the run ends with exactly the updates its steps call for. Progress, logs,
checkpoints (with the ingest paused) and the final evaluation are the trainer's own. A process
already connected to Ray (``ray.init`` before the Trainer) trains on that connection, whatever
``--ray`` says: Ray connects once per process.
"""
from __future__ import annotations

import functools
import time
from typing import Any, Callable

from ..distributed import ActorPool, AtariEnvFn, Ingestor, apex_epsilons, require_ray
from ..learner import make_q_network
from ..signals import sigterm_as_interrupt
from .loop_steps import LoopSteps
from .progress import Progress


def actor_network_fn(cfg, num_actions: int) -> Callable[[], Any]:
    """A picklable builder of the network the actors act with: the learner's own (``network``,
    ``dueling``), so the weights the learner sends them load."""
    return functools.partial(make_q_network, cfg.network, num_actions, cfg.stack, (cfg.frame_size, cfg.frame_size),
                             dueling=cfg.dueling)


def actor_pool(trainer: LoopSteps) -> ActorPool:
    """The pool a config describes: the trainer's env settings, the learner's network."""
    cfg = trainer.cfg
    env_fn = AtariEnvFn(cfg.env_id, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip, screen_size=cfg.frame_size,
                        crop=cfg.crop, interp=cfg.interp, gray=cfg.gray, fire_reset=cfg.fire_reset,
                        episodic_life=cfg.episodic_life, clip_rewards=cfg.clip_rewards)
    net_fn = actor_network_fn(cfg, trainer.num_actions)
    # a process already connected to Ray (a bench that measured ingest first, a notebook that called
    # ray.init) trains on that connection: Ray connects once per process
    address = None if require_ray().is_initialized() else cfg.ray
    return ActorPool(address, cfg.ray_actors, cfg.envs_per_actor, env_fn, net_fn=net_fn, seed=trainer.env_seed,
                     gamma=cfg.gamma, frame_shape=(cfg.frame_size, cfg.frame_size), stack=cfg.stack,
                     epsilons=apex_epsilons(cfg.ray_actors))


def run_with_ray(trainer: LoopSteps, progress: Progress) -> None:
    cfg, learner = trainer.cfg, trainer.learner
    base = trainer.global_step  # steps of earlier runs (resume)
    with actor_pool(trainer) as pool:
        # ray.init installed its own SIGTERM handler (it exits): put the trainer's back (checkpoint first)
        restore_sigterm = sigterm_as_interrupt()
        pool.publish_weights(learner.q_network.state_dict())
        ingest = Ingestor(pool, trainer.rb).start()
        episodes_seen = 0

        def record_new_games(stats) -> None:
            nonlocal episodes_seen
            new = min(stats.episodes - episodes_seen, len(stats.episode_returns))
            if new > 0:  # (the stats keep the latest games)
                for ret, length, actor in zip(stats.episode_returns[-new:], stats.episode_lengths[-new:],
                                              stats.episode_actors[-new:]):
                    trainer.record_episodes([(ret, length)], trainer.global_step, pool.epsilons[actor])
            episodes_seen = stats.episodes

        def learn_due_updates() -> None:
            # The ingest is paused meanwhile: the actors' next chunks wait (each actor stops once its
            # requests are answered), so agent steps never run ahead of the configured replay ratio
            # by more than the chunks already in flight.
            with ingest.paused():
                while trainer.learning.due(trainer.global_step):
                    trainer.learn_once()
                    if learner.updates % cfg.ray_weights_interval == 0:
                        pool.publish_weights(learner.q_network.state_dict())

        try:
            while trainer.global_step < cfg.total_steps and not trainer.out_of_time():
                ingest.check()
                stats = ingest.stats()  # one snapshot: its step count and its games agree
                trainer.global_step = base + stats.transitions
                record_new_games(stats)
                if trainer.learning.due(trainer.global_step):
                    learn_due_updates()
                else:
                    time.sleep(0.002)  # waiting for the actors' next chunk
                if trainer.checkpoints.due(trainer.global_step):
                    with ingest.paused():  # rb.save needs a still replay
                        # chunks written since the count above are in the replay it saves: count them
                        trainer.global_step = base + ingest.stats().transitions
                        trainer.maybe_checkpoint()
                trainer.show_progress(progress)
        finally:
            ingest.stop()
            stats = ingest.stats()
            trainer.global_step = base + stats.transitions
            record_new_games(stats)  # those of the last chunks written
            restore_sigterm()
        learn_due_updates()  # the last chunks' updates: the run ends at the configured ratio
