"""`dqnfast bench preprocess`: the preprocessing kernel against OpenCV, and the Atari wrapper
against gymnasium's, each pair measured in the same process and interleaved, so the ratios hold
on a shared, noisy machine even when the absolute times drift."""
from __future__ import annotations

import argparse
import os
import platform
import timeit
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import _core
from ..preprocessing import preprocess

H, W = 210, 160


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{cpu}, {os.cpu_count()} cores, SIMD path {_core.simd_level()}, load average {load}"


def interleaved_best(cases: Dict[str, Callable[[], object]], number: int, repeat: int) -> Dict[str, float]:
    """Best seconds per call of each case; the cases take turns, one batch of calls each per round."""
    timers = {k: timeit.Timer(fn) for k, fn in cases.items()}
    best = {k: float("inf") for k in cases}
    for fn in cases.values():
        fn()  # warm up: plans, allocations, caches
    for _ in range(repeat):
        for k, t in timers.items():
            best[k] = min(best[k], t.timeit(number) / number)
    return best


def kernel_rows(repeat: int, batches: Tuple[int, ...]) -> List[Tuple[str, float, float]]:
    import cv2

    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    p = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    out = np.empty((84, 84), np.uint8)
    crop = (34, 194, 8, 152)
    nearest, area = cv2.INTER_NEAREST, cv2.INTER_AREA

    def cv(img, interp, c=None):
        if c is not None:
            img = img[c[0]:c[1], c[2]:c[3]]
        return cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=interp)

    pairs: Dict[str, Tuple[Callable[[], object], Callable[[], object], int]] = {
        "1 frame 210x160x3 -> 84x84 nearest": (lambda: preprocess(f), lambda: cv(f, nearest), 1),
        "  same, into out=": (lambda: preprocess(f, out=out), lambda: cv(f, nearest), 1),
        "  same, cropped 160x144": (lambda: preprocess(f, crop=crop), lambda: cv(f, nearest, crop), 1),
        "  same, max with prev frame": (lambda: preprocess(f, prev=p), lambda: cv(np.maximum(f, p), nearest), 1),
    }

    def batch_pair(n: int, interp: str, cv_interp: int):
        fb = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
        outb = np.empty((n, 84, 84), np.uint8)

        def theirs():
            for i in range(n):
                outb[i] = cv(fb[i], cv_interp)

        return (lambda: preprocess(fb, out=outb, interp=interp)), theirs, n

    for n in batches:
        pairs[f"batch of {n} ({n * H * W * 3 >> 10} KiB), per frame, nearest"] = batch_pair(n, "nearest", nearest)
    pairs["1 frame -> 84x84 area"] = (lambda: preprocess(f, interp="area"), lambda: cv(f, area), 1)
    for n in batches:
        pairs[f"batch of {n}, per frame, area"] = batch_pair(n, "area", area)
    pairs["gray screen 210x160 -> 84x84 area"] = (lambda: preprocess(g, interp="area"),
                                                  lambda: cv2.resize(g, (84, 84), interpolation=area), 1)
    rows = []
    for name, (ours, theirs, per) in pairs.items():
        n = max(10, 500 // per)  # short rounds, many of them: the best one dodges the neighbours
        best = interleaved_best({"ours": ours, "cv": theirs}, n, repeat)
        rows.append((name, best["ours"] / per * 1e6, best["cv"] / per * 1e6))
    return rows


def env_rows(steps: int, repeat: int) -> List[Tuple[str, float, float]]:
    import ale_py
    import gymnasium as gym

    from ..wrappers import AtariPreprocessing

    gym.register_envs(ale_py)

    def make(ours: bool, interp: str = "area"):
        env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
        return AtariPreprocessing(env, interp=interp) if ours else gym.wrappers.AtariPreprocessing(env)

    actions = np.random.default_rng(0).integers(0, 4, steps)
    rows = []
    for label, interp in (("area (gymnasium's resize)", "area"), ("nearest", "nearest")):
        envs = {"ours": make(True, interp), "gym": make(False)}
        for e in envs.values():
            e.reset(seed=0)

        def run(env):
            def go():
                for a in actions:
                    _, _, term, trunc, _ = env.step(int(a))
                    if term or trunc:
                        env.reset()
            return go

        best = interleaved_best({k: run(e) for k, e in envs.items()}, 1, repeat)
        rows.append((f"Breakout agent steps/s, {label}", steps / best["ours"], steps / best["gym"]))
        for e in envs.values():
            e.close()
    return rows


def batching_rows(repeat: int, batches: Tuple[int, ...]) -> List[Tuple[str, float, float]]:
    """Per-frame cost of one batched call against single calls over the same N distinct frames
    (a single call on one cache-hot frame would flatter the single calls)."""
    rng = np.random.default_rng(1)
    rows = []
    for n in batches:
        frames = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
        out = np.empty((n, 84, 84), np.uint8)
        views, outs = list(frames), list(out)

        def singles():
            for f, o in zip(views, outs):
                preprocess(f, out=o)

        best = interleaved_best({"singles": singles, "batch": lambda: preprocess(frames, out=out)},
                                max(1, 4000 // n), repeat)
        rows.append((f"{n} frames: single calls vs one batched call", best["singles"] / n * 1e6, best["batch"] / n * 1e6))
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dqnfast bench preprocess", description=__doc__)
    ap.add_argument("--repeat", type=int, default=15, help="rounds per case; the best round counts (default 15)")
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 64],
                    help="frames per batched call (default: 8, which stays in cache, and 64, which does not)")
    ap.add_argument("--env-steps", type=int, default=1000, help="agent steps per env round (default 1000)")
    ap.add_argument("--no-env", action="store_true", help="skip the Breakout wrapper benchmark")
    ap.add_argument("--simd", choices=["auto", "scalar", "avx2", "avx512"], default="auto",
                    help="force a kernel path (default: the best this CPU has)")
    args = ap.parse_args(argv)
    try:
        import cv2
    except ImportError:
        print("dqnfast bench preprocess: needs opencv-python-headless for the baseline")
        return 2
    try:
        _core.set_simd(args.simd)
    except ValueError as e:
        print(f"dqnfast bench preprocess: {e}")
        return 2
    print(f"machine: {machine()}; OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
    print(f"{'preprocess, Python call included':<46} {'dqnfast us':>11} {'OpenCV us':>10} {'speed-up':>9}")
    for name, ours, theirs in kernel_rows(args.repeat, tuple(args.batch)):
        print(f"{name:<46} {ours:>11.2f} {theirs:>10.2f} {theirs / ours:>8.1f}x")
    print(f"{'batching, same frames, nearest':<46} {'single us':>11} {'batched us':>10} {'gain':>9}")
    for name, singles, batched in batching_rows(args.repeat, tuple(args.batch)):
        print(f"{name:<46} {singles:>11.2f} {batched:>10.2f} {singles / batched:>8.2f}x")
    if not args.no_env:
        try:
            rows = env_rows(args.env_steps, max(2, args.repeat // 2))
        except ImportError as e:
            print(f"(wrapper benchmark skipped: {e})")
        else:
            print(f"{'wrapper vs gymnasium.wrappers.AtariPreprocessing':<52} {'dqnfast':>9} {'gymnasium':>10} {'ratio':>6}")
            for name, ours, theirs in rows:
                print(f"{name:<52} {ours:>9.0f} {theirs:>10.0f} {ours / theirs:>5.2f}x")
    _core.set_simd("auto")
    return 0
