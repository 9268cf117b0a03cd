#!/usr/bin/env python3
"""One-shot check of everything in dqnfast that needs a GPU, for a session that is lent one.

    python3 tools/device_check.py                  # on a CUDA machine: all steps, under 9 minutes
    python3 tools/device_check.py --smoke          # the same steps on CPU with tiny sizes (CI runs this)
    python3 tools/device_check.py --steps build,machine,cuda_tests --site /tmp/dq   # some steps only ...
    PYTHONPATH=/tmp/dq:$PYTHONPATH python3 tools/device_check.py --no-build --steps update_step,replay_sample
                                                   # ... and the rest in a later call, on the same build

Steps, in order (each is timed; one that fails is reported and the others still run):

1. build: builds a wheel of this checkout and installs it into a scratch folder, which the later
   steps import (``--no-build``: use the dqnfast already importable);
2. cuda_tests: the test files with CUDA paths (device replay, learner, fast update steps, the
   TorchRL adapter's pinned memory);
3. update_step: µs per DQN update on a batch of 32, eager against torch.compile and one captured
   CUDA graph (dqnfast.fast_update);
4. replay_sample: ``DeviceReplayBuffer.sample(32)`` (frames gathered on the GPU) against a host
   ``ReplayBuffer.sample(32)`` plus the copy of the batch to the GPU;
5. data_path: agent steps/s of the vector env + replay data path with W = 1, 2, 4, ... workers,
   up to the core count (needs gymnasium and ale-py, which the device image lacks: carry wheels);
6. train: a time-boxed Breakout training run, then its evaluation on the real game score.

At the end it prints one table and writes the same figures as JSON (``--json``, by default
``device_check.json`` in ``$OUT`` when set, else in the current folder). The JSON is also written
after every step (with ``"complete": false``), so a check stopped at its time limit still returns
the steps it finished. A machine that stops answering returns nothing of its call (one did, in the
middle of the whole check), so on a lent machine run the steps in two or three calls (``--steps``,
with ``--site`` to keep the build between them).

On the lent H200 machine (Python 3.12 with torch, pybind11, scikit-build-core, cmake, pytest,
tqdm, tensorboard, matplotlib; no gymnasium, ale-py or tyro), carry these wheels (cp312,
manylinux, downloaded here with ``pip download --no-deps --only-binary=:all: --python-version
3.12 ...`` into an ignored ``.whl/``): gymnasium, farama-notifications, ale-py, tyro,
docstring-parser, typeguard; for the TorchRL adapter's pinned memory and CUDA transform (issue 21)
also torchrl, tensordict (its wheel is built for one torch release: take the one that matches the
machine's torch), hoptorch, pyvers, orjson, cloudpickle, importlib-metadata, zipp. Then, in one
call, install them with ``pip install --no-index --no-deps --target /tmp/site .whl/*.whl``, put ``/tmp/site`` on ``PYTHONPATH`` and run
``python3 tools/device_check.py``; the table goes into docs/training.md (the GPU box section) and the issue's note.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
# (the TorchRL adapter's file skips whole without torchrl and tensordict: carry their wheels, below)
CUDA_TEST_FILES = ["tests/replay/test_torch_replay.py", "tests/learner/test_learner.py", "tests/learner/test_fast_update.py",
                   "tests/integrations/test_torchrl_buffer.py"]


class Check:
    """Collects one row per figure: (step, figure, value, unit, note)."""

    def __init__(self, smoke: bool, json_path: Optional[Path] = None) -> None:
        self.smoke = smoke
        self.json_path = json_path
        self.rows: List[Dict[str, Any]] = []
        self.steps: Dict[str, Dict[str, Any]] = {}

    def save(self, complete: bool) -> None:
        """Writes the figures so far: after every step, so a check stopped at its time limit still
        returns the steps it finished (``complete`` is false until the end)."""
        if self.json_path is not None:
            self.json_path.write_text(json.dumps({"smoke": self.smoke, "complete": complete, "rows": self.rows,
                                                  "steps": self.steps, "table": self.table()}, indent=1))

    def row(self, step: str, figure: str, value: Any, unit: str = "", note: str = "") -> None:
        self.rows.append({"step": step, "figure": figure, "value": value, "unit": unit, "note": note})

    def run(self, name: str, fn: Callable[["Check"], None]) -> None:
        t0 = time.perf_counter()
        print(f"[device_check] {name} ...", flush=True)
        try:
            fn(self)
            status = "ok"
        except SkipStep as e:
            status = f"skipped: {e}"
        except Exception as e:  # one failing step must not hide the others' figures
            traceback.print_exc()
            status = f"failed: {type(e).__name__}: {e}"
        seconds = time.perf_counter() - t0
        self.steps[name] = {"status": status, "seconds": round(seconds, 1)}
        print(f"[device_check] {name}: {status} ({seconds:.1f} s)", flush=True)
        self.save(complete=False)

    def table(self) -> str:
        lines = ["| step | figure | value | note |", "|---|---|---:|---|"]
        for r in self.rows:
            v = r["value"]
            text = f"{v:,.1f}" if isinstance(v, float) else str(v)
            lines.append(f"| {r['step']} | {r['figure']} | {text} {r['unit']} | {r['note']} |")
        lines.append("")
        lines.append("| step | status | seconds |")
        lines.append("|---|---|---:|")
        for name, s in self.steps.items():
            lines.append(f"| {name} | {s['status']} | {s['seconds']} |")
        return "\n".join(lines)


class SkipStep(Exception):
    """A step that cannot run here (said why), as opposed to one that failed."""


def _device():
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# -- steps -------------------------------------------------------------------------------------------
def step_machine(c: Check) -> None:
    import torch
    c.row("machine", "python", platform.python_version())
    c.row("machine", "torch", torch.__version__)
    c.row("machine", "cpu cores", os.cpu_count())
    c.row("machine", "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no CUDA)")


def step_build(c: Check, site: Path) -> None:
    """pip wheel of this checkout (no build isolation: the image's pybind11/scikit-build-core), then
    installs it into `site`, which goes first on sys.path for the later steps."""
    with tempfile.TemporaryDirectory() as wheels:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
                        "-w", wheels, str(ROOT)], check=True)
        c.row("build", "wheel build", time.perf_counter() - t0, "s")
        wheel = next(Path(wheels).glob("dqnfast-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--upgrade",
                        "--target", str(site), str(wheel)], check=True)
        c.row("build", "wheel", wheel.name)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    import dqnfast
    if not Path(dqnfast.__file__).resolve().is_relative_to(site.resolve()):
        raise RuntimeError(f"dqnfast was imported from {dqnfast.__file__}, not from the fresh build in {site}")


def step_cuda_tests(c: Check) -> None:
    # -k cuda: the tests with a CUDA path (names and parameter ids say cuda); they skip without a GPU
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-k", "cuda",
                        *CUDA_TEST_FILES],
                       cwd=ROOT, capture_output=True, text=True)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
    for k in ("passed", "failed", "skipped"):
        c.row("cuda_tests", k, counts.get(k, 0))
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-2000:], sep="\n")
        raise RuntimeError(f"pytest exited {r.returncode}: {tail}")


def _random_batch(size: int, stack: int, shape, shared: bool, learner=None):
    import numpy as np

    from dqnfast import empty_batch
    b = learner.empty_batch(size, shared_frames=shared) if learner else empty_batch(size, stack, shape, shared)
    rng = np.random.default_rng(0)
    frames = b.obs.base if shared else None
    if shared:
        frames[:] = rng.integers(0, 256, frames.shape, dtype=np.uint8)
    else:
        b.obs[:] = rng.integers(0, 256, b.obs.shape, dtype=np.uint8)
        b.next_obs[:] = rng.integers(0, 256, b.next_obs.shape, dtype=np.uint8)
    b.action[:] = rng.integers(0, 4, size)
    b.reward[:] = rng.normal(size=size)
    b.terminated[:] = rng.random(size) < 0.1
    b.truncated[:] = False
    b.index[:] = np.arange(size)
    b.discount[:] = 0.99
    return b


def step_update(c: Check) -> None:
    import torch

    from dqnfast.fast_update import make_update
    from dqnfast.learner import DQNLearner
    dev = _device()
    shape, timed = ((36, 36), 3) if c.smoke else ((84, 84), 300)
    modes = ["eager", "compile"] + (["graph"] if dev.type == "cuda" else [])
    if dev.type != "cuda":
        c.row("update_step", "graph", "n/a", "", "CUDA graphs need a GPU")
    us: Dict[str, float] = {}
    for mode in modes:
        torch.manual_seed(0)
        lrn = DQNLearner(4, frame_shape=shape, stack=4, device=dev, seed=0, target_update_interval=1000)
        batch = _random_batch(32, 4, shape, shared=True, learner=lrn)
        t0 = time.perf_counter()
        update = make_update(lrn, mode, batch_size=32, shared_frames=True)
        for _ in range(3):  # warm-up (compilation happens here)
            update(batch)
        _sync()
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(timed):
            update(batch, metrics=False)
        _sync()
        us[mode] = (time.perf_counter() - t0) / timed * 1e6
        note = f"setup + 3 warm-up updates {setup:.1f} s"
        if mode != "eager":
            note += f"; {us['eager'] / us[mode]:.2f}x eager"
        c.row("update_step", f"{mode}, batch 32, {shape[0]}x{shape[1]}x4", us[mode], "µs/update", note)
    best = min(us.values())
    c.row("update_step", "best mode", min(us, key=us.get), "", f"goal <= 300 µs on the GPU: {best:.0f} µs")


def step_replay_sample(c: Check) -> None:
    import numpy as np
    import torch

    from dqnfast import ReplayBuffer
    from dqnfast.torch_replay import DeviceReplayBuffer
    dev = _device()
    capacity, calls = (2_000, 20) if c.smoke else (100_000, 500)
    shape = (84, 84)
    drb = DeviceReplayBuffer(capacity, shape, stack=4, seed=0, device=dev)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (64, *shape), dtype=np.uint8)
    drb.start_episode(pool[0])
    for i in range(capacity + capacity // 10):
        end = i % 500 == 499
        drb.add(int(i & 3), 1.0, pool[i & 63], end)
        if end:
            drb.start_episode(pool[(i + 1) & 63])
    host: ReplayBuffer = drb.buffer
    out = host.empty_batch(32)
    pinned = dev.type == "cuda"

    def host_then_copy():
        b = host.sample(32, out=out)
        return [torch.from_numpy(a).to(dev, non_blocking=pinned) for a in b]

    for name, fn in (("DeviceReplayBuffer.sample(32)", lambda: drb.sample(32)),
                     ("host sample(32) + copy to device", host_then_copy)):
        for _ in range(5):
            fn()
        _sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync()
        c.row("replay_sample", f"{name}, capacity {capacity:,}", (time.perf_counter() - t0) / calls * 1e6,
              "µs/call", f"on {dev.type}")


def _needs_atari() -> None:
    try:
        import ale_py  # noqa: F401
        import gymnasium  # noqa: F401
    except ImportError as e:
        raise SkipStep(f"needs gymnasium and ale-py ({e.name} missing): carry their wheels") from None


def step_data_path(c: Check) -> None:
    """The parallel data path (ProcessVectorEnv + add_batch + acting states + one sample(32) per 4
    agent steps), with W = 1, 2, 4, ... worker processes on as many envs as there are cores."""
    _needs_atari()
    from dqnfast.benchmarks.vector import bench_dqnfast_vector
    cores = os.cpu_count() or 1
    num_envs = 2 if c.smoke else cores
    steps = 200 if c.smoke else 20_000
    workers = [w for w in (1, 2, 4, 8, 16, 32, 64) if w <= num_envs]
    if workers[-1] != num_envs:
        workers.append(num_envs)
    rates: Dict[int, float] = {}
    for w in workers:
        t = bench_dqnfast_vector("ALE/Breakout-v5", steps // num_envs, num_envs, w, 84, 20_000, 32, 4, 0)
        rates[w] = (steps // num_envs) * num_envs / t.wall
        c.row("data_path", f"{num_envs} envs on {w} worker(s)", rates[w], "agent steps/s",
              f"{rates[w] / rates[workers[0]]:.2f}x 1 worker")


def _train_summary(text: str) -> Dict[str, float]:
    """The figures `dqnfast train` prints at its end."""
    out: Dict[str, float] = {}
    m = re.search(r"done: (\d+) steps, (\d+) updates, (\d+) games in (\d+) s \((\d+) steps/s\)", text)
    if m:
        out.update(steps=float(m[1]), updates=float(m[2]), games=float(m[3]), seconds=float(m[4]), sps=float(m[5]))
    m = re.search(r"evaluation \((\d+) games, epsilon [\d.]+\): ([-\d.]+) \+- ([\d.]+)", text)
    if m:
        out.update(eval_games=float(m[1]), eval_mean=float(m[2]), eval_std=float(m[3]))
    return out


def step_train(c: Check, seconds: float) -> None:
    """A time-boxed Breakout run of the ``gpu`` preset (its 16 env workers capped at the core count),
    then the trainer's own evaluation on the real game score."""
    _needs_atari()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="dqnfast-train-") as runs:
        if c.smoke:
            args = ["--preset", "demo", "--frame-size", "36", "--buffer-size", "4000", "--batch-size", "8",
                    "--learning-starts", "200", "--total-steps", "100000", "--num-envs", "2", "--env-workers", "2",
                    "--eval-episodes", "1", "--torch-threads", "1", "--device", "cpu"]
        else:
            workers = min(16, cores)
            args = ["--preset", "gpu", "--num-envs", str(max(16, workers)), "--env-workers", str(workers),
                    "--eval-episodes", "5"]
        args += ["--max-seconds", str(seconds), "--run-dir", runs, "--run-name", "check", "--no-progress",
                 "--no-tensorboard"]
        r = subprocess.run([sys.executable, "-m", "dqnfast.train", *args], capture_output=True, text=True)
        print(r.stdout[-3000:], r.stderr[-3000:], sep="\n")
        if r.returncode != 0:
            raise RuntimeError(f"dqnfast train exited {r.returncode}")
    s = _train_summary(r.stdout)
    if "sps" not in s:
        raise RuntimeError("dqnfast train printed no summary")
    c.row("train", "agent steps in the time box", s["steps"], "", f"{s['seconds']:.0f} s, {s['updates']:.0f} updates")
    c.row("train", "agent steps/s with learning", s["sps"], "steps/s", "goal >= 10,000 on the GPU box")
    if "eval_mean" in s:
        c.row("train", f"evaluation, {s['eval_games']:.0f} real games", s["eval_mean"], "score",
              f"+- {s['eval_std']:.1f}; goal >= 100 after 10 min (this box: {seconds:.0f} s)")


