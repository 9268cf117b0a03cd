"""A run's logs: episodes.csv and scalars.csv, plus TensorBoard events; all appended to on resume."""
from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time

from ..config import TrainConfig


class RunLog:
    """CSV files (episodes.csv, scalars.csv) plus TensorBoard, both appended to on resume."""

    EPISODE_FIELDS = ("global_step", "episode", "return", "length", "epsilon", "wall_time")
    SCALAR_FIELDS = ("global_step", "tag", "value", "wall_time")

    def __init__(self, run_dir: str, cfg: TrainConfig, global_step: int) -> None:
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self._eps_file, self._eps = self._open_csv("episodes.csv", self.EPISODE_FIELDS)
        self._sc_file, self._sc = self._open_csv("scalars.csv", self.SCALAR_FIELDS)
        self.tb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in the [train] extra; CSV logs still work
                print("dqnfast train: tensorboard is not installed; writing CSV logs only", file=sys.stderr)
            else:
                # purge_step: events a crashed run wrote after its last checkpoint are dropped on resume
                self.tb = SummaryWriter(run_dir, purge_step=global_step if global_step else None)
                if not global_step:
                    table = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(cfg).items())
                    self.tb.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)

    def _open_csv(self, name: str, header):
        path = os.path.join(self.run_dir, name)
        new = not os.path.exists(path)
        f = open(path, "a", newline="", buffering=1)
        writer = csv.writer(f)
        if new:
            writer.writerow(header)
        return f, writer

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
