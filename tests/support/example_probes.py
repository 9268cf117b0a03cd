"""Probes for test_examples: run an example script's main() in-process with recorders patched in
around its parts, so the test can check what the script did against an independent record.

What is recorded, and from where (never from the script's own counters or prints):

- the env: every reset and step as the env returned it (a wrapper around make_env's env, or a
  SyncVectorEnv subclass), so the test can rebuild every transition and every state itself;
- the buffer: each sampled batch, and (SB3 adapter) the ids each add stored. Row 0 of every batch is
  replaced with an episode-ending transition of the env's record, once the buffer holds one (cycling
  through them), so that how the loss treats terminations and truncations shows in every update's
  gradient instead of only when uniform sampling happens to draw one of the few such transitions;
- the networks: the two QNetwork instances; each greedy forward of the online one (its input and
  argmax); a fingerprint of the target network at the start of every step;
- the optimizer: at each step, the gradients it was about to apply against the DQN loss gradients
  recomputed from the sampled batch and both networks, and how far the step moved the parameters;
- the epsilon schedule: each call of the script's linear_schedule (one per global step).

The script itself is not changed and imports nothing from here; the only thing the probes change in
its run is which stored transitions row 0 of a batch holds.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch
from torch.func import functional_call

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    """The example script as a fresh module (its main() not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fingerprint(net: torch.nn.Module) -> Tuple[float, ...]:
    """Per-tensor float64 sums of the parameters: equal after an exact copy, different after any update
    (cheap enough to take every step)."""
    with torch.no_grad():
        return tuple(float(p.sum(dtype=torch.float64)) for p in net.parameters())


class LossBatch(NamedTuple):
    """A sampled batch as the DQN loss needs it (copies, taken when it was sampled)."""
    obs: torch.Tensor  # (B, stack, 84, 84) uint8
    action: torch.Tensor  # (B,) int64
    reward: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor
    done: torch.Tensor  # (B,) float32: 1 where the target must not bootstrap


def dqn_loss_gradients(q: torch.nn.Module, target: torch.nn.Module, b: LossBatch,
                       gamma: float) -> Tuple[float, List[torch.Tensor]]:
    """The one-step DQN loss mean((Q(s, a) - (r + gamma (1 - done) max_a' Q_target(s', a')))^2) and its
    gradient with respect to q's parameters, computed on detached copies (q's .grad is not touched)."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in q.named_parameters()}
    q_taken = functional_call(q, params, (b.obs,)).gather(1, b.action[:, None]).squeeze(1)
    with torch.no_grad():
        best_next = target(b.next_obs).max(dim=1).values
    td_target = b.reward + gamma * (1.0 - b.done) * best_next
    loss = ((q_taken - td_target) ** 2).mean()
    return loss.item(), list(torch.autograd.grad(loss, list(params.values())))


@dataclass
class Update:
    step: int  # global step of the optimizer step
    sampled_at: Optional[int]  # global step of the last sample before it
    grad_error: float  # max over tensors of |grad - reference| / |reference|
    loss: float  # the reference loss on that batch
    change: float  # L2 norm of the parameter change the step made
    q_after: Tuple[float, ...]  # q's fingerprint after it


@dataclass
class EnvStep:
    action: int
    reward: float
    terminated: bool
    truncated: bool
    obs: np.ndarray


@dataclass
class VectorStep:
    action: np.ndarray
    obs: np.ndarray  # what step returned (SAME_STEP: the reset observation for an ended env)
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: Dict[int, np.ndarray]  # env -> infos["final_obs"] where present


@dataclass
class Probe:
    gamma: float
    step: int = -1  # the global step now, from the schedule's calls
    schedule_calls: List[Tuple[float, float, float, int, float]] = field(default_factory=list)
    networks: List[torch.nn.Module] = field(default_factory=list)
    optimizer_params: List[List[torch.Tensor]] = field(default_factory=list)
    greedy: Dict[int, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # step -> (input, argmax)
    greedy_calls: int = 0
    target_after: Dict[int, Tuple[float, ...]] = field(default_factory=dict)  # step -> target's fp after it
    q_initial: Optional[Tuple[float, ...]] = None
    samples: List[Tuple[int, LossBatch]] = field(default_factory=list)
    updates: List[Update] = field(default_factory=list)
    buffers: List[Any] = field(default_factory=list)
    add_ids: List[np.ndarray] = field(default_factory=list)  # SB3 adapter: last_indices after each add
    endings_sampled: int = 0  # batches whose row 0 was set to an episode-ending transition
    env_events: List[Any] = field(default_factory=list)  # single env: ("reset", obs) or EnvStep
    vector_reset: Optional[np.ndarray] = None
    vector_steps: List[VectorStep] = field(default_factory=list)
    _checking: bool = False

    # ---- which network is which ----
    @property
    def q(self) -> torch.nn.Module:
        """The network the optimizer trains."""
        assert len(self.optimizer_params) == 1, f"expected one optimizer, saw {len(self.optimizer_params)}"
        first = self.optimizer_params[0][0]
        (net,) = [n for n in self.networks if any(p is first for p in n.parameters())]
        return net

    @property
    def target(self) -> torch.nn.Module:
        assert len(self.networks) == 2, f"expected two QNetworks (online, target), saw {len(self.networks)}"
        (net,) = [n for n in self.networks if n is not self.q]
        return net

    # ---- hooks ----
    def on_step_start(self, t: int) -> None:
        if self.networks and self.optimizer_params:
            if self.q_initial is None:
                self.q_initial = fingerprint(self.q)
            self.target_after[t - 1] = fingerprint(self.target)
        self.step = t

    def finish(self) -> None:
        """After main() returns: the target's state after the last step."""
        self.target_after[self.step] = fingerprint(self.target)

    def on_forward(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        if self._checking or torch.is_grad_enabled() or not self.optimizer_params or net is not self.q:
            return  # only the online network's no-grad forwards: acting
        self.greedy_calls += 1
        self.greedy[self.step] = (x.detach().cpu().numpy().copy(), y.argmax(dim=1).cpu().numpy())

    def on_sample(self, batch: LossBatch) -> None:
        self.samples.append((self.step, batch))

    def next_ending(self) -> Optional[int]:
        """The buffer id of an episode-ending transition stored so far (the next one in turn), or None."""
        ids = self._ending_ids()
        return ids[self.endings_sampled % len(ids)] if ids else None

    def _ending_ids(self) -> List[int]:
        if self.vector_steps:  # SB3 adapter: the ids its adds reported
            return [int(self.add_ids[k][e]) for k, s in enumerate(self.vector_steps[:len(self.add_ids)])
                    for e in np.flatnonzero(s.terminated | s.truncated) if self.add_ids[k][e] >= 0]
        ids, writes = [], 0  # dqnfast.ReplayBuffer: the id is the write number of the step's frame, and
        for ev in self.env_events:  # each episode start and each step writes one frame
            if isinstance(ev, EnvStep) and (ev.terminated or ev.truncated):
                ids.append(writes)
            writes += 1
        return ids

    def on_optimizer_step(self, params: List[torch.Tensor], apply) -> Any:
        sampled_at, batch = self.samples[-1] if self.samples else (None, None)
        grad_error, loss = math.inf, math.nan
        if batch is not None and all(p.grad is not None for p in params):
            self._checking = True
            try:
                loss, ref = dqn_loss_gradients(self.q, self.target, batch, self.gamma)
            finally:
                self._checking = False
            grad_error = max(float((p.grad - r).norm() / max(float(r.norm()), 1e-12)) for p, r in zip(params, ref))
        before = [p.detach().clone() for p in params]
        out = apply()
        change = math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(params, before)))
        self.updates.append(Update(self.step, sampled_at, grad_error, loss, change, fingerprint(self.q)))
        return out


