"""`dqnfast train`: Deep Q-Learning on Atari (default: the Breakout `demo` preset, ~10 min on a laptop CPU).

Read top to bottom, like CleanRL's dqn_atari.py:

1. hyperparameters: a preset from dqnfast.config, overridden by command-line options;
2. the environment (dqnfast.wrappers.make_atari_env: no-op starts, frame skip + max, crop, resize,
   grayscale, episodic life, reward clipping), the frame-store replay (dqnfast.ReplayBuffer, which
   also builds the stacked state the agent acts on) and the learner (dqnfast.learner.DQNLearner);
3. the loop: epsilon-greedy step -> replay.add -> every `train_frequency` steps one gradient step on
   a replay batch; logs, checkpoints, progress bar;
4. at the end: a final checkpoint, the learning-curve PNG and an evaluation on the real game score.

With ``--async-actor`` an actor thread steps the environments and feeds the (lock-free) replay while
the main thread learns; the number of gradient steps per agent step stays the same.

Resuming (``--resume RUN/checkpoint.pt``) restores the network, target network, optimizer, counters
(steps, updates, episodes), the epsilon schedule position, the RNG states and the replay: each
checkpoint has a replay snapshot beside it (``replay-STEP.bin``, ``rb.save``), written before the
checkpoint that names it, so a crash between the two never pairs a checkpoint with a missing or
newer replay. Without a snapshot (``--no-save-replay``, or a deleted file) the replay is refilled
with epsilon-greedy play of the restored agent up to `learning_starts` transitions, without
learning and without advancing the step counter. The games in progress are not saved (ALE state):
a resumed run starts new games, with a new env seed.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import random
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import checkpoint as ckpt
from .config import DEFAULT_PRESET, PRESETS, TrainConfig, field_docs, preset

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "dqnfast.train"


# ---------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------
def _optional_float(text: str) -> Optional[float]:
    return None if text.lower() in ("none", "off") else float(text)


def _crop(text: str) -> Optional[Tuple[int, int, int, int]]:
    if text.lower() in ("none", "off"):
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"crop must be TOP,BOTTOM,LEFT,RIGHT or none, got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"crop must be four integers TOP,BOTTOM,LEFT,RIGHT, got {text!r}")
    return values  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dqnfast train",
        description="Train a DQN agent on an Atari game. Every hyperparameter has an option; "
                    "unset ones come from the preset (or from the checkpoint with --resume).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help=f"hyperparameter preset (default: {DEFAULT_PRESET})")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (its config; options given here override it)")
    docs = field_docs()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, "")
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif f.name == "crop":
            p.add_argument(flag, type=_crop, metavar="T,B,L,R", help=help_text + " (or none)")
        elif f.type == "Optional[float]":
            p.add_argument(flag, type=_optional_float, metavar="X", help=help_text + " (or none)")
        else:
            p.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type], metavar="N" if f.type == "int"
                           else ("X" if f.type == "float" else "S"), help=help_text)
    return p


def parse_config(argv: Sequence[str]) -> Tuple[TrainConfig, str, Optional[str], Optional[Dict[str, Any]]]:
    """(config, preset name, resume path, loaded checkpoint); exits with a usage error on bad input,
    before any environment, network or buffer is created."""
    parser = build_parser()
    args = vars(parser.parse_args(list(argv)))
    resume = args.pop("resume", None)
    preset_name = args.pop("preset", None)
    state = None
    try:
        if resume is not None:
            if preset_name is not None:
                parser.error("--preset cannot be combined with --resume (the run's config is in the checkpoint)")
            state = load_training_checkpoint(resume)
            preset_name = state["preset"]
            cfg = config_from_dict(state["config"]).replace(**args).validate()
        else:
            preset_name = preset_name or DEFAULT_PRESET
            cfg = preset(preset_name, **args)
        check_env_id(cfg.env_id)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    return cfg, preset_name, resume, state


def check_env_id(env_id: str) -> None:
    """ValueError unless gymnasium knows ``env_id`` (with the ale-py games registered)."""
    import gymnasium as gym
    try:
        import ale_py
        gym.register_envs(ale_py)
    except ImportError:
        pass
    if env_id not in gym.registry:
        close = [k for k in gym.registry if k.lower().startswith(env_id.lower().split("-")[0])][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown environment id {env_id!r}{hint}")


def config_from_dict(d: Dict[str, Any]) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in d.items() if k in names}
    if values.get("crop") is not None:
        values["crop"] = tuple(values["crop"])
    return TrainConfig(**values)


# ---------------------------------------------------------------------------------------------------
# environment and acting
# ---------------------------------------------------------------------------------------------------
def make_env(cfg: TrainConfig, *, num_envs: int, seed: int, evaluation: bool = False):
    """The Atari env of ``cfg``; for evaluation the real game (no episodic life, no reward clipping)."""
    from .wrappers import make_atari_env
    return make_atari_env(
        cfg.env_id, num_envs=num_envs, seed=seed, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
        screen_size=cfg.frame_size, crop=cfg.crop, interp=cfg.interp, fire_reset=cfg.fire_reset,
        episodic_life=False if evaluation else cfg.episodic_life,
        clip_rewards=False if evaluation else cfg.clip_rewards,
    )


def _episode_stats(info: Dict[str, Any], num_envs: int, vector: bool) -> List[Tuple[float, int]]:
    """(return, length) of each real game that ended at this step (RecordEpisodeStatistics)."""
    if "episode" not in info:
        return []
    ep = info["episode"]
    if not vector:
        return [(float(np.asarray(ep["r"]).reshape(-1)[0]), int(np.asarray(ep["l"]).reshape(-1)[0]))]
    mask = info.get("_episode", np.ones(num_envs, bool))
    return [(float(ep["r"][i]), int(ep["l"][i])) for i in range(num_envs) if mask[i]]


class EnvRunner:
    """Steps the environment(s) with an epsilon-greedy policy and writes every transition to the replay.

    The replay is also the frame stacker: ``rb.stacked(env)`` is the state each env acts on. Works
    with one gymnasium env or a vector env (either autoreset mode).
    """

    def __init__(self, env, rb, policy: Callable[[np.ndarray, float], np.ndarray], num_envs: int) -> None:
        self.env, self.rb, self.policy, self.num_envs = env, rb, policy, num_envs
        self.vector = hasattr(env, "num_envs") and num_envs > 1
        mode = str(getattr(env, "metadata", {}).get("autoreset_mode", "NextStep"))
        self.same_step = "same" in mode.lower()
        self.pending_start = np.zeros(num_envs, bool)
        self.states = np.empty((num_envs, rb.stack, *rb.frame_shape), np.uint8)

    def _started(self, env: int) -> None:
        """A stateful policy (DRQN's LSTM) forgets env's history when it starts an episode."""
        hook = getattr(self.policy, "episode_started", None)
        if hook is not None:
            hook(env)

    def reset(self, seed: int) -> None:
        obs, _ = self.env.reset(seed=seed)
        obs = np.asarray(obs).reshape(self.num_envs, *self.rb.frame_shape)
        self.rb.start_episodes(np.ascontiguousarray(obs))
        for i in range(self.num_envs):
            self._started(i)
        self.pending_start[:] = False

    def step(self, epsilon: float) -> List[Tuple[float, int]]:
        rb = self.rb
        for i in range(self.num_envs):
            rb.stacked(i, out=self.states[i])
        actions = np.asarray(self.policy(self.states, epsilon), dtype=np.int64)
        if self.vector:
            obs, rewards, terms, truncs, info = self.env.step(actions)
        else:
            o, r, t, tr, info = self.env.step(int(actions[0]))
            obs, rewards, terms, truncs = o[None], (r,), (t,), (tr,)
        for i in range(self.num_envs):
            if self.pending_start[i]:  # vector env, next-step autoreset: this step only reset env i
                rb.start_episode(obs[i], i)
                self._started(i)
                self.pending_start[i] = False
                continue
            done = bool(terms[i]) or bool(truncs[i])
            final = info["final_obs"][i] if (done and self.vector and self.same_step) else obs[i]
            rb.add(int(actions[i]), float(rewards[i]), final, bool(terms[i]), bool(truncs[i]), i)
            if done:
                if not self.vector:
                    first, _ = self.env.reset()
                    rb.start_episode(first, 0)
                    self._started(0)
                elif self.same_step:
                    rb.start_episode(obs[i], i)
                    self._started(i)
                else:
                    self.pending_start[i] = True
        return _episode_stats(info, self.num_envs, self.vector)


# ---------------------------------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------------------------------
class RunLog:
    """CSV files (episodes.csv, scalars.csv) plus TensorBoard, both appended to on resume."""

    EPISODE_FIELDS = ("global_step", "episode", "return", "length", "epsilon", "wall_time")

    def __init__(self, run_dir: str, cfg: TrainConfig, global_step: int) -> None:
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        new_eps = not os.path.exists(os.path.join(run_dir, "episodes.csv"))
        self._eps_file = open(os.path.join(run_dir, "episodes.csv"), "a", newline="", buffering=1)
        self._eps = csv.writer(self._eps_file)
        if new_eps:
            self._eps.writerow(self.EPISODE_FIELDS)
        new_sc = not os.path.exists(os.path.join(run_dir, "scalars.csv"))
        self._sc_file = open(os.path.join(run_dir, "scalars.csv"), "a", newline="", buffering=1)
        self._sc = csv.writer(self._sc_file)
        if new_sc:
            self._sc.writerow(("global_step", "tag", "value", "wall_time"))
        self.tb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in the [train] extra; CSV logs still work
                print("dqnfast train: tensorboard is not installed; writing CSV logs only", file=sys.stderr)
            else:
                self.tb = SummaryWriter(run_dir, purge_step=global_step if global_step else None)
                if not global_step:
                    table = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(cfg).items())
                    self.tb.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._sc.writerow((step, tag, f"{value:.6g}", f"{time.time():.3f}"))
        if self.tb is not None:
            self.tb.add_scalar(tag, value, step)

    def episode(self, step: int, index: int, ret: float, length: int, epsilon: float) -> None:
        self._eps.writerow((step, index, f"{ret:g}", length, f"{epsilon:.4f}", f"{time.time():.3f}"))
        self.scalar("charts/episodic_return", ret, step)
        self.scalar("charts/episodic_length", length, step)
        self.scalar("charts/epsilon", epsilon, step)

    def flush(self) -> None:
        self._eps_file.flush()
        self._sc_file.flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.flush()
        self._eps_file.close()
        self._sc_file.close()
        if self.tb is not None:
            self.tb.close()


class Progress:
    """A tqdm bar when tqdm is installed (steps, SPS, epsilon, last returns); periodic lines otherwise."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.enabled, self.total = enabled, total
        self.bar = None
        self._last_line = 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=1.0,
                                smoothing=0.05)
        self.n = initial

    def update(self, step: int, **postfix: Any) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if time.monotonic() - self._last_line > 1.0:
                self.bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in postfix.items()), refresh=False)
                self._last_line = time.monotonic()
        elif time.monotonic() - self._last_line > 10.0:
            print(f"step {step}/{self.total} " + " ".join(f"{k}={v}" for k, v in postfix.items()), flush=True)
            self._last_line = time.monotonic()

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------
def load_training_checkpoint(path: str) -> Dict[str, Any]:
    """A `dqnfast train` checkpoint, verified; CheckpointError (a ValueError) otherwise."""
    state = ckpt.load(path)
    missing = [k for k in ("format", "config", "preset", "counters", "learner", "rng", "num_actions") if k not in state]
    if state.get("format") != FORMAT or missing:
        raise ckpt.CheckpointError(f"{path!r} is a checkpoint but not of `dqnfast train` "
                                   f"(format {state.get('format')!r}, missing {missing})")
    return state


