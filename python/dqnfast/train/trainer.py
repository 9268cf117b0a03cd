"""The Trainer: wires the env, the actor, the replay, the learner loop, the logs and the checkpoints,
and runs the training loop (synchronous, or with the actor on its own thread)."""
from __future__ import annotations

import os
import random
import time
from collections import deque
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..config import TrainConfig
from ..envs import make_env
from ..evaluate import evaluate_learner
from ..recurrent import build_learner, make_policy
from ..prioritized import PrioritizedReplayBuffer
from ..replay import ReplayBuffer
from ..signals import Terminated, sigterm_as_interrupt
from ..vector_env import EnvWorkerError
from .actor import Actor, ActorThread, Finished, NetworkCopy
from .checkpoints import CheckpointWriter, check_network_settings, load_replay, restore_rng_state
from .learning import LearnerLoop
from .plots import plot_learning_curve
from .progress import Progress, StepRate
from .runlog import RunLog
from .schedule import epsilon_at, steps_for_updates


class Trainer:
    """One training run: a new one from ``cfg``, or the run of a loaded checkpoint ``state``
    (then ``run_dir`` is its folder). :meth:`run` trains to ``cfg.total_steps`` and returns a summary."""

    def __init__(self, cfg: TrainConfig, preset_name: str, state: Optional[Dict[str, Any]] = None,
                 run_dir: Optional[str] = None) -> None:
        self.cfg, self.preset_name = cfg, preset_name
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        device = None if cfg.device == "auto" else cfg.device
        if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        # counters (continued on resume)
        c = state["counters"] if state else {}
        self.global_step = int(c.get("global_step", 0))
        self.episodes = int(c.get("episodes", 0))
        self.resumes = int(c.get("resumes", -1)) + 1
        self.train_time = float(c.get("train_time", 0.0))

        if run_dir is None:
            name = cfg.run_name or f"{cfg.env_id.replace('/', '-')}__{preset_name}__s{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = os.path.join(cfg.run_dir, name)
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)

        # environment: a new seed per resume so a resumed run does not replay the same games
        if cfg.ray:  # say how to install Ray before any work, not from deep inside the run
            from ..distributed import require_ray
            try:
                require_ray()
            except ImportError as e:
                raise ValueError(f"--ray needs Ray: {e}") from None
        env_seed = cfg.seed + 1_000_003 * self.resumes
        self.env_seed = env_seed
        # with Ray the envs live on the actors; one env here says how many actions the game has
        self.env = make_env(cfg.replace(env_workers=0) if cfg.ray else cfg, num_envs=1 if cfg.ray else cfg.num_envs,
                            seed=env_seed)
        space = getattr(self.env, "single_action_space", self.env.action_space)
        self.num_actions = int(space.n)
        if cfg.ray:
            self.env.close()
            self.env = None
        if state and int(state["num_actions"]) != self.num_actions:
            raise ValueError(f"checkpoint has {state['num_actions']} actions, {cfg.env_id} has {self.num_actions}")

        if state:
            check_network_settings(state["config"], cfg)
        self.learner = build_learner(cfg, self.num_actions, device=device, seed=cfg.seed)
        if state:
            self.learner.load_state_dict(state["learner"])
            restore_rng_state(state["rng"])

        rb = load_replay(run_dir, state.get("replay") if state else None, cfg)
        self.replay_restored = rb is not None
        if rb is None:
            kind, extra = (PrioritizedReplayBuffer, dict(alpha=cfg.priority_alpha)) if cfg.prioritized else \
                (ReplayBuffer, {})
            rb = kind(cfg.buffer_size, frame_shape=(cfg.frame_size, cfg.frame_size), stack=cfg.replay_stack,
                      num_envs=cfg.replay_streams, seed=cfg.seed + 7919 * self.resumes,
                      n_step=cfg.n_step, gamma=cfg.gamma, **extra)
        if cfg.replay_device != "cpu":  # frames mirrored on the GPU: batches never cross as pixels
            from ..torch_replay import DeviceReplayBuffer
            rb = DeviceReplayBuffer(buffer=rb, device=cfg.replay_device)  # (ValueError without CUDA)
            if self.learner.device.type != "cuda":
                raise ValueError(f"replay_device {cfg.replay_device!r} needs the learner on CUDA too; it is on "
                                 f"{self.learner.device} (device {cfg.device!r})")
        self.rb = rb
        self.learning = LearnerLoop(cfg, self.learner, rb)
        self.actor: Optional[Actor] = None
        if not cfg.ray:
            self.actor = Actor(self.env, rb, make_policy(self.learner), cfg.num_envs)
            self.actor.reset(env_seed)

        self.checkpoints = CheckpointWriter(run_dir, cfg, self.global_step,
                                            replay_file=state.get("replay") if (state and self.replay_restored) else None)
        self.log = RunLog(run_dir, cfg, self.global_step)
        self.recent_returns: deque = deque(maxlen=100)
        self._rate = StepRate()
        self._t_start = time.perf_counter()

    @property
    def batch(self):
        """The reused batch the learner loop samples into."""
        return self.learning.batch

    @property
    def last_metrics(self) -> Dict[str, float]:
        return self.learning.last_metrics

    # -- the steps every loop (sync, async, Ray) is made of: train/loop_steps.py's LoopSteps ----------
    def record_episodes(self, finished: Finished, step: int, epsilon: float) -> None:
        for ret, length in finished:
            self.episodes += 1
            self.recent_returns.append(ret)
            self.log.episode(step, self.episodes, ret, length, epsilon)

    def out_of_time(self) -> bool:
        """The run's wall-clock budget (``max_seconds``) is spent."""
        return bool(self.cfg.max_seconds) and time.perf_counter() - self._t_start >= self.cfg.max_seconds

    def learn_once(self) -> None:
        log = (self.learner.updates + 1) % self.cfg.log_interval == 0
        m = self.learning.learn_once(metrics=log)  # reading the loss back syncs a GPU: only when logged
        if log and m is not None:
            step = self.global_step
            self.log.scalar("losses/td_loss", m["td_loss"], step)
            self.log.scalar("losses/q_values", m["q_values"], step)
            self.log.scalar("losses/grad_norm", m["grad_norm"], step)
            self.log.scalar("charts/SPS", self._rate(step), step)
            self.log.scalar("charts/updates", self.learner.updates, step)
            if step > self.cfg.learning_starts:  # the replay ratio reached (every loop keeps the configured one)
                self.log.scalar("charts/updates_per_step", self.learner.updates / (step - self.cfg.learning_starts), step)

    def show_progress(self, progress: Progress) -> None:
        last = ",".join(f"{r:g}" for r in list(self.recent_returns)[-3:]) or "-"
        avg = f"{np.mean(self.recent_returns):.2f}" if self.recent_returns else "-"
        loss = self.last_metrics.get("td_loss", float("nan"))
        progress.update(self.global_step, SPS=int(self._rate(self.global_step)),
                        eps=f"{epsilon_at(self.cfg, self.global_step):.3f}", ret=last, avg100=avg, loss=f"{loss:.4f}")

    def save_checkpoint(self) -> str:
        """checkpoint.pt (+ its replay snapshot); call only while no thread adds to the replay."""
        return self.checkpoints.save(
            getattr(self.rb, "buffer", self.rb), self.global_step,  # a DeviceReplayBuffer saves its host store
            preset=self.preset_name,
            num_actions=self.num_actions,
            counters={"global_step": self.global_step, "updates": self.learner.updates, "episodes": self.episodes,
                      "resumes": self.resumes, "train_time": self.train_time + time.perf_counter() - self._t_start},
            learner=self.learner.state_dict(),
        )

    def maybe_checkpoint(self) -> None:
        if self.checkpoints.due(self.global_step):
            self.save_checkpoint()

    # -- main entry ----------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        self._t_start, step_start = time.perf_counter(), self.global_step
        self._rate = StepRate()
        progress = Progress(cfg.total_steps, self.global_step, cfg.progress)
        interrupted, terminated = False, False
        restore_sigterm = sigterm_as_interrupt()
        try:
            if self.global_step > 0 and not self.replay_restored and not cfg.ray:
                self._refill_replay(progress)
            self._t_start, step_start = time.perf_counter(), self.global_step
            if cfg.ray:
                from .ray_loop import run_with_ray
                run_with_ray(self, progress)
            elif cfg.async_actor:
                self._run_async(progress)
            else:
                self._run_sync(progress)
        except KeyboardInterrupt as e:
            interrupted, terminated = True, isinstance(e, Terminated)
            progress.write(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: writing a checkpoint")
        except EnvWorkerError as e:  # the replay holds only whole steps: keep them, then say what happened
            progress.close()
            path = self.save_checkpoint()
            self.log.close()
            raise EnvWorkerError(f"{e}\nThe run stopped at agent step {self.global_step}; checkpoint {path} "
                                 f"(continue with --resume {path})") from e
        finally:
            restore_sigterm()
            progress.close()
        wall = time.perf_counter() - self._t_start
        path = self.save_checkpoint()
        self.log.flush()
        summary: Dict[str, Any] = {
            "run_dir": self.run_dir, "checkpoint": path, "global_step": self.global_step,
            "updates": self.learner.updates, "episodes": self.episodes, "wall_time_s": wall,
            "sps": (self.global_step - step_start) / wall if wall > 0 else 0.0,
            "interrupted": interrupted,
            "terminated": terminated,
            "time_limit_reached": self.global_step < cfg.total_steps and not interrupted,
        }
        if not interrupted:
            summary["learning_curve"] = plot_learning_curve(self.run_dir, title=f"{cfg.env_id} ({self.preset_name})")
            if cfg.eval_episodes:
                returns = evaluate_learner(self.learner, cfg, episodes=cfg.eval_episodes, epsilon=cfg.eval_epsilon,
                                           seed=cfg.seed + 10_000)
                summary["eval_returns"] = returns
                self.log.scalar("eval/mean_return", float(np.mean(returns)), self.global_step)
                self.log.scalar("eval/std_return", float(np.std(returns)), self.global_step)
        self.log.close()
        if self.env is not None:
            self.env.close()
        return summary

    def _refill_replay(self, progress: Progress) -> None:
        """Resume without a saved replay: epsilon-greedy play of the restored agent until the replay
        holds `learning_starts` transitions (at least one batch); no learning, counters unchanged."""
        target = max(self.cfg.learning_starts, self.cfg.batch_size)
        target = min(target, self.cfg.buffer_size // 2)
        eps = epsilon_at(self.cfg, self.global_step)
        progress.write(f"resumed at step {self.global_step} (update {self.learner.updates}); refilling the replay "
                       f"with {target} epsilon-greedy steps (epsilon {eps:.3f}) before learning continues")
        while len(self.rb) < target:
            self.actor.step(eps)  # refill games are not logged: they are not part of the step count

    def _run_sync(self, progress: Progress) -> None:
        """Act, step, add, learn. With env workers the learner's due updates run while the workers
        emulate the next step (the policy then acts one step behind the newest updates; the
        number of updates per agent step is unchanged)."""
        cfg = self.cfg
        overlap = self.actor.overlaps
        try:
            while self.global_step < cfg.total_steps and not self.out_of_time():
                epsilon = epsilon_at(cfg, self.global_step)
                self.actor.send(epsilon)
                if overlap:
                    while self.learning.due(self.global_step):
                        self.learn_once()
                finished = self.actor.receive()
                self.global_step += cfg.num_envs
                self.record_episodes(finished, self.global_step, epsilon)
                if not overlap:
                    while self.learning.due(self.global_step):
                        self.learn_once()
                self.maybe_checkpoint()
                self.show_progress(progress)
            while self.learning.due(self.global_step):  # the last step's updates
                self.learn_once()
        finally:
            self.actor.abandon()  # a step in flight when the run stops is not counted nor stored

    def _run_async(self, progress: Progress, max_lead: int = 4) -> None:
        """Actor thread: act, step the envs, add to the replay. This thread: sample + update.

        The actor may run at most `max_lead` gradient steps' worth of agent steps ahead of the
        learner and the learner never runs ahead of `updates_due`, so the ratio of updates to agent
        steps is the synchronous one. The actor acts (``learner.act``) with its own copy of the
        online network and its own generator; the copy is refreshed after every update, so it is
        at most one update behind. Games, steps and updates interleave by thread timing, so an
        async run is not reproducible game for game (a synchronous one is)."""
        cfg, learner = self.cfg, self.learner
        actor_net = NetworkCopy(learner.q_network)
        actor_rng = np.random.default_rng(learner.rng.integers(2**63))

        def policy(states: np.ndarray, epsilon: float) -> np.ndarray:
            return learner.act(states, epsilon, network=actor_net, rng=actor_rng)

        def limit() -> int:  # the actor may not step past this until the learner catches up
            return steps_for_updates(cfg, learner.updates + max_lead)

        self.actor.policy = policy
        thread = ActorThread(self.actor, step=self.global_step, total_steps=cfg.total_steps, limit=limit,
                             epsilon=lambda step: epsilon_at(cfg, step))
        try:
            with thread:
                self._learn_beside(thread, actor_net, progress)
        finally:
            self.global_step = thread.step  # the actor has stopped: its count is final
            self.actor.policy = make_policy(learner)

    def _learn_beside(self, thread: ActorThread, actor_net: NetworkCopy, progress: Progress) -> None:
        """The learner side of the async loop: record finished games, learn when due (then refresh
        the actor's network copy), checkpoint with the actor paused, until the actor is done."""
        cond = thread.cond
        while True:
            with cond:
                while True:
                    self.global_step = thread.step
                    must_learn = self.learning.due(self.global_step)
                    if must_learn or thread.done or thread.has_finished:
                        break
                    if not cond.wait(timeout=1.0):  # wake up now and then to refresh the progress bar
                        break
                self.global_step = thread.step
                ready = thread.take_finished()
                done = thread.done
            for finished, step, epsilon in ready:
                self.record_episodes(finished, step, epsilon)
            if must_learn:
                self.learn_once()
                if self.learner.updates % self.cfg.actor_sync_interval == 0:
                    actor_net.refresh(self.learner.q_network)
                with cond:
                    cond.notify_all()
            elif done and not ready:
                break
            if self.out_of_time():
                thread.stop()
            if self.checkpoints.due(self.global_step):
                with thread.paused():  # rb.save needs a still replay
                    self.global_step = thread.step
                    self.maybe_checkpoint()
            self.show_progress(progress)
