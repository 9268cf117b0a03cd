"""`dqnfast bench torchrl`: sample(32) through dqnfast's TorchRL adapter against TorchRL's own buffers.

Both sides hold the same single 84x84 uint8 frames, written as collector batches, and return 32
transitions with stacks of 4 frames:

- dqnfast: ``DqnfastTensorDictReplayBuffer`` (the frame store; stacks built natively at sample time).
- TorchRL, frames stacked in the buffer: ``ReplayBuffer`` with ``LazyTensorStorage``, a
  ``SliceSampler`` and ``CatFrames``, made by ``CatFrames.make_rb_transform_and_sampler`` (TorchRL's
  way to store single frames; TorchRL's ``examples/replay-buffers/catframes-in-buffer.py``). It stores pixels
  and ("next", "pixels") for every step, and draws slices of 4 steps within an episode (so never the
  first 3 steps of one).
- TorchRL, stacks stored (``--stacked``): what TorchRL's DQN example does, the env's CatFrames
  stacks stored whole: 8 frames per transition.

Each side is built, timed and freed before the next, so only one is in memory at a time; a size
whose estimated memory exceeds what the machine has available is skipped and said so.
"""
from __future__ import annotations

import argparse
import gc
import logging
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from tensordict import TensorDict

from .replay import machine

FRAME = (84, 84)
FRAME_BYTES = 84 * 84


def available_bytes() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def batches(steps: int, chunk: int, mean_episode: int, stacked: bool, seed: int = 0):
    """Collector-style [T] TensorDicts over `steps` steps of one env with random episode ends. Frames
    come from a pool, by (episode start, step in episode), so that consecutive steps share frames as
    an env's do (the adapter checks that); their content does not matter here."""
    rng = np.random.default_rng(seed)
    pool = torch.from_numpy(rng.integers(0, 256, (64, *FRAME), dtype=np.uint8))
    ends = rng.random(steps) < 1.0 / mean_episode
    i = np.arange(steps)
    is_start = np.concatenate([[True], ends[:-1]])
    start = torch.from_numpy(np.maximum.accumulate(np.where(is_start, i, 0)))
    traj = torch.from_numpy(np.cumsum(is_start) - 1)
    ends = torch.from_numpy(ends)
    for lo in range(0, steps, chunk):
        t = torch.arange(lo, min(lo + chunk, steps))
        k, s0 = t - start[t], start[t]  # step in episode, episode start
        if stacked:  # CatFrames(N=4, padding="same") stacks: the first frame repeated before an episode's start
            cur = pool[torch.stack([(s0 * 7 + torch.clamp(k - j, min=0)) % 64 for j in (3, 2, 1, 0)], -1)]
            nxt = pool[torch.stack([(s0 * 7 + torch.clamp(k + 1 - j, min=0)) % 64 for j in (3, 2, 1, 0)], -1)]
        else:  # single (1, H, W) frames
            cur, nxt = pool[(s0 * 7 + k) % 64].unsqueeze(1), pool[(s0 * 7 + k + 1) % 64].unsqueeze(1)
        done = ends[t].unsqueeze(-1)
        yield TensorDict({
            "pixels": cur, "action": torch.randint(0, 4, (len(t),)), "collector": {"traj_ids": traj[t]},
            "next": {"pixels": nxt, "reward": torch.ones(len(t), 1), "done": done, "terminated": done.clone(),
                     "truncated": torch.zeros_like(done)},
        }, batch_size=[len(t)])


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e6


