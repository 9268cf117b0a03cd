"""The DQN learner: the Nature CNN Q-network and the update rule, as a class tests can drive.

Import explicitly (``from dqnfast.learner import DQNLearner``): ``import dqnfast`` does not import torch.

    learner = DQNLearner(num_actions=4, frame_shape=(84, 84), stack=4)
    a = learner.act(rb.stacked(env), epsilon)     # epsilon-greedy action for one state
    metrics = learner.update(rb.sample(32))        # one gradient step on a replay batch

Batches arrive as numpy arrays (a :class:`dqnfast.Batch`); they are copied to the device as uint8
(four times fewer bytes than float32) and converted there. On CUDA the copies are non-blocking;
they overlap with compute when the batch arrays live in pinned memory (:meth:`DQNLearner.empty_batch`).
A shared-frames batch (``empty_batch(B, shared_frames=True)``, one-step replay) crosses as one
(B, stack + 1, H, W) array, stack + 1 frames per row instead of 2 * stack.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import network_input, positive_int
from .batch import Batch, empty_batch, shared_frames
from .dopamine_network import DopamineQNetwork
from .learner_options import LOSSES, NETWORKS, OPTIMIZERS


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class QNetwork(nn.Module):
    """The Nature DQN CNN (Mnih et al. 2015): one Q-value per action.

    conv 32 8x8 stride 4 -> conv 64 4x4 stride 2 -> conv 64 3x3 stride 1 -> fc 512 -> num_actions,
    ReLU between layers. Input: uint8 (B, stack, H, W); ``forward`` scales it by 1/255. The size of
    the flattened conv output is computed from ``frame_shape``, so any frame of at least 36x36
    works (84x84 as in the paper, 80x80 as in the course seed, smaller for the CPU demo).

    ``dueling=True`` (Wang et al. 2016): after the conv stack, two fc 512 streams, a value V(s) and
    advantages A(s, a), combined as ``Q = V + A - mean_a A`` so the advantages have zero mean over
    actions. Then ``network`` is the conv stack alone and ``value`` / ``advantage`` the streams.
    """

    def __init__(self, num_actions: int, stack: int = 4, frame_shape: Sequence[int] = (84, 84),
                 dueling: bool = False) -> None:
        super().__init__()
        num_actions, stack, (h, w) = network_input(num_actions, stack, frame_shape)
        # spatial size after each conv; each must be at least 1
        sizes = [(h, w)]
        for k, s in ((8, 4), (4, 2), (3, 1)):
            sizes.append((_conv_out(sizes[-1][0], k, s), _conv_out(sizes[-1][1], k, s)))
        if min(min(hw) for hw in sizes[1:]) < 1:
            raise ValueError(f"frame_shape {(h, w)} is too small for the Nature CNN: each side must be at least 36")
        flat = 64 * sizes[-1][0] * sizes[-1][1]
        self.num_actions, self.stack, self.frame_shape = num_actions, stack, (h, w)
        self.dueling = bool(dueling)
        convs = [nn.Conv2d(stack, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                 nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten()]
        if not self.dueling:  # (one Sequential, as checkpoints of the plain network have always stored it)
            self.network = nn.Sequential(*convs, nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, num_actions))
            return
        self.network = nn.Sequential(*convs)
        self.value = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, 1))
        self.advantage = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, num_actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dueling:
            return self.network(x / 255.0)
        features = self.network(x / 255.0)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


def make_q_network(network: str, num_actions: int, stack: int = 4, frame_shape: Sequence[int] = (84, 84),
                   dueling: bool = False) -> nn.Module:
    """The Q-network ``network`` names: ``nature`` (:class:`QNetwork`) or ``dopamine``
    (:class:`dqnfast.dopamine_network.DopamineQNetwork`)."""
    if network == "nature":
        return QNetwork(num_actions, stack, frame_shape, dueling=dueling)
    if network == "dopamine":
        return DopamineQNetwork(num_actions, stack, frame_shape, dueling=dueling)
    raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")


def epsilon_greedy(rng: np.random.Generator, epsilon: float, num_actions: int, n: int,
                   greedy: Callable[[], np.ndarray]) -> np.ndarray:
    """(n,) int64 actions: each one uniformly random with probability ``epsilon``, else greedy.

    The draws come in a fixed order (n uniforms, then n random actions) whatever epsilon is, so a
    seeded run is reproducible; ``greedy()`` (the forward pass) is called only when some action
    is greedy, which skips it during the all-random warm-up."""
    explore = rng.random(n) < epsilon
    random_actions = rng.integers(num_actions, size=n)
    if explore.all():
        return random_actions.astype(np.int64)
    return np.where(explore, random_actions, greedy()).astype(np.int64)


def default_device() -> torch.device:
    """CUDA when available, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DQNLearner:
    """Online and target Q-networks, the optimizer, epsilon-greedy acting and the DQN update.

    Target: ``r + discount * (1 - terminated) * max_a' Q_target(s', a')`` with ``discount`` taken from
    the batch: gamma for one-step transitions, gamma^m for the replay's n-step returns (so gamma and
    n live in one place, the ReplayBuffer). Only ``terminated`` stops bootstrapping: a truncated
    transition (time limit) bootstraps like an ongoing one. With
    ``double_dqn`` the online network picks ``a'`` and the target network evaluates it.
    Every ``target_update_interval`` updates the target moves to ``tau * online + (1 - tau) * target``
    (``tau = 1``: the hard copy of the Nature paper; ``tau < 1`` with interval 1: Polyak averaging).

    ``network`` picks the Q-network (:data:`NETWORKS`): ``nature``, the Nature CNN (:class:`QNetwork`),
    or ``dopamine``, the one Dopamine's DrQ(ε) and DER ran with
    (:class:`dqnfast.dopamine_network.DopamineQNetwork`: 'SAME' padding, a shared dueling layer,
    Glorot init).

    ``intensity`` > 0 adds the intensity augmentation of SPR and of Dopamine's DrQ and DrQ(ε) to
    every update: each sampled state's pixels (all its stacked frames), scaled to [0, 1], are
    multiplied by ``1 + intensity * clip(z, -2, 2)``, z standard normal, one draw per state and
    independent draws for ``obs`` and ``next_obs`` (as Dopamine's ``_intensity_aug``, scale 0.05).
    The draws come from the learner's own generator, on the host; acting and :meth:`targets` see
    the frames as they are.
    """

    def __init__(
        self,
        num_actions: int,
        *,
        frame_shape: Sequence[int] = (84, 84),
        stack: int = 4,
        optimizer: str = "adam",
        learning_rate: float = 1e-4,
        adam_eps: float = 1.5e-4,
        loss: str = "huber",
        max_grad_norm: Optional[float] = 10.0,
        target_update_interval: int = 10_000,
        tau: float = 1.0,
        double_dqn: bool = False,
        dueling: bool = False,
        network: str = "nature",
        intensity: float = 0.0,
        device: Union[str, torch.device, None] = None,
        seed: Optional[int] = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if max_grad_norm is not None and not float(max_grad_norm) > 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
        if not 0.0 < float(tau) <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        if not 0.0 <= float(intensity) < 0.5:  # (the factor 1 + intensity * [-2, 2] stays positive)
            raise ValueError(f"intensity must be in [0, 0.5), got {intensity}")
        self.target_update_interval = positive_int(target_update_interval, "target_update_interval")
        self.device = default_device() if device is None else torch.device(device)
        self.loss, self.tau, self.double_dqn = loss, float(tau), bool(double_dqn)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.dueling, self.network_name = bool(dueling), network
        if seed is not None:
            torch.manual_seed(seed)
        self.q_network = self._make_network(num_actions, stack, frame_shape).to(self.device)
        self.target_network = copy.deepcopy(self.q_network)
        self.target_network.requires_grad_(False)
        self.target_network.eval()
        params = self.q_network.parameters()
        if optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=learning_rate, eps=adam_eps)
        else:  # the Nature paper's RMSProp: decay 0.95, min squared gradient 0.01, centered
            self.optimizer = torch.optim.RMSprop(params, lr=learning_rate, alpha=0.95, eps=0.01, centered=True)
        self.num_actions = self.q_network.num_actions
        self.stack, self.frame_shape = self.q_network.stack, self.q_network.frame_shape
        self.updates = 0  # gradient steps taken so far
        self.rng = np.random.default_rng(seed)  # epsilon-greedy draws
        self.intensity = float(intensity)
        # the augmentation's draws: a stream of their own, so acting draws the same with it on or off
        self.augment_rng = np.random.default_rng(None if seed is None else [seed, 1])

    def _make_network(self, num_actions: int, stack: int, frame_shape: Sequence[int]) -> nn.Module:
        """The online network (the target is a copy); subclasses (DRQN) swap in their own."""
        return make_q_network(self.network_name, num_actions, stack, frame_shape, dueling=self.dueling)

    # -- acting --------------------------------------------------------------------------------------
    def _state_tensor(self, state: np.ndarray) -> Tuple[torch.Tensor, bool]:
        if not isinstance(state, np.ndarray):
            raise TypeError(f"state must be a numpy.ndarray, got {type(state).__name__}")
        if state.dtype != np.uint8:
            raise TypeError(f"state must have dtype uint8, got {state.dtype}")
        expected = (self.stack, *self.frame_shape)
        single = state.shape == expected
        if not single and state.shape[1:] != expected:
            raise ValueError(f"state must have shape {expected} or (N, *{expected}), got {state.shape}")
        x = torch.from_numpy(np.ascontiguousarray(state)).to(self.device)
        return (x.unsqueeze(0) if single else x), single

    @torch.no_grad()
    def q_values(self, state: np.ndarray) -> np.ndarray:
        """Online Q-values for one state (stack, H, W) -> (A,) or a batch (N, stack, H, W) -> (N, A)."""
        x, single = self._state_tensor(state)
        q = self.q_network(x).float().cpu().numpy()
        return q[0] if single else q

    def act(self, state: np.ndarray, epsilon: float, *, network: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
            rng: Optional[np.random.Generator] = None) -> Union[int, np.ndarray]:
        """Epsilon-greedy action(s): an int for one state, an int64 array for a batch of states.

        ``network`` and ``rng`` replace the online network and this learner's generator, for an actor
        that acts with its own copy of the network (the trainer's async actor)."""
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        x, single = self._state_tensor(state)
        net = self.q_network if network is None else network

        def greedy() -> np.ndarray:
            with torch.no_grad():
                return net(x).argmax(dim=1).cpu().numpy()

        actions = epsilon_greedy(self.rng if rng is None else rng, epsilon, self.num_actions, x.shape[0], greedy)
        return int(actions[0]) if single else actions

    # -- learning ------------------------------------------------------------------------------------
    def empty_batch(self, batch_size: int, shared_frames: bool = False) -> Batch:
        """Reusable batch arrays for ``rb.sample(B, out=...)``: numpy views of pinned host memory
        when the learner runs on CUDA (so the host-to-device copies are truly asynchronous), plain
        numpy arrays otherwise.

        ``shared_frames=True`` (one-step replay only): obs and next_obs are the views [:, :stack] and
        [:, 1:] of one (B, stack + 1, H, W) array (see :class:`dqnfast.Batch`): sampling writes
        stack + 1 frames per row instead of 2 * stack, and :meth:`update` moves that one array to
        the device."""
        n = positive_int(batch_size, "batch_size")
        pin = self.device.type == "cuda"

        def alloc(shape, dtype) -> np.ndarray:  # numpy views of (pinned, on CUDA) torch memory
            t = torch.from_numpy(np.empty(0, dtype)).new_empty(shape)
            return (t.pin_memory() if pin else t).numpy()

        return empty_batch(n, self.stack, self.frame_shape, bool(shared_frames), alloc=alloc)

    # -- the update's parts: update() is made of them, and so are the compiled and CUDA-graph steps
    #    of dqnfast.fast_update (a stated interface: change them together) --------------------------
    def batch_tensors(self, batch: Batch) -> Tuple[torch.Tensor, ...]:
        """``(obs, action, reward, next_obs, terminated, discount)`` of ``batch`` on the learner's
        device, after checking its shapes and dtypes; a DeviceReplayBuffer's batch is used in place."""
        if is_device_batch(batch):  # sampled by a DeviceReplayBuffer: already tensors on a device
            return self.device_batch_tensors(batch)
        if not isinstance(batch, Batch):
            raise TypeError(f"batch must be a dqnfast.Batch or a DeviceReplayBuffer's TorchBatch, "
                            f"got {type(batch).__name__}")
        expected = (self.stack, *self.frame_shape)
        if batch.obs.shape[1:] != expected or batch.next_obs.shape != batch.obs.shape:
            raise ValueError(f"batch observations must have shape (B, *{expected}), got {batch.obs.shape} "
                             f"and {batch.next_obs.shape}")
        if batch.obs.dtype != np.uint8 or batch.next_obs.dtype != np.uint8:
            raise TypeError("batch observations must be uint8")
        nb = self.device.type == "cuda"

        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=nb)

        frames = shared_frames(batch)
        if frames is not None:  # one (B, stack + 1, H, W) array on the wire; obs / next_obs are views of it
            on_device = put(frames)
            obs, next_obs = on_device[:, :self.stack], on_device[:, 1:]
        else:
            obs, next_obs = put(batch.obs), put(batch.next_obs)  # uint8 on the wire; scaled in forward
        action = put(batch.action).long()
        reward = put(batch.reward).float()
        terminated = put(batch.terminated).float()
        discount = put(batch.discount).float()
        return obs, action, reward, next_obs, terminated, discount

    def device_batch_tensors(self, batch) -> Tuple[torch.Tensor, ...]:
        """:meth:`batch_tensors` of a DeviceReplayBuffer's batch (already tensors on a device)."""
        expected = (self.stack, *self.frame_shape)
        if tuple(batch.obs.shape[1:]) != expected or batch.next_obs.shape != batch.obs.shape:
            raise ValueError(f"batch observations must have shape (B, *{expected}), got {tuple(batch.obs.shape)} "
                             f"and {tuple(batch.next_obs.shape)}")
        if batch.obs.dtype != torch.uint8 or batch.next_obs.dtype != torch.uint8:
            raise TypeError("batch observations must be uint8")
        if batch.obs.device != self.device:
            raise ValueError(f"the batch is on {batch.obs.device}, the learner on {self.device}")
        return (batch.obs, batch.action.long(), batch.reward.float(), batch.next_obs, batch.terminated.float(),
                batch.discount.float())

    @torch.no_grad()
    def td_target(self, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor,
                  discount: torch.Tensor) -> torch.Tensor:
        """``r + discount * (1 - terminated) * Q_target(s', a')``, a' = argmax of the target net, or of
        the online net with Double DQN. Truncation is deliberately absent: a cut-off episode bootstraps.

        With a hard copy after every update (:attr:`target_is_online`) both nets hold the same weights
        at every update, so one pass of the online net serves as both: Double DQN's target is then
        plain DQN's, bit for bit, and the update costs one network pass less."""
        if self.target_is_online:
            return reward + discount * (1.0 - terminated) * self.q_network(next_obs).amax(dim=1)
        next_q_target = self.target_network(next_obs)
        if self.double_dqn:
            best = self.q_network(next_obs).argmax(dim=1, keepdim=True)
        else:
            best = next_q_target.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best).squeeze(1)
        return reward + discount * (1.0 - terminated) * next_value

    @property
    def target_is_online(self) -> bool:
        """Whether the target net equals the online net at every update: a hard copy (``tau`` 1) after
        every update (``target_update_interval`` 1), as DrQ(ε)'s target_update_period 1. The target
        network is still kept and synced (checkpoints and :meth:`reset_layers` see it), but not run.
        Change the target's weights by hand only with an interval above 1."""
        return self.tau >= 1.0 and self.target_update_interval == 1

    def targets(self, batch: Batch) -> np.ndarray:
        """The TD targets of ``batch`` as float32 numpy (what :meth:`update` regresses onto)."""
        _, _, reward, next_obs, terminated, discount = self.batch_tensors(batch)
        return self.td_target(reward, next_obs, terminated, discount).float().cpu().numpy()

    def intensity_scales(self, batch_size: int) -> Optional[torch.Tensor]:
        """The intensity augmentation's factors for the next update (class doc): a (2, batch_size)
        float32 tensor on the device, row 0 for ``obs`` and row 1 for ``next_obs``; None when
        ``intensity`` is 0 (nothing is drawn then)."""
        if not self.intensity:
            return None
        z = np.clip(self.augment_rng.standard_normal((2, batch_size)), -2.0, 2.0)
        return torch.from_numpy((1.0 + self.intensity * z).astype(np.float32)).to(self.device)

    def update(self, batch: Batch) -> Dict[str, float]:
        """One gradient step on ``batch``; returns metrics (td_loss, q_values, grad_norm, target_updated)."""
        tensors = self.batch_tensors(batch)
        loss, q_mean = self.loss_and_q(*tensors, scales=self.intensity_scales(tensors[0].shape[0]))
        return self.optimizer_step(loss, q_mean)

    def update_prioritized(self, batch) -> Tuple[Dict[str, float], np.ndarray]:
        """One gradient step on a :class:`dqnfast.PrioritizedBatch`: each transition's loss weighted by
        its importance weight (``batch.weights``), as Schaul et al. (2016) do. Returns update()'s
        metrics and each row's |TD error| before the step (the new priorities, float64)."""
        tensors = self.prioritized_tensors(batch)
        loss, q_mean, td_error = self.prioritized_loss(*tensors, scales=self.intensity_scales(tensors[0].shape[0]))
        return self.optimizer_step(loss, q_mean), td_error.double().cpu().numpy()

    def prioritized_tensors(self, batch) -> Tuple[torch.Tensor, ...]:
        """A :class:`dqnfast.PrioritizedBatch` as :meth:`batch_tensors` gives a batch, then its
        importance weights (float32, on the device): the arguments of :meth:`prioritized_loss`."""
        weights = torch.from_numpy(np.ascontiguousarray(batch.weights, np.float32)).to(self.device)
        return (*self.batch_tensors(Batch(*batch[:8])), weights)

    def prioritized_loss(self, obs, action, reward, next_obs, terminated, discount, weights, bf16: bool = False,
                         scales: Optional[torch.Tensor] = None):
        """The importance-weighted loss of one prioritized batch (the mean of weight x loss per row),
        the mean Q of the actions taken, and each row's |TD error| (float32, no gradient: the new
        priorities); ``bf16`` and ``scales`` as in :meth:`loss_and_q`."""
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            q, target = self._q_and_target(obs, action, reward, next_obs, terminated, discount, scales)
        loss = (weights * self._td_loss(q, target, "none")).mean()
        return loss, q.detach().mean(), (target - q).detach().abs()

    def loss_and_q(self, obs, action, reward, next_obs, terminated, discount, bf16: bool = False,
                   scales: Optional[torch.Tensor] = None):
        """The loss of one batch on the device and the mean Q of the actions taken; ``bf16`` runs the
        network passes under bfloat16 autocast (the fast update steps' option); ``scales`` are
        :meth:`intensity_scales`' factors for ``obs`` and ``next_obs`` (None: the frames as they are)."""
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            q, target = self._q_and_target(obs, action, reward, next_obs, terminated, discount, scales)
        return self._td_loss(q, target), q.detach().mean()

    def _q_and_target(self, obs, action, reward, next_obs, terminated, discount, scales=None):
        """Q of the actions taken and their TD targets, float32, one per row."""
        if scales is not None:  # uint8 x float32 is float32; the network's / 255 follows
            obs = obs * scales[0].view(-1, 1, 1, 1)
            next_obs = next_obs * scales[1].view(-1, 1, 1, 1)
        target = self.td_target(reward, next_obs, terminated, discount).float()
        q = self.q_network(obs).float().gather(1, action.unsqueeze(1)).squeeze(1)
        return q, target

    def _td_loss(self, q: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Huber or squared TD error (``reduction`` "none": one per row)."""
        if self.loss == "huber":
            return F.smooth_l1_loss(q, target, reduction=reduction)
        return F.mse_loss(q, target, reduction=reduction)

    def optimizer_step(self, loss: torch.Tensor, q_mean: torch.Tensor, metrics: bool = True) -> Optional[Dict[str, float]]:
        """Backward, clip, optimizer step and target sync for a loss; the metrics dict of update()
        (None with ``metrics=False``, which skips reading them back from the device)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self.clip_gradients()
        self.optimizer.step()
        return self.finish_step(torch.stack([loss.detach(), q_mean.detach(), grad_norm.detach()]), metrics)

    def clip_gradients(self) -> torch.Tensor:
        """The global gradient norm before clipping; clips it to ``max_grad_norm`` when set. Tensor
        ops only, so it can be captured in a CUDA graph (dqnfast.fast_update)."""
        if self.max_grad_norm is not None:
            return nn.utils.clip_grad_norm_(self.q_network.parameters(), self.max_grad_norm)
        return torch.sqrt(sum(p.grad.pow(2).sum() for p in self.q_network.parameters() if p.grad is not None))

    def finish_step(self, stats: torch.Tensor, metrics: bool = True) -> Optional[Dict[str, float]]:
        """After an optimizer step: count it, sync the target when due, and (``metrics``) read
        ``stats`` = (loss, mean Q, grad norm) back as update()'s metrics dict."""
        self.updates += 1
        synced = self.updates % self.target_update_interval == 0
        if synced:
            self.sync_target()  # in place: a captured CUDA graph reads the same tensors
        if not metrics:
            return None
        # one device->host transfer for all metrics (this also orders any reuse of pinned batch arrays)
        td_loss, q_mean, gn = stats.float().tolist()
        return {"td_loss": td_loss, "q_values": q_mean, "grad_norm": gn, "target_updated": float(synced)}

    @torch.no_grad()
    def reset_layers(self, layers: str = "head", shrink: float = 0.5) -> List[str]:
        """Periodic resets against the loss of plasticity (Nikishin et al. 2022; SR-SPR, BBF): the
        fully connected layers (``layers="head"``) are re-initialised, and with ``layers="all"`` the
        conv layers are shrunk and perturbed too: ``shrink * theta + (1 - shrink) * fresh``. The
        target network gets the same fresh weights in the same way, and the optimizer forgets its
        state (moments, step count) for every parameter that changed. Returns the names reset."""
        if layers not in ("head", "all"):
            raise ValueError(f"layers must be 'head' or 'all', got {layers!r}")
        if not 0.0 <= float(shrink) <= 1.0:
            raise ValueError(f"shrink must be in [0, 1], got {shrink}")
        fresh = self._make_network(self.num_actions, self.stack, self.frame_shape).to(self.device)
        online, target = dict(self.q_network.named_modules()), dict(self.target_network.named_modules())
        names = []
        for name, module in fresh.named_modules():
            if isinstance(module, nn.Linear):
                keep = 0.0  # the head starts over
            elif isinstance(module, nn.Conv2d) and layers == "all":
                keep = float(shrink)
            else:
                continue
            for pname, p in module.named_parameters(recurse=False):
                for net in (online, target):
                    getattr(net[name], pname).mul_(keep).add_(p, alpha=1.0 - keep)
                self.optimizer.state.pop(getattr(online[name], pname), None)
            names.append(name)
        return names

    @torch.no_grad()
    def sync_target(self) -> None:
        """target <- tau * online + (1 - tau) * target (a hard copy when tau == 1)."""
        if self.tau >= 1.0:
            self.target_network.load_state_dict(self.q_network.state_dict())
        else:
            for t, o in zip(self.target_network.parameters(), self.q_network.parameters()):
                t.lerp_(o, self.tau)

    # -- state for checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
            "augment_rng": self.augment_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))  # never share moment tensors
        self.updates = int(state["updates"])
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        if "augment_rng" in state:  # (checkpoints from before the intensity augmentation have none)
            self.augment_rng.bit_generator.state = copy.deepcopy(state["augment_rng"])


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` linearly to ``end`` over ``duration`` steps, then constant (the Nature epsilon schedule);
    ``duration <= 0`` is ``end`` from the start."""
    frac = min(1.0, t / duration) if duration > 0 else 1.0
    return start + (end - start) * frac



def is_device_batch(batch: object) -> bool:
    """A batch of torch tensors (dqnfast.torch_replay.TorchBatch) rather than numpy arrays."""
    return isinstance(getattr(batch, "obs", None), torch.Tensor) and hasattr(batch, "discount")


__all__ = ["QNetwork", "DQNLearner", "NETWORKS", "make_q_network", "default_device", "epsilon_greedy", "linear_schedule", "LOSSES", "OPTIMIZERS"]

