"""Training hyperparameters: one dataclass, a docstring per field, and the presets.

``nature`` is the DQN of Mnih et al. (2015); ``demo`` is a short Breakout run tuned to show learning
on a laptop CPU in about ten minutes (its curve: docs/training.md, "Measured: the demo learns Breakout");
``course`` follows the course notebook this project grew from where it is explicit, and Nature where it is silent.
Every field is also a command-line option of ``dqnfast train`` (``--total-steps 50000`` ...): the
field docstrings are its ``--help``, and the ``Literal`` types its choices.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Tuple

from ._validate import positive_int
from .learner_options import Loss, Network, Optimizer

Interpolation = Literal["nearest", "area"]
Gray = Literal["luma", "mean"]
PresetName = Literal["demo", "nature", "course", "gpu", "atari100k"]
UpdateMode = Literal["auto", "eager", "compile", "graph"]
ResetLayers = Literal["head", "all"]
ReplayDevice = Literal["cpu", "cuda"]

INTERPOLATIONS: Tuple[str, ...] = typing.get_args(Interpolation)


@dataclass
class TrainConfig:
    """Hyperparameters of ``dqnfast train``; defaults are the Nature DQN (the ``nature`` preset)."""

    # --- experiment -------------------------------------------------------------------------------
    env_id: str = "ALE/Breakout-v5"
    """Gymnasium id of the Atari game (ale-py ROMs)"""
    seed: int = 1
    """seed of the environments, the network initialisation, epsilon-greedy and the replay sampler"""
    total_steps: int = 10_000_000
    """agent steps to train for, summed over environments (one agent step = `frame_skip` frames; 10M steps = 40M frames)"""
    num_envs: int = 1
    """environments stepped together (actions chosen in one batched forward pass)"""
    env_workers: int = 0
    """worker processes stepping the environments in parallel (1..num_envs, env i on worker i % W); 0 steps them in the trainer's process"""

    # --- preprocessing (dqnfast.wrappers.make_atari_env) -----------------------------------------
    frame_size: int = 84
    """side of the square grayscale frame the network sees (84 in the paper, 80 in the course seed)"""
    crop: Optional[Tuple[int, int, int, int]] = None
    """(top, bottom, left, right) pixel bounds cut from the 210x160 screen before resizing; None keeps all"""
    interp: Interpolation = "nearest"
    """resize interpolation: nearest (pixel-centre sampling) | area (box average)"""
    gray: Gray = "luma"
    """grayscale: luma (ALE's own gray screen, as gymnasium and the Nature paper) | mean of the R, G, B channels"""
    stack: int = 4
    """frames stacked into one state (the replay stores each frame once and stacks at sample time)"""
    frame_skip: int = 4
    """emulator frames per agent step (action repeated, max over the last two frames)"""
    noop_max: int = 30
    """at most this many no-op actions at the start of each game (random starting states)"""
    fire_reset: bool = True
    """press FIRE after each reset (and after each lost life with episodic_life) so the ball is in play"""
    episodic_life: bool = True
    """a lost life ends the learning episode (terminated=True) while the game goes on"""
    clip_rewards: bool = True
    """learn from sign(reward) in {-1, 0, 1}; returns are always logged unclipped"""

    # --- replay -----------------------------------------------------------------------------------
    buffer_size: int = 1_000_000
    """replay capacity in frames (about one transition each)"""
    batch_size: int = 32
    """transitions per gradient step"""
    learning_starts: int = 50_000
    """agent steps of uniformly random play that fill the replay before learning starts"""
    train_frequency: int = 4
    """agent steps per gradient step (when replay_ratio is not given)"""
    replay_ratio: Optional[float] = None
    """gradient steps per agent step after learning_starts, any positive float (0.25: one every 4 steps, 2: two per step); None: 1 / train_frequency"""
    n_step: int = 1
    """n-step returns, computed by the replay at sample time (1 is the Nature DQN's one-step target)"""
    prioritized: bool = False
    """prioritized replay (Schaul et al. 2016): sample in proportion to |TD error|^priority_alpha, with importance weights"""
    priority_alpha: float = 0.5
    """how much priorities count (0 is uniform; prioritized only)"""
    priority_beta: float = 0.4
    """importance-weight exponent at the first update, annealed linearly to 1 at the last (prioritized only)"""
    priority_eps: float = 1e-6
    """added to |TD error| so no transition gets priority 0 (prioritized only)"""
    reset_interval: int = 0
    """gradient steps between periodic resets of the network (SR-SPR, BBF); 0 never resets"""
    reset_layers: ResetLayers = "head"
    """head: re-initialise the fully connected layers | all: also shrink-and-perturb the conv layers"""
    reset_shrink: float = 0.5
    """with reset_layers all: conv weights become reset_shrink * weights + (1 - reset_shrink) * a fresh init"""
    shift: int = 0
    """DrQ's random-shift augmentation: sampled states are padded by this many pixels (edges repeated) and cropped back at a random offset; 0 is off"""
    intensity: float = 0.0
    """intensity augmentation (SPR; Dopamine's DrQ and DrQ(eps): 0.05): in each update every sampled state is multiplied by 1 + intensity * clip(N(0, 1), -2, 2), one draw a state; 0 is off"""
    save_replay: bool = True
    """write the replay beside each checkpoint (replay-STEP.bin) so --resume continues with it; else resume refills it"""

    # --- learner ----------------------------------------------------------------------------------
    gamma: float = 0.99
    """discount factor"""
    optimizer: Optimizer = "rmsprop"
    """rmsprop (the paper's: decay 0.95, min squared gradient 0.01) | adam"""
    learning_rate: float = 2.5e-4
    """optimizer step size (2.5e-4 with RMSProp, 1e-4 with Adam)"""
    adam_eps: float = 1.5e-4
    """Adam's epsilon (only with optimizer=adam)"""
    loss: Loss = "huber"
    """huber (the paper's error clipping) | mse"""
    max_grad_norm: Optional[float] = 10.0
    """clip the global gradient norm to this value; None disables clipping"""
    target_update_interval: int = 10_000
    """gradient steps between target-network updates"""
    tau: float = 1.0
    """target <- tau * online + (1 - tau) * target at each target update; 1.0 is the hard copy"""
    double_dqn: bool = False
    """Double DQN targets: the online network picks a', the target network evaluates it"""
    dueling: bool = False
    """dueling head (Wang et al. 2016): value and advantage streams, Q = V + A - mean(A)"""
    network: Network = "nature"
    """nature: the Nature CNN (convs without padding, 7x7x64 features at 84x84; with dueling, a 512-unit layer per stream) | dopamine: the network of Dopamine's DrQ(eps) and DER (Flax's 'SAME' padding, 11x11x64 features at 84x84; with dueling, one shared 512-unit layer; Glorot init, zero biases), about 1.5x the work"""
    recurrent: bool = False
    """DRQN: the Nature CNN on one frame then an LSTM, trained on replayed sequences (stack is then 1)"""
    sequence_length: int = 8
    """steps per replayed sequence (recurrent only)"""
    lstm_hidden: int = 512
    """LSTM units (recurrent only)"""
    burn_in: int = 0
    """leading steps of each sequence that only warm up the LSTM state, without loss (recurrent only)"""
    update_mode: UpdateMode = "auto"
    """how a gradient step runs: eager | compile (torch.compile) | graph (one captured CUDA graph); auto: graph on CUDA, eager on CPU"""
    bf16: bool = False
    """run the network passes of each update under bfloat16 autocast (update_mode compile or graph)"""

    # --- exploration ------------------------------------------------------------------------------
    start_epsilon: float = 1.0
    """epsilon at step 0"""
    end_epsilon: float = 0.1
    """epsilon after exploration_steps, kept constant from then on"""
    exploration_steps: int = 1_000_000
    """agent steps over which epsilon falls linearly from start_epsilon to end_epsilon"""
    exploration_after_warmup: bool = False
    """count exploration_steps from learning_starts, so epsilon falls from start_epsilon when the
    random warm-up ends (Dopamine's linearly_decaying_epsilon, as DrQ(eps) runs it); False: from step 0
    (Nature), so the warm-up uses up part of the decay"""

    # --- evaluation at the end of training ------------------------------------------------------
    eval_episodes: int = 10
    """real games (all lives, unclipped score) played at the end with eval_epsilon; 0 skips the evaluation"""
    eval_epsilon: float = 0.05
    """epsilon of the final evaluation (and the default of `dqnfast evaluate`)"""

    # --- system -----------------------------------------------------------------------------------
    device: str = "auto"
    """auto (CUDA when available, else CPU) | cpu | cuda | cuda:N"""
    torch_threads: int = 0
    """intra-op threads for torch on CPU; 0 lets torch decide"""
    async_actor: bool = False
    """step the environments in an actor thread beside the learner (same updates per step, more steps/s)"""
    actor_sync_interval: int = 1
    """gradient steps between refreshes of the async actor's copy of the online network"""
    ray: str = ""
    """run the actors on Ray: local (start Ray here) | auto (join this machine's cluster) | HOST:PORT; empty: no Ray"""
    ray_actors: int = 2
    """Ray actors (Ape-X: actor i explores with epsilon 0.4^(1 + 7 i / (N - 1)) instead of the schedule)"""
    envs_per_actor: int = 4
    """envs each Ray actor steps; the replay has ray_actors * envs_per_actor streams"""
    ray_weights_interval: int = 100
    """gradient steps between weight broadcasts to the Ray actors (through Ray's object store)"""
    replay_device: ReplayDevice = "cpu"
    """where sampled batches are assembled: cpu (the native buffer) | cuda (frames mirrored on the GPU, DeviceReplayBuffer)"""
    max_seconds: float = 0.0
    """stop training after this much wall-clock time (then checkpoint and evaluate as at the end); 0: no limit"""

    # --- logging and checkpoints ------------------------------------------------------------------
    run_dir: str = "runs"
    """parent folder of the run folders (CSV, TensorBoard events, learning curve, checkpoint)"""
    run_name: str = ""
    """run folder name; empty: {env}__{preset}__s{seed}__{time}"""
    checkpoint_interval: int = 100_000
    """agent steps between checkpoints (one more is written at the end); 0 writes only the final one"""
    log_interval: int = 100
    """gradient steps between loss/SPS records in the logs"""
    tensorboard: bool = True
    """write TensorBoard event files (charts/episodic_return, losses/td_loss, charts/SPS, ...)"""
    progress: bool = True
    """show a progress bar (steps, SPS, epsilon, last returns)"""

    # ------------------------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Raise ValueError/TypeError naming the first bad field; returns self."""
        hints = typing.get_type_hints(TrainConfig)
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name])
        for name in ("total_steps", "num_envs", "frame_size", "stack", "frame_skip", "buffer_size", "batch_size",
                     "train_frequency", "n_step", "target_update_interval", "log_interval", "sequence_length",
                     "lstm_hidden", "actor_sync_interval", "ray_actors", "envs_per_actor", "ray_weights_interval"):
            positive_int(getattr(self, name), name)
        if self.recurrent and self.async_actor:
            raise ValueError("recurrent cannot be combined with async_actor (the actor's LSTM state is not shared yet)")
        if self.recurrent and self.n_step != 1:
            raise ValueError("recurrent learns from one-step targets along each sequence: use n_step=1")
        if self.burn_in < 0 or (self.recurrent and self.burn_in >= self.sequence_length):
            raise ValueError(f"burn_in must be in [0, sequence_length), got {self.burn_in}")
        for name in ("noop_max", "learning_starts", "exploration_steps", "eval_episodes", "checkpoint_interval",
                     "torch_threads", "seed", "env_workers"):
            positive_int(getattr(self, name), name, minimum=0)
        if not self.env_id:
            raise ValueError("env_id must be a non-empty string")
        if self.frame_size < 36:
            raise ValueError(f"frame_size must be at least 36 (the Nature CNN's smallest input), got {self.frame_size}")
        if self.crop is not None:
            if len(self.crop) != 4 or any(isinstance(c, bool) or not isinstance(c, int) for c in self.crop):
                raise ValueError(f"crop must be four ints (top, bottom, left, right), got {self.crop!r}")
            top, bottom, left, right = self.crop
            if not (0 <= top < bottom and 0 <= left < right):
                raise ValueError(f"crop must satisfy 0 <= top < bottom and 0 <= left < right, got {self.crop}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps must be positive, got {self.adam_eps}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive (or None), got {self.max_grad_norm}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        for name in ("start_epsilon", "end_epsilon", "eval_epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.env_workers > self.num_envs:
            raise ValueError(f"env_workers must be at most num_envs={self.num_envs} (each worker steps at least one "
                             f"env), got {self.env_workers}")
        if self.buffer_size < self.num_envs * (self.stack + 1):
            raise ValueError(f"buffer_size must be at least num_envs * (stack + 1) = {self.num_envs * (self.stack + 1)}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.recurrent and self.update_mode in ("compile", "graph"):
            raise ValueError(f"update_mode {self.update_mode!r} is for the DQN update; recurrent uses eager")
        if self.recurrent and self.dueling:
            raise ValueError("dueling is a head of the feed-forward Q-network; recurrent has its own")
        if self.recurrent and self.network != "nature":
            raise ValueError(f"network {self.network!r} is a feed-forward Q-network; recurrent has its own")
        if self.recurrent and self.replay_device != "cpu":
            raise ValueError("replay_device cuda samples transitions; recurrent samples sequences: use replay_device cpu")
        if self.ray and (self.recurrent or self.async_actor or self.env_workers or self.replay_device != "cpu"):
            raise ValueError("ray runs the actors on Ray: it cannot be combined with recurrent, async_actor, "
                             "env_workers or replay_device cuda")
        if self.ray and self.ray not in ("local", "auto") and ":" not in self.ray:
            raise ValueError(f"ray must be local, auto or HOST:PORT, got {self.ray!r}")
        if self.bf16 and self.update_mode == "eager":
            raise ValueError("bf16 needs update_mode compile, graph or auto")
        if self.replay_ratio is not None and not (math.isfinite(self.replay_ratio) and 0 < self.replay_ratio <= 64):
            raise ValueError(f"replay_ratio must be in (0, 64] gradient steps per agent step, got {self.replay_ratio}")
        if not 0 <= self.shift < self.frame_size:
            raise ValueError(f"shift must be in [0, frame_size={self.frame_size}), got {self.shift}")
        if not (math.isfinite(self.intensity) and 0.0 <= self.intensity < 0.5):
            raise ValueError(f"intensity must be in [0, 0.5), got {self.intensity}")
        if self.intensity and (self.recurrent or self.update_mode == "graph"):
            raise ValueError("intensity augments the DQN update's batches with factors drawn on the host: it cannot "
                             "be combined with recurrent or update_mode graph")
        if self.shift and (self.recurrent or self.replay_device != "cpu"):
            raise ValueError("shift augments sampled transitions on the host: it cannot be combined with recurrent "
                             "or replay_device cuda")
        for name in ("priority_alpha", "priority_beta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not (math.isfinite(self.priority_eps) and self.priority_eps > 0):
            raise ValueError(f"priority_eps must be positive, got {self.priority_eps}")
        if self.prioritized and (self.recurrent or self.ray or self.replay_device != "cpu"
                                 or self.update_mode == "graph"):
            raise ValueError("prioritized samples from the host PrioritizedReplayBuffer with the eager or compiled "
                             "update: it cannot be combined with recurrent, ray, replay_device cuda or update_mode graph")
        if not 0.0 <= self.reset_shrink <= 1.0:
            raise ValueError(f"reset_shrink must be in [0, 1], got {self.reset_shrink}")
        if self.reset_interval < 0:
            raise ValueError(f"reset_interval must be non-negative, got {self.reset_interval}")
        if self.reset_interval and (self.recurrent or self.update_mode == "graph"):
            raise ValueError("reset_interval resets the DQN learner's layers between eager or compiled updates: it "
                             "cannot be combined with recurrent or update_mode graph (the graph holds the optimizer state)")
        if not self.max_seconds >= 0:
            raise ValueError(f"max_seconds must be >= 0, got {self.max_seconds}")
        return self

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        """The config a checkpoint stored with ``dataclasses.asdict`` (unknown keys ignored, crop a tuple again)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        if values.get("crop") is not None:
            values["crop"] = tuple(values["crop"])
        return cls(**values)

    @property
    def replay_streams(self) -> int:
        """Env streams of the replay: one per env, or per Ray actor env with ``ray``."""
        return self.ray_actors * self.envs_per_actor if self.ray else self.num_envs

    @property
    def replay_stack(self) -> int:
        """Frames per replayed state: the frame stack, or 1 for DRQN (its LSTM carries the history)."""
        return 1 if self.recurrent else self.stack

    @property
    def game_step_cap(self) -> int:
        """An evaluation game's cap in agent steps: ``GAME_FRAME_CAP`` frames at this frame skip (27k at 4)."""
        return GAME_FRAME_CAP // self.frame_skip


def _check_type(name: str, value: Any, hint: Any) -> None:
    """TypeError (ValueError for a Literal) unless ``value`` fits the field's resolved type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{name} must be one of {args}, got {value!r}")
    elif hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {value!r}")
    elif origin is tuple:  # crop: its shape and bounds are checked in validate()
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{name} must be a tuple, got {value!r}")


# DrQ(ε)'s epsilon_eval (Dopamine's; Agarwal et al. 2021), which its published Atari 100k figures were
# measured with instead of the protocol's 0.05: the `atari100k` preset evaluates so, and
# benchmarks/protocol.py names it when it lists a batch's departures from the protocol.
DRQ_EPS_EVAL_EPSILON = 0.001

# The usual cap on one evaluation game: 108k frames, 30 minutes of play at 60 Hz (Machado et al.
# 2018; the Atari 100k protocol's too). In agent steps it depends on the frame skip: 27k at 4.
GAME_FRAME_CAP = 108_000

PRESETS: Dict[str, Dict[str, Any]] = {
    # Mnih et al. 2015 (Nature), with the CleanRL step budget: 10M agent steps = 40M frames.
    "nature": {},
    # Breakout on a laptop CPU in about ten minutes (measured in docs/training.md, "Measured: the demo learns Breakout"). Everything that
    # differs from Nature trades asymptotic quality for early learning per CPU-second:
    "demo": dict(
        total_steps=100_000,          # ~10 min on a 2-core laptop-class CPU (measured in docs/training.md)
        frame_size=52,                # ~3x cheaper gradient steps than 84x84 ...
        crop=(32, 196, 8, 152),       # ... affordable because the score line and side walls are cut first
        interp="area",                # the 2-pixel ball survives a ~3x shrink as a grey dot
        buffer_size=100_000,          # the whole run fits: nothing is evicted
        learning_starts=5_000,
        n_step=3,                     # three-step returns from the replay
        optimizer="adam",
        learning_rate=2.5e-4,         # with 1e-4 and target every 1,000 updates, no learning by 100k steps
        target_update_interval=500,   # = 2,000 agent steps
        end_epsilon=0.01,
        exploration_steps=25_000,
        double_dqn=True,
        eval_episodes=5,
        checkpoint_interval=25_000,
        torch_threads=1,              # one core learns, the other runs the emulator (and stays usable)
    ),
    # A GPU box (one GPU, 16 cores): 16 envs on 16 worker processes, an actor thread beside the
    # learner, the update as one CUDA graph (update_mode auto). Nature's replay ratio (a batch of 32
    # every 4 agent steps) with the faster-learning choices of the demo preset. Not yet measured on
    # a GPU: tools/device_check.py trains it for a few minutes and reports speed and score.
    "gpu": dict(
        num_envs=16,
        env_workers=16,
        async_actor=True,
        n_step=3,
        optimizer="adam",
        learning_rate=1e-4,
        target_update_interval=2_000,  # = 8,000 agent steps
        learning_starts=20_000,
        exploration_steps=250_000,
        end_epsilon=0.01,
        double_dqn=True,
        actor_sync_interval=4,        # the actor's network copy follows every 4 updates
        checkpoint_interval=1_000_000,
    ),
    # The Atari 100k benchmark (100k agent steps = 400k frames), with the settings DrQ(eps) uses on
    # all 26 games (google/dopamine labs/atari_100k/configs/DrQ_eps.gin; Agarwal et al. 2021), so
    # nothing here is tuned to one game. One difference for the CPU hour: one update per 4 agent steps
    # instead of one per step (replay_ratio 0.25, Nature's ratio); and two that follow from it, each of
    # which lifted Breakout's training scores at 80-90k steps from about 2.5 to about 7 on its own
    # (docs/benchmarks.md, "what held the preset back"): Nature's step size 2.5e-4 instead of
    # DrQ(eps)'s 1e-4 (a quarter of DrQ(eps)'s updates), and FIRE pressed by the env after a reset
    # and a lost life (a protocol difference, listed beside the figures); the rest is DrQ(eps)'s but
    # for two things found missing on 2026-12-07. Its network: Dopamine's Flax convs pad 'SAME', so
    # DrQ(eps)'s 512-unit layer sees 7,744 features where the Nature CNN's sees 3,136 (`--network
    # dopamine`, dqnfast/dopamine_network.py): Breakout IQM 21.62 over 5 seeds against 17.26, but on
    # the first 6 other games, ahead on 3, a lower human-normalised IQM (0.052 against 0.064;
    # docs/benchmarks.md), so left off. And its intensity augmentation (Dopamine's DrQ(eps) multiplies
    # each sampled state by 1 + 0.05 clip(N(0, 1), -2, 2)): `--intensity 0.05` adds it, left off:
    # with twice the updates in bf16 it lifted Breakout (IQM 19.93, 6 seeds) but scored more than the
    # preset on only 2 of the first 6 other games; alone, at the preset's updates, it scored a
    # Breakout IQM of 15.61 over 5 seeds, below the preset's 17.26 (docs/benchmarks.md).
    # Until 2026-12-07 the frames were 64x64 (shift 3), for a 2.2-2.5x cheaper seed: KungFuMaster
    # scored 0 there and 8,345 at 84x84, RoadRunner 1,015 and 7,470, Breakout an IQM of 11.84 over 5
    # seeds and 17.26 (docs/benchmarks.md, "where the preset learned nothing"). Across all 26 games
    # the two sizes cannot be told apart (84x84 more on 15, less on 9; human-normalised IQM 0.116
    # against 0.102, mean 0.265 against 0.296; every gap inside what the seeds alone make), so the
    # frames are the published agents' own, with Breakout's 5-seed gain.
    "atari100k": dict(
        total_steps=100_000,
        frame_size=84,                # DrQ(eps)'s (Dopamine's 84x84 by area of the whole gray screen)
        crop=None,                    # the whole screen, as the published agents see it
        interp="area",
        fire_reset=True,              # the published agents press FIRE themselves (a listed difference)
        buffer_size=100_000,          # everything is kept (DrQ(eps): 1M as "unbounded")
        learning_starts=1_600,
        replay_ratio=0.25,            # update_period 1 in DrQ(eps): 100k updates take hours on one CPU core (2.5-3.6 h at 64x64)
        n_step=10,                    # update_horizon 10
        target_update_interval=1,     # target_update_period 1: the target is the online net, run once (target_is_online)
        optimizer="adam",
        learning_rate=2.5e-4,         # 1e-4 in DrQ(eps), with 4x the updates; 2.5e-4 is Nature's (and Dopamine DQN's)
        adam_eps=1.5e-4,
        end_epsilon=0.01,             # epsilon_train
        exploration_steps=5_000,      # epsilon_decay_period
        eval_epsilon=DRQ_EPS_EVAL_EPSILON,  # epsilon_eval
        double_dqn=True,
        dueling=True,
        shift=4,                      # DrQ's random shift
        update_mode="compile",        # torch.compile: 1.2-1.4x faster updates on a CPU, same weights (bench update)
        eval_episodes=0,              # the runner (dqnfast bench learning) plays the 100 evaluation games
        checkpoint_interval=25_000,
        torch_threads=1,
    ),
    # The course notebook this project grew from, where it is explicit; Nature where it is silent.
    "course": dict(
        crop=(31, 195, 0, 160),       # rows 31-195: the score line and the space under the paddle go
        frame_size=80,                # 80x80 ...
        interp="nearest",             # ... with nearest-neighbour resizing
        gray="mean",                  # gray = the mean of the colour channels, not luma
        train_frequency=1,            # a gradient step on every agent step
        target_update_interval=100,   # the target network is a copy made every 100 steps
        loss="mse",                   # the squared TD error
    ),
}

DEFAULT_PRESET: PresetName = "demo"
assert set(PRESETS) == set(typing.get_args(PresetName)), "PresetName must list the presets"


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset (one of :data:`PRESETS`: ``demo``, ``nature``, ``course``, ``gpu``, ``atari100k``)
    with ``overrides`` applied, validated.

    ``recurrent=True`` switches a preset's n-step returns off unless ``n_step`` is given too: DRQN
    learns from one-step targets along its sequences."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    if overrides.get("recurrent") and "n_step" not in overrides:
        values["n_step"] = 1
    return TrainConfig(**values).validate()