def replay_stack(cfg: TrainConfig) -> int:
    """Frames per replayed state: the frame stack, or 1 for DRQN (its LSTM carries the history)."""
    return 1 if cfg.recurrent else cfg.stack


def load_replay(run_dir: str, name: Optional[str], cfg: TrainConfig):
    """The replay snapshot a checkpoint names, or None (then the trainer refills the replay).

    A snapshot that is missing is reported and skipped; one that is unreadable is refused
    (ValueError from ReplayBuffer.load), like a corrupt checkpoint."""
    from .replay import ReplayBuffer
    if not name:
        return None
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        print(f"dqnfast train: replay snapshot {path} is missing; the replay will be refilled", file=sys.stderr)
        return None
    rb = ReplayBuffer.load(path)
    expected = ((cfg.frame_size, cfg.frame_size), replay_stack(cfg), cfg.num_envs, cfg.n_step)
    if (tuple(rb.frame_shape), rb.stack, rb.num_envs, rb.n_step) != expected:
        raise ValueError(f"replay snapshot {path} does not match the run's config "
                         f"(frame_shape, stack, num_envs, n_step) = {expected}")
    return rb


def rng_state() -> Dict[str, Any]:
    import torch
    state: Dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    import torch
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


# ---------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------
def epsilon_at(cfg: TrainConfig, step: int) -> float:
    """1 during the random warm-up, then linear from start_epsilon to end_epsilon, then constant."""
    if step < cfg.learning_starts:
        return 1.0
    frac = min(1.0, step / cfg.exploration_steps) if cfg.exploration_steps else 1.0
    return cfg.start_epsilon + (cfg.end_epsilon - cfg.start_epsilon) * frac


