"""DRQN: a recurrent Q-network trained on replayed sequences (Hausknecht & Stone 2015).

Import explicitly (``from dqnfast.recurrent import DRQNLearner``): ``import dqnfast`` does not import torch.

    learner = DRQNLearner(num_actions=4, frame_shape=(84, 84), gamma=0.99)
    state = None                                        # the LSTM state, per env; None = zeros
    a, state = learner.act(frame, epsilon, state)      # one (H, W) frame, not a stack
    metrics = learner.update(rb.sample_sequences(32, 8))

The network sees one frame per step, so the LSTM, not a frame stack, carries the history. Updates
unroll the online and the target network over each sequence from a zero state ("bootstrapped
random updates"); the state is reset where an episode starts inside a sequence, steps before the
start (``mask`` False) and the first ``burn_in`` steps carry no loss.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .batch import SequenceBatch
from ._validate import positive_int
from .learner import DQNLearner, QNetwork, epsilon_greedy

LSTMState = Tuple[torch.Tensor, torch.Tensor]


class RecurrentQNetwork(nn.Module):
    """The Nature CNN on a single frame, fc 512, an LSTM, then one Q-value per action.

    ``forward(frames, state=None, starts=None)``: frames uint8 (B, T, H, W), scaled by 1/255 inside;
    state (h, c) of shape (B, hidden) or None for zeros; starts bool (B, T): reset the state before
    step t. Returns Q-values (B, T, num_actions) and the state after the last step.
    """

    def __init__(self, num_actions: int, frame_shape: Sequence[int] = (84, 84), hidden: int = 512) -> None:
        super().__init__()
        cnn = QNetwork(num_actions, stack=1, frame_shape=frame_shape)  # reuse its conv stack and sizing
        self.num_actions, self.frame_shape, self.stack = cnn.num_actions, cnn.frame_shape, 1
        self.hidden = positive_int(hidden, "hidden")
        self.encoder = nn.Sequential(*list(cnn.network.children())[:-1])  # up to fc 512 + ReLU
        self.lstm = nn.LSTMCell(512, self.hidden)
        self.head = nn.Linear(self.hidden, self.num_actions)

    def initial_state(self, batch: int, device: torch.device) -> LSTMState:
        z = torch.zeros(batch, self.hidden, device=device)
        return z, z.clone()

    def forward(self, frames: torch.Tensor, state: Optional[LSTMState] = None,
                starts: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, LSTMState]:
        b, t = frames.shape[:2]
        features = self.encoder(frames.reshape(b * t, 1, *frames.shape[2:]) / 255.0).view(b, t, -1)
        h, c = self.initial_state(b, frames.device) if state is None else state
        q = []
        for k in range(t):
            if starts is not None:
                keep = (~starts[:, k]).float().unsqueeze(1)  # an episode starts here: forget the past
                h, c = h * keep, c * keep
            h, c = self.lstm(features[:, k], (h, c))
            q.append(self.head(h))
        return torch.stack(q, dim=1), (h, c)


class DRQNLearner(DQNLearner):
    """:class:`DQNLearner` with a :class:`RecurrentQNetwork`, acting on single frames with a carried
    LSTM state and learning from :class:`dqnfast.SequenceBatch` es.

    Target for step t of a sequence: ``r_t + gamma * (1 - terminated_t) * Q_target(s_{t+1}, a')`` with
    a' the target's argmax (or the online one's with ``double_dqn``), both networks unrolled over the
    whole sequence. Truncated steps bootstrap. Other options as in DQNLearner, but for ``dueling``,
    ``network`` and ``intensity``, which are the feed-forward network's and update's: it refuses them.
    """

    def __init__(self, num_actions: int, *, frame_shape: Sequence[int] = (84, 84), gamma: float = 0.99,
                 hidden: int = 512, burn_in: int = 0, **kwargs) -> None:
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        burn_in = positive_int(burn_in, "burn_in", minimum=0)
        # DQNLearner's options for its own network and update, which DRQN's would otherwise ignore in silence
        for name, default in (("dueling", False), ("network", "nature"), ("intensity", 0.0)):
            if name in kwargs and kwargs[name] != default:
                raise ValueError(f"{name}={kwargs[name]!r} is an option of the feed-forward DQN learner; "
                                 f"DRQNLearner has its own recurrent network and update")
        self.gamma, self.burn_in, self._hidden = float(gamma), burn_in, positive_int(hidden, "hidden")
        super().__init__(num_actions, frame_shape=frame_shape, stack=1, **kwargs)

    def _make_network(self, num_actions: int, stack: int, frame_shape: Sequence[int]) -> nn.Module:
        return RecurrentQNetwork(num_actions, frame_shape, self._hidden)

    # -- acting --------------------------------------------------------------------------------------
    def _frames_tensor(self, frame: np.ndarray) -> Tuple[torch.Tensor, bool]:
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"frame must be a numpy.ndarray, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise TypeError(f"frame must have dtype uint8, got {frame.dtype}")
        single = frame.shape == tuple(self.frame_shape)
        if not single and frame.shape[1:] != tuple(self.frame_shape):
            raise ValueError(f"frame must have shape {tuple(self.frame_shape)} or (N, *{tuple(self.frame_shape)}), "
                             f"got {frame.shape}")
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        return (x.unsqueeze(0) if single else x).unsqueeze(1), single  # (N, 1, H, W): one time step

    @torch.no_grad()
    def act(self, frame: np.ndarray, epsilon: float, state: Optional[LSTMState] = None
            ) -> Tuple[Union[int, np.ndarray], LSTMState]:
        """Epsilon-greedy action(s) for one frame (H, W) or a batch (N, H, W), and the next LSTM state.
        Pass ``state=None`` at an episode's start (for a batch, zero the rows of envs that restart
        with :meth:`reset_rows`). The state always advances, also on random actions."""
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        x, single = self._frames_tensor(frame)
        q, state = self.q_network(x, state)  # always: the state advances on random actions too
        greedy = q[:, 0].argmax(dim=1).cpu().numpy()
        actions = epsilon_greedy(self.rng, epsilon, self.num_actions, x.shape[0], lambda: greedy)
        return (int(actions[0]) if single else actions), state

    @staticmethod
    def reset_rows(state: Optional[LSTMState], rows: np.ndarray) -> Optional[LSTMState]:
        """The state with the given rows (envs that start a new episode) zeroed."""
        if state is None:
            return None
        keep = torch.ones(state[0].shape[0], 1, device=state[0].device)
        keep[torch.as_tensor(rows, dtype=torch.long, device=state[0].device)] = 0.0
        return state[0] * keep, state[1] * keep

    # -- learning ------------------------------------------------------------------------------------
    def _sequences_to_device(self, seq: SequenceBatch):
        if not isinstance(seq, SequenceBatch):
            raise TypeError(f"batch must be a dqnfast.SequenceBatch, got {type(seq).__name__}")
        if seq.frames.ndim != 4 or seq.frames.shape[2:] != tuple(self.frame_shape):
            raise ValueError(f"sequence frames must have shape (B, T + 1, *{tuple(self.frame_shape)}), "
                             f"got {seq.frames.shape}")
        length = seq.action.shape[1]
        if length <= self.burn_in:
            raise ValueError(f"sequences of length {length} leave no step after burn_in={self.burn_in}")
        nb = self.device.type == "cuda"

        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=nb)

        frames, mask = put(seq.frames), put(seq.mask)
        # frame q is real when step q exists (q < T) or it is the last frame; an episode starts at a
        # real frame whose predecessor is padding
        real = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        starts = real & ~torch.cat([torch.zeros_like(real[:, :1]), real[:, :-1]], dim=1)
        weight = mask.float()
        weight[:, : self.burn_in] = 0.0
        return (frames, starts, put(seq.action).long(), put(seq.reward).float(), put(seq.terminated).float(),
                weight)

    def sequence_targets(self, seq: SequenceBatch) -> np.ndarray:
        """TD targets (B, T) of a sequence batch, as float32 numpy."""
        frames, starts, _, reward, terminated, _ = self._sequences_to_device(seq)
        return self._targets(frames, starts, reward, terminated).float().cpu().numpy()

    @torch.no_grad()
    def _targets(self, frames, starts, reward, terminated) -> torch.Tensor:
        q_target, _ = self.target_network(frames, None, starts)
        nxt = q_target[:, 1:]
        if self.double_dqn:
            q_online, _ = self.q_network(frames, None, starts)
            best = q_online[:, 1:].argmax(dim=2, keepdim=True)
        else:
            best = nxt.argmax(dim=2, keepdim=True)
        return reward + self.gamma * (1.0 - terminated) * nxt.gather(2, best).squeeze(2)

    def update(self, seq: SequenceBatch) -> Dict[str, float]:  # type: ignore[override]
        """One gradient step on a sequence batch; metrics as DQNLearner.update."""
        frames, starts, action, reward, terminated, weight = self._sequences_to_device(seq)
        target = self._targets(frames, starts, reward, terminated)
        q_all, _ = self.q_network(frames, None, starts)
        q = q_all[:, :-1].gather(2, action.unsqueeze(2)).squeeze(2)
        per_step = (F.smooth_l1_loss if self.loss == "huber" else F.mse_loss)(q, target, reduction="none")
        loss = (per_step * weight).sum() / weight.sum().clamp(min=1.0)
        return self.optimizer_step(loss, (q * weight).sum() / weight.sum().clamp(min=1.0))


class RecurrentPolicy:
    """Epsilon-greedy acting for several envs with a DRQN, carrying each env's LSTM state.

    ``policy(states, epsilon)`` takes the (N, stack, H, W) states the trainer builds and acts on their
    newest frame; ``episode_started(i)`` forgets env i's history (call it at every episode start).
    The state advances on every call, random actions included, as the sequences it learns from do.
    """

    def __init__(self, learner: DRQNLearner) -> None:
        self.learner = learner
        self.state: Optional[LSTMState] = None
        self._restart: set = set()

    def episode_started(self, env: int) -> None:
        self._restart.add(env)

    def __call__(self, states: np.ndarray, epsilon: float) -> np.ndarray:
        if self._restart and self.state is not None:
            self.state = DRQNLearner.reset_rows(self.state, np.fromiter(self._restart, np.int64))
        self._restart.clear()
        actions, self.state = self.learner.act(np.ascontiguousarray(states[:, -1]), epsilon, self.state)
        return np.asarray(actions, np.int64).reshape(-1)


def build_learner(cfg, num_actions: int, device=None, seed: Optional[int] = None) -> DQNLearner:
    """The learner a :class:`dqnfast.config.TrainConfig` describes: DQN, or DRQN with ``recurrent``."""
    common = dict(frame_shape=(cfg.frame_size, cfg.frame_size), optimizer=cfg.optimizer,
                  learning_rate=cfg.learning_rate, adam_eps=cfg.adam_eps, loss=cfg.loss,
                  max_grad_norm=cfg.max_grad_norm, target_update_interval=cfg.target_update_interval, tau=cfg.tau,
                  double_dqn=cfg.double_dqn, device=device, seed=seed)
    if getattr(cfg, "recurrent", False):
        return DRQNLearner(num_actions, gamma=cfg.gamma, hidden=cfg.lstm_hidden, burn_in=cfg.burn_in, **common)
    return DQNLearner(num_actions, stack=cfg.stack, dueling=getattr(cfg, "dueling", False),
                      network=getattr(cfg, "network", "nature"),
                      intensity=getattr(cfg, "intensity", 0.0), **common)


def make_policy(learner: DQNLearner):
    """A ``policy(states, epsilon) -> actions`` for the trainer: the learner's own act for DQN, a
    :class:`RecurrentPolicy` (with per-env LSTM state) for DRQN."""
    return RecurrentPolicy(learner) if isinstance(learner, DRQNLearner) else learner.act