STEPS = ("build", "machine", "cuda_tests", "update_step", "replay_sample", "data_path", "train")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="the same steps on CPU with tiny sizes, in a few minutes")
    p.add_argument("--no-build", action="store_true", help="skip building; use the dqnfast already importable")
    p.add_argument("--steps", default=",".join(STEPS),
                   help="comma-separated steps to run, in their usual order (default: all): " + ", ".join(STEPS))
    p.add_argument("--site", default=None,
                   help="folder the build installs into and later steps import from (default: a temporary one); "
                        "a later call with --no-build and this folder on PYTHONPATH reuses the build")
    p.add_argument("--train-seconds", type=float, default=270.0, help="wall-clock budget of the training run")
    p.add_argument("--json", default=None, help="where to write the figures (default: $OUT or . / device_check.json)")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown or not chosen:
        p.error(f"--steps: unknown step(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(STEPS)}")
    if args.no_build:
        chosen = [s for s in chosen if s != "build"]
    if args.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU, even on a GPU machine
        import torch
        torch.set_num_threads(1)  # tiny networks on shared cores: more threads only contend
    out = Path(args.json) if args.json else Path(os.environ.get("OUT") or ".") / "device_check.json"
    c = Check(args.smoke, out)
    steps: Dict[str, Callable[[Check], None]] = {
        "machine": step_machine, "cuda_tests": step_cuda_tests, "update_step": step_update,
        "replay_sample": step_replay_sample, "data_path": step_data_path,
        "train": lambda c: step_train(c, 15.0 if args.smoke else args.train_seconds)}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dqnfast-site-") as scratch:
        site = Path(args.site) if args.site else Path(scratch)
        steps["build"] = lambda c: step_build(c, site)
        for name in STEPS:
            if name in chosen:
                c.run(name, steps[name])
    total = time.perf_counter() - t0
    c.row("total", "wall clock", total, "s", "goal < 540 s on the GPU machine (all steps)")
    print("\n" + c.table())
    c.save(complete=True)
    print(f"\nwritten: {out}")
    failed = [n for n, s in c.steps.items() if s["status"].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