def updates_due(cfg: TrainConfig, step: int) -> int:
    """Gradient steps that should have been taken after ``step`` agent steps (one per train_frequency)."""
    return max(0, (step - cfg.learning_starts) // cfg.train_frequency)


class Trainer:
    def __init__(self, cfg: TrainConfig, preset_name: str, state: Optional[Dict[str, Any]] = None,
                 run_dir: Optional[str] = None) -> None:
        import torch

        from .batch import empty_sequence_batch
        from .recurrent import build_learner, make_policy
        from .replay import ReplayBuffer

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
        env_seed = cfg.seed + 1_000_003 * self.resumes
        self.env = make_env(cfg, num_envs=cfg.num_envs, seed=env_seed)
        space = self.env.single_action_space if cfg.num_envs > 1 else self.env.action_space
        self.num_actions = int(space.n)
        if state and int(state["num_actions"]) != self.num_actions:
            raise ValueError(f"checkpoint has {state['num_actions']} actions, {cfg.env_id} has {self.num_actions}")

        self.learner = build_learner(cfg, self.num_actions, device=device, seed=cfg.seed)
        if state:
            self.learner.load_state_dict(state["learner"])
            restore_rng_state(state["rng"])

        self.rb = load_replay(run_dir, state.get("replay") if state else None, cfg)
        self.replay_restored = self.rb is not None
        if self.rb is None:
            self.rb = ReplayBuffer(cfg.buffer_size, frame_shape=(cfg.frame_size, cfg.frame_size), stack=replay_stack(cfg),
                                   num_envs=cfg.num_envs, seed=cfg.seed + 7919 * self.resumes,
                                   n_step=cfg.n_step, gamma=cfg.gamma)
        self._replay_file: Optional[str] = state.get("replay") if (state and self.replay_restored) else None
        if cfg.recurrent:  # DRQN learns from sequences of single frames
            self.batch = empty_sequence_batch(cfg.batch_size, cfg.sequence_length, (cfg.frame_size, cfg.frame_size))
        else:  # one-step targets: obs and next_obs share their frames (stack + 1 per row, not 2 * stack)
            self.batch = self.learner.empty_batch(cfg.batch_size, shared_frames=self.rb.n_step == 1)
        self.runner = EnvRunner(self.env, self.rb, make_policy(self.learner), cfg.num_envs)
        self.runner.reset(env_seed)

        self.log = RunLog(run_dir, cfg, self.global_step)
        self.recent_returns: deque = deque(maxlen=100)
        self.last_metrics: Dict[str, float] = {}
        self._next_ckpt = self._next_checkpoint_after(self.global_step)

    # -- pieces shared by the sync and async loops ---------------------------------------------------
    def _next_checkpoint_after(self, step: int) -> int:
        k = self.cfg.checkpoint_interval
        return (step // k + 1) * k if k else math.inf  # type: ignore[return-value]

    def _record_episodes(self, finished: List[Tuple[float, int]], step: int, epsilon: float) -> None:
        for ret, length in finished:
            self.episodes += 1
            self.recent_returns.append(ret)
            self.log.episode(step, self.episodes, ret, length, epsilon)

    def _learn_once(self) -> None:
        if self.cfg.recurrent:
            m = self.learner.update(self.rb.sample_sequences(self.cfg.batch_size, self.cfg.sequence_length, out=self.batch))
        else:
            m = self.learner.update(self.rb.sample(self.cfg.batch_size, out=self.batch))
        if self.learner.updates % self.cfg.log_interval == 0:
            step = self.global_step
            self.log.scalar("losses/td_loss", m["td_loss"], step)
            self.log.scalar("losses/q_values", m["q_values"], step)
            self.log.scalar("losses/grad_norm", m["grad_norm"], step)
            self.log.scalar("charts/SPS", self._sps(), step)
            self.log.scalar("charts/updates", self.learner.updates, step)
        self.last_metrics = m

    def _sps(self) -> float:
        """Agent steps per second over the last ~30 s."""
        now = time.perf_counter()
        if not self._speed or now - self._speed[-1][0] >= 1.0:
            self._speed.append((now, self.global_step))
        t0, s0 = self._speed[0]
        return (self.global_step - s0) / (now - t0) if now - t0 > 1e-3 else 0.0

    def _progress(self, progress: Progress) -> None:
        last = ",".join(f"{r:g}" for r in list(self.recent_returns)[-3:]) or "-"
        avg = f"{np.mean(self.recent_returns):.2f}" if self.recent_returns else "-"
        progress.update(self.global_step, SPS=int(self._sps()), eps=f"{epsilon_at(self.cfg, self.global_step):.3f}",
                        ret=last, avg100=avg, loss=f"{self.last_metrics.get('td_loss', float('nan')):.4f}")

    def save_checkpoint(self) -> str:
        """checkpoint.pt (+ its replay snapshot); call only while no thread adds to the replay."""
        path = os.path.join(self.run_dir, CHECKPOINT_NAME)
        previous, replay_name = self._replay_file, None
        if self.cfg.save_replay:
            replay_name = f"replay-{self.global_step}.bin"
            if replay_name != previous:
                self.rb.save(os.path.join(self.run_dir, replay_name))  # atomic; before the checkpoint naming it
        ckpt.save(path, {
            "format": FORMAT,
            "config": dataclasses.asdict(self.cfg),
            "preset": self.preset_name,
            "num_actions": self.num_actions,
            "counters": {"global_step": self.global_step, "updates": self.learner.updates, "episodes": self.episodes,
                         "resumes": self.resumes, "train_time": self.train_time + time.perf_counter() - self._t_start},
            "learner": self.learner.state_dict(),
            "rng": rng_state(),
            "replay": replay_name,  # None: resume refills the replay
        })
        self._replay_file = replay_name
        if previous and previous != replay_name:  # only now is the old snapshot no longer referenced
            try:
                os.unlink(os.path.join(self.run_dir, previous))
            except FileNotFoundError:
                pass
        return path

    def _maybe_checkpoint(self) -> None:
        if self.global_step >= self._next_ckpt:
            self.save_checkpoint()
            self._next_ckpt = self._next_checkpoint_after(self.global_step)

    # -- main entry ----------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        self._t_start, self._step_start = time.perf_counter(), self.global_step
        self._speed: deque = deque(maxlen=30)
        progress = Progress(cfg.total_steps, self.global_step, cfg.progress)
        interrupted = False
        try:
            if self.global_step > 0 and not self.replay_restored:
                self._refill_replay(progress)
            self._t_start, self._step_start = time.perf_counter(), self.global_step
            if cfg.async_actor:
                self._run_async(progress)
            else:
                self._run_sync(progress)
        except KeyboardInterrupt:
            interrupted = True
            progress.write("interrupted: writing a checkpoint")
        finally:
            progress.close()
        wall = time.perf_counter() - self._t_start
        path = self.save_checkpoint()
        self.log.flush()
        summary: Dict[str, Any] = {
            "run_dir": self.run_dir, "checkpoint": path, "global_step": self.global_step,
            "updates": self.learner.updates, "episodes": self.episodes, "wall_time_s": wall,
            "sps": (self.global_step - self._step_start) / wall if wall > 0 else 0.0,
            "interrupted": interrupted,
        }
        if not interrupted:
            summary["learning_curve"] = plot_learning_curve(self.run_dir, title=f"{cfg.env_id} ({self.preset_name})")
            if cfg.eval_episodes:
                from .evaluate import evaluate_learner
                returns = evaluate_learner(self.learner, cfg, episodes=cfg.eval_episodes, epsilon=cfg.eval_epsilon,
                                           seed=cfg.seed + 10_000)
                summary["eval_returns"] = returns
                self.log.scalar("eval/mean_return", float(np.mean(returns)), self.global_step)
                self.log.scalar("eval/std_return", float(np.std(returns)), self.global_step)
        self.log.close()
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
            self.runner.step(eps)  # refill games are not logged: they are not part of the step count

    def _run_sync(self, progress: Progress) -> None:
        cfg = self.cfg
        while self.global_step < cfg.total_steps:
            epsilon = epsilon_at(cfg, self.global_step)
            finished = self.runner.step(epsilon)
            self.global_step += cfg.num_envs
            self._record_episodes(finished, self.global_step, epsilon)
            while self.learner.updates < updates_due(cfg, self.global_step) and len(self.rb) > 0:
                self._learn_once()
            self._maybe_checkpoint()
            self._progress(progress)

    def _run_async(self, progress: Progress) -> None:
        """Actor thread: act, step the envs, add to the replay. This thread: sample + update.

        The actor may run at most `max_lead` gradient steps' worth of agent steps ahead of the
        learner and the learner never runs ahead of `updates_due`, so the ratio of updates to agent
        steps is the synchronous one. The actor acts with its own copy of the online network,
        refreshed after every update (so it is at most one update behind)."""
        import copy

        import torch

        cfg, learner = self.cfg, self.learner
        max_lead = 4
        cond = threading.Condition()
        policy_lock = threading.Lock()
        actor_net = copy.deepcopy(learner.q_network).requires_grad_(False)
        actor_rng = np.random.default_rng(learner.rng.integers(2**63))
        pending: List[Tuple[List[Tuple[float, int]], int, float]] = []
        status: Dict[str, Any] = {"done": False, "stop": False, "error": None, "pause": False, "paused": False}

        def limit() -> int:  # the actor may not step past this until the learner catches up
            return cfg.learning_starts + (learner.updates + max_lead) * cfg.train_frequency

        def policy(states: np.ndarray, epsilon: float) -> np.ndarray:
            n = len(states)
            explore = actor_rng.random(n) < epsilon
            actions = actor_rng.integers(self.num_actions, size=n)
            if not explore.all():
                x = torch.from_numpy(states).to(learner.device)
                with policy_lock, torch.no_grad():
                    greedy = actor_net(x).argmax(1).cpu().numpy()
                actions = np.where(explore, actions, greedy)
            return actions

        self.runner.policy = policy

        def actor() -> None:
            try:
                while True:
                    with cond:
                        while not status["stop"] and self.global_step < cfg.total_steps and (
                                status["pause"] or self.global_step >= limit()):
                            if status["pause"]:  # a checkpoint is being written: the replay must be still
                                status["paused"] = True
                                cond.notify_all()
                            cond.wait()
                        status["paused"] = False
                        if self.global_step >= cfg.total_steps or status["stop"]:
                            break
                        epsilon = epsilon_at(cfg, self.global_step)
                    finished = self.runner.step(epsilon)  # env + replay add: no lock (the buffer is lock-free)
                    with cond:
                        self.global_step += cfg.num_envs
                        if finished:
                            pending.append((finished, self.global_step, epsilon))
                        cond.notify_all()
            except BaseException as e:  # surfaced in the learner thread
                status["error"] = e
            finally:
                with cond:
                    status["done"] = True
                    cond.notify_all()

        thread = threading.Thread(target=actor, name="dqnfast-actor", daemon=True)
        thread.start()
        try:
            while True:
                with cond:
                    while True:
                        must_learn = learner.updates < updates_due(cfg, self.global_step) and len(self.rb) > 0
                        if must_learn or status["done"] or pending:
                            break
                        if not cond.wait(timeout=1.0):  # wake up now and then to refresh the progress bar
                            break
                    ready, pending[:] = list(pending), []
                    done = status["done"]
                for finished, step, epsilon in ready:
                    self._record_episodes(finished, step, epsilon)
                if must_learn:
                    self._learn_once()
                    with policy_lock:
                        actor_net.load_state_dict(learner.q_network.state_dict())
                    with cond:
                        cond.notify_all()
                elif done and not ready:
                    break
                if self.global_step >= self._next_ckpt:
                    with cond:  # pause the actor between two steps (rb.save needs a still replay)
                        status["pause"] = True
                        cond.notify_all()
                        while not status["paused"] and not status["done"]:
                            cond.wait()
                    try:
                        self._maybe_checkpoint()
                    finally:
                        with cond:
                            status["pause"] = False
                            cond.notify_all()
                self._progress(progress)
        finally:
            with cond:
                status["stop"] = True
                cond.notify_all()
            thread.join()
            self.runner.policy = learner.act
        if status["error"] is not None:
            raise status["error"]


# ---------------------------------------------------------------------------------------------------
# learning curve
# ---------------------------------------------------------------------------------------------------
def plot_learning_curve(run_dir: str, title: str = "", window: int = 20) -> Optional[str]:
    """learning_curve.png from episodes.csv: each game's return, a moving average, random play."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps, returns, eps = [], [], []
    with open(os.path.join(run_dir, "episodes.csv"), newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["global_step"]))
            returns.append(float(row["return"]))
            eps.append(float(row["epsilon"]))
    path = os.path.join(run_dir, "learning_curve.png")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if returns:
        s, r = np.asarray(steps), np.asarray(returns)
        ax.scatter(s, r, s=6, alpha=0.35, label="game return")
        if len(r) >= 2:
            w = min(window, len(r))
            avg = np.convolve(r, np.ones(w) / w, mode="valid")
            ax.plot(s[w - 1:], avg, color="C1", lw=2, label=f"mean of last {w}")
        random_play = r[np.asarray(eps) >= 1.0]
        if len(random_play):
            ax.axhline(random_play.mean(), color="gray", ls="--", label=f"random play ({random_play.mean():.2f})")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("game return (unclipped, all lives)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if returns:
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg, preset_name, resume, state = parse_config(sys.argv[1:] if argv is None else argv)
    run_dir = os.path.dirname(os.path.abspath(resume)) if resume else None
    try:
        trainer = Trainer(cfg, preset_name, state, run_dir=run_dir)
    except ValueError as e:  # e.g. a corrupt replay snapshot, or a checkpoint from another game
        print(f"dqnfast train: error: {e}", file=sys.stderr)
        return 2
    c = trainer.global_step
    print(f"dqnfast train: {cfg.env_id}, preset {preset_name}, {cfg.total_steps} steps"
          f"{f' (resuming at {c})' if c else ''}, device {trainer.learner.device}, run dir {trainer.run_dir}", flush=True)
    summary = trainer.run()
    print(f"done: {summary['global_step']} steps, {summary['updates']} updates, {summary['episodes']} games in "
          f"{summary['wall_time_s']:.0f} s ({summary['sps']:.0f} steps/s); checkpoint {summary['checkpoint']}")
    if trainer.recent_returns:
        print(f"mean return of the last {len(trainer.recent_returns)} training games: {np.mean(trainer.recent_returns):.2f}")
    if "eval_returns" in summary:
        r = summary["eval_returns"]
        print(f"evaluation ({len(r)} games, epsilon {cfg.eval_epsilon}): {np.mean(r):.2f} +- {np.std(r):.2f}")
    if summary.get("learning_curve"):
        print(f"learning curve: {summary['learning_curve']}")
    return 130 if summary["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
