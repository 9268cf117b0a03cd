"""A run's checkpoints: what each holds, the replay snapshot beside it, retention, RNG states.

Each checkpoint has a replay snapshot beside it (``replay-STEP.bin``, ``rb.save``), written before
the checkpoint that names it, so a crash between the two never pairs a checkpoint with a missing or
newer replay; a snapshot is deleted only once the checkpoint that named it has been replaced.
The file format itself (header, checksum, atomic write) is :mod:`dqnfast.checkpoint`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
from typing import Any, Dict, Optional

import torch

from .. import checkpoint as ckpt
from ..config import TrainConfig
from ..replay import ReplayBuffer

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> Dict[str, Any]:
    """The global RNG states a resumed run continues from (Python's and torch's; numpy's generators
    are owned by the learner and the replay, which save their own)."""
    state: Dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def load_replay(run_dir: str, name: Optional[str], cfg: TrainConfig) -> Optional[ReplayBuffer]:
    """The replay snapshot a checkpoint names, or None (then the trainer refills the replay).

    A snapshot that is missing is reported and skipped; one that is unreadable is refused
    (ValueError from ReplayBuffer.load), like a corrupt checkpoint."""
    if not name:
        return None
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        print(f"dqnfast train: replay snapshot {path} is missing; the replay will be refilled", file=sys.stderr)
        return None
    rb = ReplayBuffer.load(path)
    # what the snapshot was made with, against what this run's config asks of its replay
    h, w = rb.frame_shape
    settings = [("frame_size", h if h == w else (h, w), cfg.frame_size), ("stack", rb.stack, cfg.replay_stack),
                ("env streams (num_envs)", rb.num_envs, cfg.replay_streams), ("n_step", rb.n_step, cfg.n_step)]
    differ = [f"{name} {old} in the snapshot, {new} in the config" for name, old, new in settings if old != new]
    if not math.isclose(rb.gamma, cfg.gamma, rel_tol=1e-6, abs_tol=1e-9):  # n-step returns are summed with it
        differ.append(f"gamma {rb.gamma:g} in the snapshot, {cfg.gamma:g} in the config")
    if getattr(rb, "_PRIORITIZED", False) != cfg.prioritized:
        differ.append(f"{'a uniform' if cfg.prioritized else 'a prioritized'} replay in the snapshot, "
                      f"prioritized={cfg.prioritized} in the config")
    if differ:
        raise ValueError(f"replay snapshot {path} was made with other settings than the run's config: "
                         f"{'; '.join(differ)} (resume with the settings the run had)")
    return rb


def _network_shape(cfg: TrainConfig) -> Dict[str, Any]:
    """The settings that shape a config's network (the stack only without an LSTM, the LSTM's size
    only with one)."""
    if cfg.recurrent:
        return {"frame_size": cfg.frame_size, "recurrent": True, "lstm_hidden": cfg.lstm_hidden}
    return {"frame_size": cfg.frame_size, "recurrent": False, "stack": cfg.stack, "dueling": cfg.dueling,
            "network": cfg.network}


def check_network_settings(saved: Dict[str, Any], cfg: TrainConfig) -> None:
    """ValueError naming each setting that shapes the network where ``cfg`` differs from the config a
    checkpoint was saved with (``saved``): its weights would not fit the network ``cfg`` builds."""
    before, now = _network_shape(TrainConfig.from_dict(saved)), _network_shape(cfg)
    names = ("frame_size", "recurrent", "stack", "lstm_hidden", "dueling", "network")
    differ = [f"{name} {before.get(name)} in the checkpoint, {now.get(name)} in the config"
              for name in names if before.get(name) != now.get(name)]
    if differ:
        raise ValueError(f"the checkpoint's network was built with other settings: {'; '.join(differ)} "
                         f"(a resume cannot change them)")


class CheckpointWriter:
    """Writes ``checkpoint.pt`` (and its replay snapshot) into a run folder every
    `checkpoint_interval` agent steps, keeping only the snapshot the newest checkpoint names."""

    def __init__(self, run_dir: str, cfg: TrainConfig, step: int, replay_file: Optional[str] = None) -> None:
        self.run_dir, self.cfg = run_dir, cfg
        self.path = os.path.join(run_dir, CHECKPOINT_NAME)
        self.replay_file = replay_file  # the snapshot the checkpoint on disk names
        self.next_step = self._next_after(step)

    def _next_after(self, step: int) -> float:
        k = self.cfg.checkpoint_interval
        return (step // k + 1) * k if k else math.inf

    def due(self, step: int) -> bool:
        return step >= self.next_step

    def save(self, rb: ReplayBuffer, step: int, **contents: Any) -> str:
        """checkpoint.pt holding ``contents`` plus the format, config, RNG states and the name of
        the replay snapshot; call only while no thread adds to the replay."""
        previous, replay_name = self.replay_file, None
        if self.cfg.save_replay:
            replay_name = f"replay-{step}.bin"
            if replay_name != previous:
                rb.save(os.path.join(self.run_dir, replay_name))  # atomic; before the checkpoint naming it
        ckpt.save(self.path, {
            "format": ckpt.TRAIN_FORMAT,
            "config": dataclasses.asdict(self.cfg),
            **contents,
            "rng": rng_state(),
            "replay": replay_name,  # None: resume refills the replay
        })
        self.replay_file = replay_name
        if previous and previous != replay_name:  # only now is the old snapshot no longer referenced
            try:
                os.unlink(os.path.join(self.run_dir, previous))
            except FileNotFoundError:
                pass
        self.next_step = self._next_after(step)
        return self.path