def _gathered(probe: Probe, gather) -> Any:
    """The next episode-ending transition as a batch of one, or None: none stored yet, or its id is not one
    (the script stored something else than the env's record says; the test's own checks will say what)."""
    ending = probe.next_ending()
    if ending is None:
        return None
    try:
        one = gather(np.array([ending], np.int64))
    except IndexError:
        return None
    probe.endings_sampled += 1
    return one


def install(monkeypatch, module, probe: Probe) -> None:
    """Patch the parts every example has: linear_schedule, QNetwork, torch.optim.Adam."""
    schedule = module.linear_schedule

    def recorded_schedule(start_e, end_e, duration, t):
        probe.on_step_start(t)
        value = schedule(start_e, end_e, duration, t)
        probe.schedule_calls.append((start_e, end_e, duration, t, value))
        return value

    class RecordedQNetwork(module.QNetwork):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            probe.networks.append(self)

        def forward(self, x):
            y = super().forward(x)
            probe.on_forward(self, x, y)
            return y

    class RecordedAdam(torch.optim.Adam):
        def __init__(self, params, *args, **kwargs):
            params = list(params)
            super().__init__(params, *args, **kwargs)
            self._probe_params = params
            probe.optimizer_params.append(params)

        def step(self, closure=None):
            return probe.on_optimizer_step(self._probe_params, lambda: super(RecordedAdam, self).step(closure))

    monkeypatch.setattr(module, "linear_schedule", recorded_schedule)
    monkeypatch.setattr(module, "QNetwork", RecordedQNetwork)
    monkeypatch.setattr(torch.optim, "Adam", RecordedAdam)


