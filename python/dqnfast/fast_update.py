"""Faster DQN update steps for a :class:`~dqnfast.learner.DQNLearner`: one CUDA graph, or torch.compile.

An eager update of the Nature CNN on a batch of 32 launches about a hundred small CUDA kernels (three
network passes, the backward pass, gradient clipping, the optimizer), so on a fast GPU it is bound
by launch overhead, not arithmetic. Two ways around it, both computing what ``learner.update`` does:

- :class:`GraphedUpdate` (CUDA only) captures the whole step, TD target, loss, backward, gradient
  clipping and optimizer step, as one CUDA graph and replays it for every batch. The batch is
  copied into static device tensors first; the host then waits only for those copies (so it may
  refill the pinned batch arrays), not for the update itself.
- :class:`CompiledUpdate` runs the loss through ``torch.compile`` (``mode="reduce-overhead"`` on
  CUDA, which also uses CUDA graphs; the default mode on CPU) and the backward and optimizer step
  eagerly. Its ``prioritized`` step does the same for prioritized replay's importance-weighted loss,
  and because the optimizer stays eager, periodic resets (``learner.reset_layers``) may run between
  its steps: they change the weights in place and drop optimizer state the next eager step rebuilds.

``learner.target_update_interval``, ``tau``, ``double_dqn``, ``loss`` and ``max_grad_norm`` hold as
in eager mode; the target network is synced in place, so a captured graph sees the new weights.
``autocast_bf16=True`` runs the network passes under bfloat16 autocast (weights and optimizer stay
float32).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ._validate import positive_int
from .batch import Batch, shared_frames
from .learner import is_device_batch

UPDATE_MODES = ("eager", "compile", "graph")


def bf16_dot_products(cpuinfo: str = "/proc/cpuinfo") -> Optional[str]:
    """The CPU's bfloat16 dot-product extensions named in ``cpuinfo``: "" where none, None where it
    cannot be read (not Linux: unknown, not absent).
    Without them a CPU runs ``autocast_bf16`` several times slower than float32, not faster:
    ``dqnfast bench update`` measured the compiled 84x84 step 5.3x slower in bfloat16 with torch's
    and oneDNN's kernels held to AVX2 (a laptop's usual ISA), 1.3x slower held to AVX-512 without
    AVX512-BF16, and 1.33x faster with it (docs/training.md)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    return ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags)


def _check_plain_learner(learner) -> None:
    from .learner import DQNLearner
    if type(learner).update is not DQNLearner.update:
        raise TypeError(f"a fast update step needs a DQNLearner's update rule; {type(learner).__name__} has its own")


class _Update:
    """Shared parts: the learner and bf16. Both paths are made of the learner's update parts
    (:meth:`~dqnfast.learner.DQNLearner.batch_tensors`, ``loss_and_q``, ``clip_gradients``,
    ``optimizer_step``, ``finish_step``), so they compute what ``learner.update`` computes."""

    def __init__(self, learner, bf16: bool) -> None:
        _check_plain_learner(learner)
        self.learner = learner
        self.bf16 = bool(bf16)


class CompiledUpdate(_Update):
    """``learner.update`` with the loss computed by a ``torch.compile``d function (see the module doc)."""

    def __init__(self, learner, *, autocast_bf16: bool = False, mode: Optional[str] = None) -> None:
        super().__init__(learner, autocast_bf16)
        if mode is None:
            mode = "reduce-overhead" if learner.device.type == "cuda" else "default"
        bf16 = self.bf16

        # scales: the intensity augmentation's factors, drawn on the host outside the compiled code
        # (so the compiled step draws what the eager one draws), or None with it off
        def loss_fn(obs, action, reward, next_obs, terminated, discount, scales):
            return learner.loss_and_q(obs, action, reward, next_obs, terminated, discount, bf16, scales)

        def prioritized_loss_fn(obs, action, reward, next_obs, terminated, discount, weights, scales):
            return learner.prioritized_loss(obs, action, reward, next_obs, terminated, discount, weights, bf16,
                                            scales)

        # torch.compile builds on the first call, so a run that never samples prioritized batches
        # never builds this one
        self._loss = torch.compile(loss_fn, mode=mode, dynamic=False)
        self._prioritized_loss = torch.compile(prioritized_loss_fn, mode=mode, dynamic=False)

    def __call__(self, batch: Batch, metrics: bool = True) -> Optional[Dict[str, float]]:
        lr = self.learner
        obs, action, reward, next_obs, terminated, discount = lr.batch_tensors(batch)
        loss, q_mean = self._loss(obs, action, reward, next_obs, terminated, discount,
                                  lr.intensity_scales(obs.shape[0]))
        return lr.optimizer_step(loss, q_mean, metrics)

    def prioritized(self, batch, metrics: bool = True) -> Tuple[Optional[Dict[str, float]], np.ndarray]:
        """``learner.update_prioritized`` with the weighted loss compiled: one step on a
        :class:`dqnfast.PrioritizedBatch`; returns the metrics and each row's |TD error| before the
        step (float64, the new priorities)."""
        lr = self.learner
        tensors = lr.prioritized_tensors(batch)
        loss, q_mean, td_error = self._prioritized_loss(*tensors, lr.intensity_scales(tensors[0].shape[0]))
        return lr.optimizer_step(loss, q_mean, metrics), td_error.double().cpu().numpy()


