"""`dqnfast bench replay`: add/sample speed and memory of the native buffer against baselines
measured in the same process: memcpy of the same bytes, a numpy frame store with fancy indexing
(which ignores episode boundaries), and the pure-Python reference buffer.

Shared machines are noisy, so every figure is a median over rounds, baselines are interleaved
with the native calls round by round, and the goals are stated as ratios.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

from ..replay_reference import PyReplayBuffer
from ..replay import ReplayBuffer

STACKED_OBS_BYTES = 28_224  # a stacked-obs buffer storing each 4x84x84 obs once (SB3 optimize_memory_usage)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def fill(rb, n_steps: int, frame_shape, seed: int = 0, mean_episode: int = 400) -> None:
    """Episodes of random length from a pool of distinct frames (the content does not matter)."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (64, *frame_shape), dtype=np.uint8)
    ends = rng.random(n_steps) < 1.0 / mean_episode
    rb.start_episode(pool[0])
    add, start = rb.add, rb.start_episode
    for i in range(n_steps):
        end = bool(ends[i])
        add(i & 3, 1.0, pool[i & 63], end)
        if end:
            start(pool[(i + 1) & 63])


def per_call_us(fn: Callable[[], None], calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e6


def bench_add(capacity: int, frame_shape, calls: int, rounds: int) -> Dict[str, float]:
    """Steady-state add: the store has been written through once, so no first-touch page faults."""
    frame = np.zeros(frame_shape, np.uint8)
    rb = ReplayBuffer(capacity, frame_shape)
    ref = PyReplayBuffer(capacity, frame_shape)
    for buf in (rb, ref):
        fill(buf, capacity, frame_shape)
        buf.start_episode(frame)
    native, python = [], []
    for _ in range(rounds):
        add = rb.add
        native.append(per_call_us(lambda: add(1, 1.0, frame, False), calls))
        radd = ref.add
        python.append(per_call_us(lambda: radd(1, 1.0, frame, False), max(calls // 20, 100)))
    return {"native": statistics.median(native), "python": statistics.median(python)}


def bench_sample(rb: ReplayBuffer, batch: int, rounds: int, calls: int, ref=None) -> Dict[str, float]:
    cap = rb.capacity
    frames = rb.frames_view()  # the same memory, viewed by numpy
    actions = np.zeros(cap, np.int64)
    rewards = np.zeros(cap, np.float32)
    dones = np.zeros(cap, np.bool_)
    valid = rb.valid_indices()
    rng = np.random.default_rng(1)
    out = rb.empty_batch(batch)
    shared = rb.empty_batch(batch, shared_frames=True)  # obs/next_obs share frames: stack + 1 a row, not 2 * stack
    mc_obs, mc_next = np.empty_like(out.obs), np.empty_like(out.next_obs)
    offsets = np.arange(-rb.stack, 0)

    def numpy_fancy() -> None:  # a frame store that ignores episode boundaries and the cursor
        idx = rng.integers(rb.stack, cap - 1, batch)
        obs_idx = idx[:, None] + offsets
        frames[obs_idx]
        frames[obs_idx + 1]
        actions[idx], rewards[idx], dones[idx]

    index_sets = [valid[rng.integers(0, len(valid), batch)] for _ in range(calls)]
    torch_shift = drq_torch_shift()
    results: Dict[str, List[float]] = {"native": [], "shared": [], "memcpy": [], "numpy": [], "python": [],
                                       "shift": [], "shift_shared": [], "torch_shift": []}
    for _ in range(rounds):
        results["native"].append(per_call_us(lambda: rb.sample(batch, out=out), calls))
        results["shift"].append(per_call_us(lambda: rb.sample(batch, out=out, shift=SHIFT), calls))
        results["shared"].append(per_call_us(lambda: rb.sample(batch, out=shared), calls))
        results["shift_shared"].append(per_call_us(lambda: rb.sample(batch, out=shared, shift=SHIFT), calls))
        if torch_shift is not None:
            def sample_then_shift() -> None:
                b = rb.sample(batch, out=out)
                torch_shift(b.obs), torch_shift(b.next_obs)
            results["torch_shift"].append(per_call_us(sample_then_shift, max(calls // 20, 5)))
        it = iter(index_sets)
        results["memcpy"].append(per_call_us(lambda: rb.memcpy_baseline(next(it), mc_obs, mc_next), calls))
        results["numpy"].append(per_call_us(numpy_fancy, calls))
        if ref is not None:
            results["python"].append(per_call_us(lambda: ref.sample(batch), max(calls // 50, 5)))
    return {k: statistics.median(v) for k, v in results.items() if v}


SHIFT = 4  # DrQ's pad on 84x84 frames


def drq_torch_shift():
    """The same augmentation done in torch on a sampled uint8 batch, as DrQ-v2's RandomShiftsAug
    does it (edge padding, then grid_sample at a random integer offset per state), or None without
    torch. The learner converts frames to float anyway, so the conversion is part of this cost."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(1)  # one core, as the trainer's learner on a laptop CPU

    def shift(frames: np.ndarray):
        x = torch.from_numpy(frames).float()
        n, _, h, w = x.shape
        x = F.pad(x, (SHIFT,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * SHIFT)
        ar = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * SHIFT)[:h]
        ar = ar.unsqueeze(0).repeat(h, 1).unsqueeze(2)
        base = torch.cat([ar, ar.transpose(1, 0)], 2).unsqueeze(0).repeat(n, 1, 1, 1)
        offset = torch.randint(0, 2 * SHIFT + 1, (n, 1, 1, 2)).float() * (2.0 / (h + 2 * SHIFT))
        return F.grid_sample(x, base + offset, padding_mode="zeros", align_corners=False)

    return shift


def bench_save_load(capacity: int, frame_shape, directory: str) -> Dict[str, float]:
    """GB/s of save (to the page cache, and durable with fsync) and load, for a full buffer."""
    rb = ReplayBuffer(capacity, frame_shape, seed=0)
    fill(rb, capacity + capacity // 10, frame_shape)
    path = os.path.join(directory, f"dqnfast-bench-{os.getpid()}.rb")
    try:
        t = time.perf_counter()
        rb.save(path, durable=False)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        rb.save(path, durable=True)
        durable_s = time.perf_counter() - t
        gb = os.path.getsize(path) / 1e9
        t = time.perf_counter()
        ReplayBuffer.load(path)
        load_s = time.perf_counter() - t
    finally:
        if os.path.exists(path):
            os.remove(path)
    return {"gb": gb, "save": gb / save_s, "durable": gb / durable_s, "load": gb / load_s}


def bench_prioritized(capacity: int, frame_shape, rounds: int, calls: int) -> Dict[str, float]:
    """Prioritized sample(32) + update_priorities, and save/load, against cpprb when installed."""
    from ..prioritized import PrioritizedReplayBuffer

    rng = np.random.default_rng(0)
    rb = PrioritizedReplayBuffer(capacity, frame_shape, seed=0, alpha=0.6)
    fill(rb, capacity + capacity // 10, frame_shape)
    res: Dict[str, List[float]] = {"dqnfast": [], "cpprb": []}

    out = rb.empty_prioritized_batch(32)

    def ours() -> None:
        b = rb.sample(32, beta=0.4, out=out)
        rb.update_priorities(b.index, rng.random(32) + 0.1)

    cb = None
    try:
        import cpprb

        env = {"obs": {"shape": (4, *frame_shape), "dtype": np.uint8}, "act": {"dtype": np.int64}, "rew": {},
               "done": {}}
        cb = cpprb.PrioritizedReplayBuffer(capacity, env, next_of="obs", stack_compress="obs", alpha=0.6)
        pool = rng.integers(0, 256, (8, 4, *frame_shape), dtype=np.uint8)
        for i in range(capacity):
            cb.add(obs=pool[i & 7], act=i & 3, rew=1.0, next_obs=pool[(i + 1) & 7], done=0.0)
    except ImportError:
        pass

    def theirs() -> None:
        b = cb.sample(32, beta=0.4)
        cb.update_priorities(b["indexes"], rng.random(32) + 0.1)

    for _ in range(rounds):
        res["dqnfast"].append(per_call_us(ours, calls))
        if cb is not None:
            res["cpprb"].append(per_call_us(theirs, max(calls // 10, 10)))
    out = {k: statistics.median(v) for k, v in res.items() if v}
    return out


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="dqnfast bench replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capacity", type=int, default=1_000_000, help="frame slots for the sample benchmark")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=300, help="sample calls per round")
    p.add_argument("--no-reference", action="store_true", help="skip the pure-Python buffer at full capacity")
    p.add_argument("--save-capacity", type=int, default=100_000, help="buffer size for the save/load figures")
    p.add_argument("--save-dir", default=None, help="where to write the snapshot (default: the temp dir)")
    args = p.parse_args(argv)
    if args.capacity < 1000 or args.batch <= 0 or args.rounds <= 0 or args.calls <= 0:
        p.error("--capacity must be >= 1000 and --batch/--rounds/--calls positive")
    shape = (84, 84)
    print(f"dqnfast bench replay: 84x84 uint8 frames, stack 4 - {machine()}")

    add = bench_add(100_000, shape, calls=50_000, rounds=args.rounds)
    rss0 = resident_bytes()
    t = time.perf_counter()
    rb = ReplayBuffer(args.capacity, shape, seed=0)
    fill(rb, args.capacity + args.capacity // 10, shape)
    fill_s = time.perf_counter() - t
    rss = resident_bytes() - rss0
    ref = None
    if not args.no_reference:
        ref = PyReplayBuffer(args.capacity, shape, seed=0)
        fill(ref, args.capacity + args.capacity // 10, shape)
    s = bench_sample(rb, args.batch, args.rounds, args.calls, ref)

    rows = [
        ("add, native (steady state)", add["native"], "goal <= 1 us"),
        ("add, pure-Python reference", add["python"], f"native is {add['python'] / add['native']:.1f}x faster"),
        (f"sample({args.batch}), native", s["native"], f"capacity {args.capacity:,}"),
        (f"sample({args.batch}), native, shared frames", s["shared"],
         f"shared/standard = {s['shared'] / s['native']:.2f} (stack + 1 frames a row, not 2 * stack)"),
        (f"sample({args.batch}, shift={SHIFT}), native", s["shift"],
         f"shift/plain = {s['shift'] / s['native']:.2f} (goal <= 1.3)"),
        (f"sample({args.batch}, shift={SHIFT}), native, shared frames", s["shift_shared"],
         f"shift/plain = {s['shift_shared'] / s['shared']:.2f} (one offset for obs and next_obs)"),
        ("memcpy of the same bytes", s["memcpy"], f"native/memcpy = {s['native'] / s['memcpy']:.2f} (goal <= 1.5)"),
        ("numpy frame store, fancy indexing", s["numpy"], f"numpy/native = {s['numpy'] / s['native']:.2f} (goal >= 4)"),
    ]
    if "torch_shift" in s:
        rows.append((f"sample({args.batch}) + the shift in torch (grid_sample)", s["torch_shift"],
                     f"torch/native shift = {s['torch_shift'] / s['shift']:.0f} (one torch thread)"))
    if "python" in s:
        rows.append((f"sample({args.batch}), pure-Python reference", s["python"],
                     f"native is {s['python'] / s['native']:.0f}x faster"))
    print(f"\n{'operation':<44}{'us/call':>10}   notes")
    for name, us, note in rows:
        print(f"{name:<44}{us:>10.2f}   {note}")
    per = rb.nbytes / rb.capacity
    print(f"\nmemory: {per:,.0f} B/transition allocated ({per / (84 * 84):.3f} x frame bytes, goal <= 1.05), "
          f"{rss / rb.capacity:,.0f} B/transition resident after filling; "
          f"a stacked-obs buffer needs {STACKED_OBS_BYTES:,} B ({STACKED_OBS_BYTES / per:.1f}x more)")
    print(f"filling {args.capacity:,} slots (first touch of every page included) took {fill_s:.1f} s")
    del rb, ref
    per = bench_prioritized(50_000, shape, args.rounds, max(args.calls // 3, 30))
    line = f"\nprioritized sample(32) + update_priorities at capacity 50,000: dqnfast {per['dqnfast']:.1f} us"
    if "cpprb" in per:
        line += f", cpprb {per['cpprb']:.1f} us (dqnfast {per['cpprb'] / per['dqnfast']:.1f}x faster)"
    else:
        line += " (install cpprb to compare)"
    print(line)
    import tempfile

    directory = args.save_dir or tempfile.gettempdir()
    io = bench_save_load(args.save_capacity, shape, directory)
    print(f"\nsave/load of a full {args.save_capacity:,}-slot buffer ({io['gb']:.2f} GB) in {directory}: "
          f"save {io['save']:.2f} GB/s to the page cache, {io['durable']:.2f} GB/s with fsync; "
          f"load {io['load']:.2f} GB/s (checksum verified)")
    return 0