def dqnfast_side(n: int, args) -> Dict[str, float]:
    from ..torchrl_buffer import DqnfastTensorDictReplayBuffer

    rb = DqnfastTensorDictReplayBuffer(n + n // 50 + 1000, stack=4, num_envs=1, seed=0, batch_size=args.batch)
    t = time.perf_counter()
    for d in batches(n, args.chunk, args.episode, stacked=False):
        rb.extend(d)
    fill = time.perf_counter() - t
    rb.sample()
    us = statistics.median(per_call_us(rb.sample, args.calls) for _ in range(args.rounds))
    native = statistics.median(per_call_us(lambda: rb.store.sample(args.batch), args.calls) for _ in range(args.rounds))
    return {"us": us, "native_us": native, "bytes": rb.nbytes / rb.capacity, "fill_s": fill}


def torchrl_slice_side(n: int, args) -> Dict[str, float]:
    from torchrl.data import LazyTensorStorage, ReplayBuffer
    from torchrl.envs import CatFrames

    # out_keys differ from in_keys: the transform drops its out_keys on the way in, so the stacks go to "stacked"
    cat = CatFrames(N=4, dim=-3, in_keys=["pixels"], out_keys=["stacked"], reset_key="_reset")
    transform, sampler = cat.make_rb_transform_and_sampler(batch_size=args.batch, traj_key=("collector", "traj_ids"),
                                                           strict_length=True)
    # (a plain ReplayBuffer, as TorchRL's example: the sampler draws 4 rows per transition, which
    # TensorDictReplayBuffer's per-row "index" would not fit)
    rb = ReplayBuffer(storage=LazyTensorStorage(n), sampler=sampler, transform=transform, batch_size=args.batch)
    t = time.perf_counter()
    for d in batches(n, args.chunk, args.episode, stacked=False):
        rb.extend(d)
    fill = time.perf_counter() - t
    s = rb.sample()
    assert s["stacked"].shape == (args.batch, 4, *FRAME) == s["next", "stacked"].shape, s["stacked"].shape
    us = statistics.median(per_call_us(rb.sample, max(args.calls // 10, 3)) for _ in range(args.rounds))
    return {"us": us, "bytes": rb.storage[0:1].bytes(), "fill_s": fill}  # one stored row


def torchrl_stacked_side(n: int, args) -> Dict[str, float]:
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(n), batch_size=args.batch)
    t = time.perf_counter()
    for d in batches(n, args.chunk, args.episode, stacked=True):
        rb.extend(d)
    fill = time.perf_counter() - t
    us = statistics.median(per_call_us(rb.sample, args.calls) for _ in range(args.rounds))
    return {"us": us, "bytes": rb.storage[0:1].bytes(), "fill_s": fill}


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="dqnfast bench torchrl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="transitions held")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=200, help="sample calls per round (TorchRL's slice sampler: 1/10)")
    p.add_argument("--episode", type=int, default=400, help="mean episode length in steps")
    p.add_argument("--chunk", type=int, default=1000, help="steps per extend (a collector batch)")
    p.add_argument("--stacked", action="store_true", help="also TorchRL with whole stacks stored (8 frames/step)")
    args = p.parse_args(argv)
    if min(args.sizes) < 1000 or args.batch <= 0 or args.rounds <= 0 or args.calls <= 0:
        p.error("--sizes must be >= 1000 and --batch/--rounds/--calls positive")
    import tensordict
    import torchrl

    torch.set_num_threads(1)  # as the other benches: one core, no intra-op contention on small machines
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchrl")
    warnings.filterwarnings("ignore", message="The last dimension of the tensordict should be marked as 'time'")
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    print(f"dqnfast bench torchrl: 84x84 uint8 frames, stack 4, sample({args.batch}) - {machine()}, torch "
          f"{torch.__version__}, torchrl {torchrl.__version__}, tensordict {tensordict.__version__}")
    sides = [("dqnfast TorchRL adapter", dqnfast_side, FRAME_BYTES),
             ("TorchRL SliceSampler + CatFrames", torchrl_slice_side, 2 * FRAME_BYTES)]
    if args.stacked:
        sides.append(("TorchRL, stacks stored", torchrl_stacked_side, 8 * FRAME_BYTES))
    print(f"\n{'buffer':<36}{'size':>11}{'us/sample':>11}{'B/trans':>10}{'fill s':>8}   notes")
    for n in args.sizes:
        first = None
        for name, fn, per in sides:
            need, have = n * per * 1.1, available_bytes()
            if have is not None and need > 0.8 * have:
                print(f"{name:<36}{n:>11,}{'skipped':>11}   needs ~{need / 1e9:.1f} GB, "
                      f"{have / 1e9:.1f} GB available")
                continue
            r = fn(n, args)
            note = ""
            if first is None:
                first = r["us"]
                if "native_us" in r:
                    note = f"native ReplayBuffer.sample: {r['native_us']:.0f} us"
            else:
                note = f"{r['us'] / first:.1f}x the adapter's time"
            print(f"{name:<36}{n:>11,}{r['us']:>11.0f}{r['bytes']:>10,.0f}{r['fill_s']:>8.1f}   {note}", flush=True)
            del r
            gc.collect()
    return 0