class GraphedUpdate(_Update):
    """``learner.update`` as one captured CUDA graph for batches of ``batch_size`` (module doc).

    ``shared_frames``: batches come in the shared-frames layout (one (B, stack + 1, H, W) array,
    one-step replay), as ``learner.empty_batch(B, shared_frames=True)`` makes them.
    Capturing runs three warm-up steps on zeros and then puts the weights and optimizer state back
    exactly as they were, so the first real update starts from the learner's state.
    """

    WARMUP_STEPS = 3

    def __init__(self, learner, batch_size: int, *, shared_frames: bool = False, autocast_bf16: bool = False) -> None:
        super().__init__(learner, autocast_bf16)
        if learner.intensity:
            raise ValueError("the captured update has no intensity augmentation (its factors are drawn on the host "
                             "for each batch): use update mode 'compile' or 'eager' with intensity")
        if learner.device.type != "cuda":
            raise ValueError(f"update_mode='graph' captures a CUDA graph and needs a CUDA device; the learner is on "
                             f"{learner.device} (use 'compile' or 'eager' there)")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.shared = bool(shared_frames)
        dev, b, s, (h, w) = learner.device, self.batch_size, learner.stack, learner.frame_shape
        self.frames = torch.zeros((b, s + 1, h, w) if self.shared else (2, b, s, h, w), dtype=torch.uint8, device=dev)
        self.action = torch.zeros(b, dtype=torch.int64, device=dev)
        self.reward = torch.zeros(b, dtype=torch.float32, device=dev)
        self.terminated = torch.zeros(b, dtype=torch.float32, device=dev)
        self.discount = torch.zeros(b, dtype=torch.float32, device=dev)
        self.copied = torch.cuda.Event()
        self._capture()

    def _views(self) -> Tuple[torch.Tensor, torch.Tensor]:
        s = self.learner.stack
        if self.shared:
            return self.frames[:, :s], self.frames[:, 1:]
        return self.frames[0], self.frames[1]

    def _static_step(self) -> torch.Tensor:
        """The step on the static batch tensors: what the graph captures."""
        lr = self.learner
        obs, next_obs = self._views()
        loss, q_mean = lr.loss_and_q(obs, self.action, self.reward, next_obs, self.terminated, self.discount,
                                      self.bf16)
        loss.backward()
        grad_norm = lr.clip_gradients()
        lr.optimizer.step()
        return torch.stack([loss.detach(), q_mean, grad_norm.detach()])

    def _capture(self) -> None:
        lr = self.learner
        opt = lr.optimizer
        for group in opt.param_groups:
            group["capturable"] = True  # optimizer step counters live on the GPU, no host sync
        for state in opt.state.values():  # a restored optimizer keeps its step counters on the host
            if torch.is_tensor(state.get("step")) and state["step"].device != lr.device:
                state["step"] = state["step"].to(lr.device)
        params = list(lr.q_network.parameters())
        saved_params = [p.detach().clone() for p in params]
        saved_state = {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}
                       for p in params if p in opt.state}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                opt.zero_grad(set_to_none=True)
                self._static_step()
        torch.cuda.current_stream().wait_stream(side)
        opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.stats = self._static_step()
        # The warm-up steps changed the weights and the optimizer state: put both back, in place.
        with torch.no_grad():
            for p, v in zip(params, saved_params):
                p.copy_(v)
            for p in params:
                before = saved_state.get(id(p))
                for k, v in opt.state[p].items():
                    if not torch.is_tensor(v):
                        continue
                    if before is not None and k in before:
                        v.copy_(before[k])
                    else:  # state the optimizer creates at its first step: zero is its initial value
                        v.zero_()
        torch.cuda.synchronize()

    def __call__(self, batch: Batch, metrics: bool = True) -> Optional[Dict[str, float]]:
        lr = self.learner
        if is_device_batch(batch):  # from a DeviceReplayBuffer: copies on the device, nothing to wait for
            if self.shared:
                raise ValueError("this captured update was made for shared-frames host batches; a "
                                 "DeviceReplayBuffer's batch has separate obs/next_obs")
            obs, action, reward, next_obs, terminated, discount = lr.device_batch_tensors(batch)
            if obs.shape[0] != self.batch_size:
                raise ValueError(f"this captured update takes batches of {self.batch_size}, got {obs.shape[0]}")
            for dst, src in ((self.frames[0], obs), (self.frames[1], next_obs), (self.action, action),
                             (self.reward, reward), (self.terminated, terminated), (self.discount, discount)):
                dst.copy_(src)
            self.graph.replay()
            return lr.finish_step(self.stats, metrics)
        if not isinstance(batch, Batch):
            raise TypeError(f"batch must be a dqnfast.Batch, got {type(batch).__name__}")
        if batch.obs.shape != (self.batch_size, lr.stack, *lr.frame_shape) or batch.next_obs.shape != batch.obs.shape:
            raise ValueError(f"this captured update takes batches of shape ({self.batch_size}, {lr.stack}, "
                             f"{lr.frame_shape[0]}, {lr.frame_shape[1]}), got {batch.obs.shape}")
        if batch.obs.dtype != np.uint8 or batch.next_obs.dtype != np.uint8:
            raise TypeError("batch observations must be uint8")
        frames = shared_frames(batch)
        if self.shared != (frames is not None):
            raise ValueError("this captured update was made for " + ("shared-frames" if self.shared else "separate")
                             + " obs/next_obs arrays; the batch has the other layout")

        def put(dst: torch.Tensor, a: np.ndarray) -> None:
            dst.copy_(torch.from_numpy(np.ascontiguousarray(a)), non_blocking=True)

        if self.shared:
            put(self.frames, frames)
        else:
            put(self.frames[0], batch.obs)
            put(self.frames[1], batch.next_obs)
        put(self.action, batch.action)
        put(self.reward, batch.reward)
        put(self.terminated, batch.terminated)
        put(self.discount, batch.discount)
        self.copied.record()
        self.graph.replay()
        # The batch arrays may be refilled once the copies are done; the update itself runs on.
        self.copied.synchronize()
        return lr.finish_step(self.stats, metrics)


def make_update(learner, mode: str, *, batch_size: Optional[int] = None, shared_frames: bool = False,
                autocast_bf16: bool = False):
    """A callable ``update(batch, metrics=True)`` for ``mode`` in ``UPDATE_MODES``.

    ``eager`` is ``learner.update`` itself (``autocast_bf16`` needs compile or graph); ``graph`` needs
    ``batch_size`` and a CUDA learner."""
    if mode not in UPDATE_MODES:
        raise ValueError(f"update mode must be one of {UPDATE_MODES}, got {mode!r}")
    if mode == "eager":
        if autocast_bf16:
            raise ValueError("autocast_bf16 needs update mode 'compile' or 'graph'")
        return lambda batch, metrics=True: learner.update(batch)
    if mode == "compile":
        return CompiledUpdate(learner, autocast_bf16=autocast_bf16)
    if batch_size is None:
        raise ValueError("update mode 'graph' needs batch_size (the graph is captured for one batch shape)")
    return GraphedUpdate(learner, batch_size, shared_frames=shared_frames, autocast_bf16=autocast_bf16)


__all__: List[str] = ["CompiledUpdate", "GraphedUpdate", "UPDATE_MODES", "make_update"]