class _EnvRecorder(gym.Wrapper):
    """Records every reset and step of one env, as the env returned them."""

    def __init__(self, env: gym.Env, events: List[Any]) -> None:
        super().__init__(env)
        self._events = events

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._events.append(("reset", np.array(obs, copy=True)))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._events.append(EnvStep(int(action), float(reward), bool(terminated), bool(truncated),
                                    np.array(obs, copy=True)))
        return obs, reward, terminated, truncated, info


def install_cleanrl_dqn(monkeypatch, module, probe: Probe) -> None:
    """examples/cleanrl_dqn.py: record its env (make_env) and its dqnfast.ReplayBuffer's samples."""
    install(monkeypatch, module, probe)
    make_env = module.make_env

    def recorded_make_env(*args, **kwargs):
        return _EnvRecorder(make_env(*args, **kwargs), probe.env_events)

    class RecordedReplayBuffer(module.dqnfast.ReplayBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            probe.buffers.append(self)

        def sample(self, batch_size, out=None):
            b = super().sample(batch_size, out)
            one = _gathered(probe, self.gather)
            if one is not None:  # row 0 := that transition (with shared frames, obs and next_obs agree)
                for name in one._fields:
                    getattr(b, name)[0] = getattr(one, name)[0]
            probe.on_sample(LossBatch(torch.from_numpy(b.obs.copy()), torch.from_numpy(b.action.copy()),
                                      torch.from_numpy(b.reward.copy()), torch.from_numpy(b.next_obs.copy()),
                                      torch.from_numpy(b.terminated.astype(np.float32))))
            return b

    monkeypatch.setattr(module, "make_env", recorded_make_env)
    monkeypatch.setattr(module.dqnfast, "ReplayBuffer", RecordedReplayBuffer)


def install_cleanrl_sb3_style(monkeypatch, module, probe: Probe) -> None:
    """examples/cleanrl_sb3_style_dqn.py: record its SyncVectorEnv and its DqnfastReplayBuffer."""
    install(monkeypatch, module, probe)

    class RecordedSyncVectorEnv(gym.vector.SyncVectorEnv):
        def reset(self, **kwargs):
            obs, infos = super().reset(**kwargs)
            probe.vector_reset = np.array(obs, copy=True)
            return obs, infos

        def step(self, actions):
            obs, rewards, terminations, truncations, infos = super().step(actions)
            final = {}
            if "final_obs" in infos:
                final = {int(e): np.array(infos["final_obs"][e], copy=True) for e in np.flatnonzero(infos["_final_obs"])}
            probe.vector_steps.append(VectorStep(np.array(actions, copy=True), np.array(obs, copy=True),
                                                 np.array(rewards, copy=True), np.array(terminations, copy=True),
                                                 np.array(truncations, copy=True), final))
            return obs, rewards, terminations, truncations, infos

    class RecordedReplayBuffer(module.DqnfastReplayBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            probe.buffers.append(self)

        def add(self, *args, **kwargs):
            super().add(*args, **kwargs)
            probe.add_ids.append(self.last_indices.copy())

        def sample(self, batch_size, env=None):
            s = super().sample(batch_size, env)
            one = _gathered(probe, lambda ids: self._get_samples(ids, env))
            if one is not None:  # row 0 := that transition
                s = type(s)(*(b if b is None else torch.cat([a, b[1:]]) for a, b in zip(one, s)))  # (None: unused)
            probe.on_sample(LossBatch(s.observations.clone(), s.actions.flatten().clone(), s.rewards.flatten().clone(),
                                      s.next_observations.clone(), s.dones.flatten().clone()))
            return s

    monkeypatch.setattr(module.gym.vector, "SyncVectorEnv", RecordedSyncVectorEnv)
    monkeypatch.setattr(module, "DqnfastReplayBuffer", RecordedReplayBuffer)
