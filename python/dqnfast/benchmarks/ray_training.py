"""The whole-run figure of `dqnfast bench ray`: agent steps/s of a training run whose actors run on
Ray, against the single-process trainer.

Two runs of the trainer in this process (:class:`dqnfast.train.Trainer`), with the same config
apart from the Ray options: the ``demo`` preset (Breakout) with a small ``learning_starts``, each
bounded by ``steps`` agent steps (0: none) and by ``max_seconds``, no evaluation, TensorBoard or
checkpoints but the final one (without its replay). The first run steps its one env in the
trainer's process; the second has ``ray`` set, so ``ray_actors`` actors of ``envs_per_actor`` envs
each feed the learner, on the Ray connection the bench already holds.

The counts come from each run's own log (``scalars.csv``, a ``charts/updates`` row every
``LOG_INTERVAL`` updates, with the agent step and the wall time). Rows start once the replay holds
``learning_starts`` steps and the learner runs; the window measured starts at the first row with at
least ``warmup`` updates and ends at the last row, so Ray's and the actors' start-up, the random-play
fill, the first updates and the final checkpoint are all outside it. A run bounded by steps logs the
same rows however fast the machine is (a test can rely on it); one bounded by seconds alone logs as
many as the machine manages.
"""
from __future__ import annotations

import csv
import os
import time
from typing import Any, Dict, List, Tuple

LOG_INTERVAL = 10  # updates between log rows: several rows a second, to time a window of a few seconds
PRESET = "demo"


def run_config(run_dir: str, name: str, seconds: float, steps: int, learning_starts: int, **ray_options: Any):
    """The config of one measured run: the demo preset, ``steps`` agent steps (0: unbounded) within
    ``seconds``, logging often, writing little."""
    from ..config import preset

    return preset(PRESET, total_steps=steps or 10**12, max_seconds=float(seconds), learning_starts=learning_starts,
                  log_interval=LOG_INTERVAL, eval_episodes=0, checkpoint_interval=0, save_replay=False,
                  tensorboard=False, progress=False, run_dir=run_dir, run_name=name, **ray_options)


def logged_steps(run_dir: str) -> List[Tuple[float, int, int]]:
    """(wall time, agent step, updates) of each ``charts/updates`` row of a run's scalars.csv."""
    rows = []
    with open(os.path.join(run_dir, "scalars.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["tag"] == "charts/updates":
                rows.append((float(row["wall_time"]), int(row["global_step"]), int(float(row["value"]))))
    return rows


def steady_window(rows: List[Tuple[float, int, int]], warmup: int) -> Dict[str, Any]:
    """Agent steps and updates per second between the first row with at least ``warmup`` updates
    and the last row. ValueError when fewer than two rows are left to time."""
    if not rows:
        raise ValueError("the run logged no update: it never got past learning_starts (raise --train-seconds "
                         "or --train-steps)")
    start = next((i for i, r in enumerate(rows) if r[2] >= warmup), len(rows))
    if start >= len(rows) - 1:
        raise ValueError(f"the run logged {len(rows)} update rows, up to {rows[-1][2]} updates: too few after the "
                         f"{warmup} warm-up updates (raise --train-steps or --train-seconds)")
    (t0, s0, u0), (t1, s1, u1) = rows[start], rows[-1]
    return {"from_step": s0, "to_step": s1, "from_time": t0, "to_time": t1, "steps": s1 - s0,
            "updates": u1 - u0, "seconds": t1 - t0, "rows": len(rows) - start,
            "rate": (s1 - s0) / (t1 - t0), "updates_per_s": (u1 - u0) / (t1 - t0)}


def measure_run(run_dir: str, name: str, seconds: float, steps: int, warmup: int, learning_starts: int,
                **ray_options: Any) -> Dict[str, Any]:
    """One bounded run and its figures: the trainer's totals and the steady window's rates."""
    from ..train import Trainer

    cfg = run_config(run_dir, name, seconds, steps, learning_starts, **ray_options)
    trainer = Trainer(cfg, PRESET)
    started = time.time()
    summary = trainer.run()
    rows = logged_steps(trainer.run_dir)
    res: Dict[str, Any] = {"run_dir": trainer.run_dir, "agent_steps": summary["global_step"],
                           "updates": summary["updates"], "episodes": summary["episodes"],
                           "wall_s": summary["wall_time_s"],
                           "first_update_s": rows[0][0] - started if rows else None}
    res["window"] = steady_window(rows, warmup)
    res["rate"] = res["window"]["rate"]
    return res


def whole_run_figure(address: str, actors: int, envs_per_actor: int, seconds: float, steps: int, warmup: int,
                     learning_starts: int, run_dir: str) -> Dict[str, Any]:
    """The single-process run, then the Ray run (``address``: the bench's, already connected), in
    ``run_dir``; their agent steps/s and the ratio Ray / single-process."""
    single = measure_run(run_dir, "single", seconds, steps, warmup, learning_starts)
    with_ray = measure_run(run_dir, "ray", seconds, steps, warmup, learning_starts, ray=address, ray_actors=actors,
                           envs_per_actor=envs_per_actor)
    return {"preset": PRESET, "seconds": seconds, "steps": steps, "warmup_updates": warmup,
            "learning_starts": learning_starts,
            "single": single, "ray": with_ray, "ratio": with_ray["rate"] / single["rate"]}
