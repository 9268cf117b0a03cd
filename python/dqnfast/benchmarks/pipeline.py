"""`dqnfast bench pipeline`: agent steps/s of the DQN data path alone (no gradient), in one run.

Paths, all taking the same seeded random actions:

- dqnfast: ``make_atari_env`` (no-op starts, frame skip + max, preprocess, episodic life, FIRE on
  reset, reward clipping) -> ``ReplayBuffer.add`` (+ the stacked state the agent acts on) ->
  ``ReplayBuffer.sample(batch)`` every ``train_frequency`` steps; and its wrapper alone, to split the
  cost between the env stack and the replay;
- CleanRL-style: gymnasium's ``AtariPreprocessing`` + ``FrameStackObservation`` -> a numpy buffer
  that stores each transition's stacked obs and next_obs -> fancy-index sampling; and the same with
  SB3's ``ReplayBuffer`` (optimize_memory_usage) when installed.

Raw ALE, the floor: each path's emulator calls (every ``ale.act`` and ``reset_game``, recorded in
an untimed run) replayed on a bare ALE, no screen reads. A path's cost is its time over the replay
of its own emulation, so frames that the DQN protocol itself emulates (no-op starts, FIRE after a
reset, the no-op after a lost life) count as emulation, and everything else as the data path's
cost (goal for dqnfast: at most 1.10x). The replay buffers are filled to capacity before timing:
the timed steps see a full buffer, as nearly all of a training run does, and no first-touch page
faults.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np


def scripted_actions(n: int, num_actions: int, seed: int) -> np.ndarray:
    """The same random action sequence for every env or buffer a bench compares."""
    return np.random.default_rng(seed).integers(num_actions, size=n)


def _gym():
    import ale_py
    import gymnasium as gym
    gym.register_envs(ale_py)
    return gym


class _RecordingALE:
    """Stands in for an env's ALEInterface: forwards every call and records the emulator's work."""

    def __init__(self, ale) -> None:
        self._ale = ale
        self.ops: List[object] = []  # ALE actions, None for reset_game

    def act(self, action, strength=1.0):
        self.ops.append(action)
        return self._ale.act(action, strength)

    def reset_game(self):
        self.ops.append(None)
        return self._ale.reset_game()

    def __getattr__(self, name: str):
        return getattr(self._ale, name)


class Emulation(NamedTuple):
    """What one path made the emulator do: ``setup`` ops (before timing) then ``ops`` (timed)."""

    setup: List[object]
    ops: List[object]
    final_ram: np.ndarray


def record_emulation(make_env: Callable, steps: int, seed: int) -> Emulation:
    """Runs a path's env loop untimed (same seed, same actions as the timed run) and records it."""
    env = make_env()
    proxy = _RecordingALE(env.unwrapped.ale)
    env.unwrapped.ale = proxy
    env.reset(seed=seed)
    setup, proxy.ops = proxy.ops, []
    for a in scripted_actions(steps, int(env.action_space.n), seed):
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    emu = Emulation(setup, proxy.ops, proxy.getRAM().copy())
    env.close()
    return emu


def bench_raw_ale(env_id: str, emulation: Emulation, seed: int) -> float:
    """Seconds for bare ALE to emulate exactly what a path's timed steps did (no screen reads)."""
    gym = _gym()
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0)
    env.reset(seed=seed)  # seeds and resets as the path's first reset did
    ale = env.unwrapped.ale
    setup = emulation.setup[1:] if emulation.setup[:1] == [None] else emulation.setup  # that reset is done
    for op in setup:
        ale.reset_game() if op is None else ale.act(op)
    t0 = time.perf_counter()
    for op in emulation.ops:
        if op is None:
            ale.reset_game()
        else:
            ale.act(op)
    dt = time.perf_counter() - t0
    if not np.array_equal(ale.getRAM(), emulation.final_ram):
        raise RuntimeError("the raw ALE replay diverged from the recorded run (is the emulation deterministic?)")
    env.close()
    return dt


def dqnfast_env(env_id: str, frame_size: int, frame_skip: int, seed: int, crop=None, interp: str = "nearest"):
    from ..wrappers import make_atari_env
    return make_atari_env(env_id, seed=seed, screen_size=frame_size, frame_skip=frame_skip, crop=crop, interp=interp)


def bench_dqnfast_env(env_id: str, steps: int, frame_size: int, frame_skip: int, seed: int, crop=None,
                      interp: str = "nearest") -> float:
    """Seconds for ``steps`` agent steps of ``make_atari_env`` alone (no replay): splits the dqnfast
    path's cost between the env stack and the replay."""
    env = dqnfast_env(env_id, frame_size, frame_skip, seed, crop, interp)
    acts = scripted_actions(steps, int(env.action_space.n), seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return dt


def prefill(rb, episode_length: int = 1000) -> None:
    """Fills a ReplayBuffer to capacity with blank episodes (touching all of its memory)."""
    blank = np.zeros(rb.frame_shape, np.uint8)
    rb.start_episode(blank)
    for i in range(rb.capacity):
        end = (i + 1) % episode_length == 0
        rb.add(0, 0.0, blank, end, False)
        if end:
            rb.start_episode(blank)


def bench_dqnfast(env_id: str, steps: int, frame_size: int, frame_skip: int, capacity: int, batch: int,
                  train_frequency: int, seed: int, crop=None, interp: str = "nearest", threaded: bool = False) -> float:
    """Seconds for ``steps`` agent steps of the dqnfast data path. ``threaded``: the sampling runs on
    a second thread, as ``dqnfast train --async-actor`` splits the work (the actor steps and adds;
    the learner samples), so this is the actor's view; the native calls release the GIL, so the
    copies run beside the emulator. Uses two cores."""
    import queue
    import threading
    from ..feed import StepFeed
    from ..replay import ReplayBuffer
    env = dqnfast_env(env_id, frame_size, frame_skip, seed, crop, interp)
    rb = ReplayBuffer(capacity, frame_shape=(frame_size, frame_size), stack=4, seed=seed)
    prefill(rb)
    out = rb.empty_batch(batch, shared_frames=True)  # the layout the trainer samples into
    state = np.empty((4, frame_size, frame_size), np.uint8)
    acts = scripted_actions(steps, int(env.action_space.n), seed)
    due: "queue.Queue[bool]" = queue.Queue()  # True: one batch is due; False: stop

    def learner() -> None:
        while due.get():
            rb.sample(batch, out=out)

    learner_thread = threading.Thread(target=learner) if threaded else None
    obs, _ = env.reset(seed=seed)
    if learner_thread is not None:
        learner_thread.start()
    feed = StepFeed(1, None)  # writes each step as the trainer's actor does
    t0 = time.perf_counter()
    feed.start(rb, obs[None])
    for i, a in enumerate(acts):
        rb.stacked(out=state)  # what the agent would act on
        obs, r, term, trunc, info = env.step(int(a))
        feed.step(rb, acts[i:i + 1], obs[None], (r,), (term,), (trunc,), info)
        if term or trunc:
            obs, _ = env.reset()
            feed.start(rb, obs[None])
        if i % train_frequency == 0:
            if learner_thread is not None:
                due.put(True)
            else:
                rb.sample(batch, out=out)
    if learner_thread is not None:
        due.put(False)
        learner_thread.join()  # every batch asked for is sampled before the clock stops
    dt = time.perf_counter() - t0
    env.close()
    return dt


class StackedNumpyBuffer:
    """CleanRL's data layout without SB3: every transition keeps its own stacked obs and next_obs."""

    def __init__(self, capacity: int, state_shape: Sequence[int], seed: int) -> None:
        self.obs = np.zeros((capacity, *state_shape), np.uint8)
        self.next_obs = np.zeros((capacity, *state_shape), np.uint8)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.bool_)
        self.capacity, self.pos, self.full = capacity, 0, False
        self.rng = np.random.default_rng(seed)

    def prefill(self) -> None:
        """Touches all of the memory and marks the buffer full (see the module docstring)."""
        self.obs.fill(0)
        self.next_obs.fill(0)
        self.full = True

    def add(self, obs, next_obs, action, reward, done) -> None:
        self.obs[self.pos] = obs
        self.next_obs[self.pos] = next_obs
        self.action[self.pos], self.reward[self.pos], self.done[self.pos] = action, reward, done
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, batch: int):
        idx = self.rng.integers(self.capacity if self.full else self.pos, size=batch)
        return self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.done[idx]


def _cleanrl_env(env_id: str, frame_size: int, frame_skip: int, seed: int):
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation
    gym = _gym()
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=frame_skip, screen_size=frame_size,
                             terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    return FrameStackObservation(env, 4)


def bench_cleanrl(env_id: str, steps: int, frame_size: int, frame_skip: int, capacity: int, batch: int,
                  train_frequency: int, seed: int, sb3: bool = False) -> Optional[float]:
    env = _cleanrl_env(env_id, frame_size, frame_skip, seed)
    state_shape = (4, frame_size, frame_size)
    if sb3:
        try:
            from stable_baselines3.common.buffers import ReplayBuffer as SB3Buffer
        except ImportError:
            env.close()
            return None
        import gymnasium as gym
        space = gym.spaces.Box(0, 255, state_shape, np.uint8)
        buf = SB3Buffer(capacity, space, env.action_space, device="cpu", optimize_memory_usage=True,
                        handle_timeout_termination=False)
        buf.observations.fill(0)  # as StackedNumpyBuffer.prefill
        buf.full = True
        add: Callable = lambda o, no, a, r, d: buf.add(o[None], no[None], np.array([a]), np.array([r]),  # noqa: E731
                                                       np.array([d]), [{}])
        sample: Callable = lambda b: buf.sample(b)  # noqa: E731
    else:
        nb = StackedNumpyBuffer(capacity, state_shape, seed)
        nb.prefill()
        add, sample = nb.add, nb.sample
    acts = scripted_actions(steps, int(env.action_space.n), seed)
    obs, _ = env.reset(seed=seed)
    t0 = time.perf_counter()
    for i, a in enumerate(acts):
        next_obs, r, term, trunc, _ = env.step(int(a))
        add(obs, next_obs, int(a), float(r), bool(term))
        obs = next_obs
        if term or trunc:
            obs, _ = env.reset()
        if i % train_frequency == 0:
            sample(batch)
    dt = time.perf_counter() - t0
    env.close()
    return dt


def run(env_id: str = "ALE/Breakout-v5", steps: int = 5000, frame_size: int = 84, frame_skip: int = 4,
        capacity: int = 20_000, batch: int = 32, train_frequency: int = 4, seed: int = 0, repeats: int = 3,
        crop=None, interp: str = "nearest") -> Dict[str, object]:
    """Best of ``repeats`` timings per path (interleaved, so background load hits all of them alike)."""
    kw = dict(env_id=env_id, steps=steps, frame_skip=frame_skip, seed=seed)
    data_kw = dict(frame_size=frame_size, capacity=capacity, batch=batch, train_frequency=train_frequency)
    emulation = {  # the dqnfast paths share one emulation (same env stack), the CleanRL ones another
        "dqnfast": record_emulation(lambda: dqnfast_env(env_id, frame_size, frame_skip, seed, crop, interp), steps, seed),
        "cleanrl": record_emulation(lambda: _cleanrl_env(env_id, frame_size, frame_skip, seed), steps, seed),
    }
    baseline = {"dqnfast_env": "raw_ale", "dqnfast": "raw_ale", "dqnfast_threaded": "raw_ale",
                "cleanrl_numpy": "raw_ale_cleanrl",
                "cleanrl_sb3": "raw_ale_cleanrl"}
    times: Dict[str, List[float]] = {k: [] for k in ("raw_ale", "dqnfast_env", "dqnfast", "dqnfast_threaded",
                                                     "raw_ale_cleanrl", "cleanrl_numpy", "cleanrl_sb3")}
    for _ in range(repeats):
        times["raw_ale"].append(bench_raw_ale(env_id, emulation["dqnfast"], seed))
        times["dqnfast_env"].append(bench_dqnfast_env(**kw, frame_size=frame_size, crop=crop, interp=interp))
        times["dqnfast"].append(bench_dqnfast(**kw, **data_kw, crop=crop, interp=interp))
        times["dqnfast_threaded"].append(bench_dqnfast(**kw, **data_kw, crop=crop, interp=interp, threaded=True))
        times["raw_ale_cleanrl"].append(bench_raw_ale(env_id, emulation["cleanrl"], seed))
        times["cleanrl_numpy"].append(bench_cleanrl(**kw, **data_kw))
        t = bench_cleanrl(**kw, **data_kw, sb3=True)
        if t is not None:
            times["cleanrl_sb3"].append(t)
    best = {k: min(v) for k, v in times.items() if v}
    ratio = {"raw_ale": 1.0, **{k: best[k] / best[b] for k, b in baseline.items() if k in best}}
    # Each repeat's own ratio (path and its replay timed back to back), median over repeats: less
    # sensitive than best-over-best to the machine speeding up or slowing down during the run.
    paired = {k: float(np.median([t / r for t, r in zip(times[k], times[b])])) for k, b in baseline.items()
              if times[k]}
    result: Dict[str, object] = {
        "env_id": env_id, "steps": steps, "frame_size": frame_size, "frame_skip": frame_skip, "batch": batch,
        "train_frequency": train_frequency, "capacity": capacity, "repeats": repeats,
        "machine": f"{platform.processor() or platform.machine()}, {cpu_name()}",
        "steps_per_s": {k: steps / v for k, v in best.items()},
        "time_per_step_over_raw_ale": ratio,
        "time_per_step_over_raw_ale_paired_median": paired,
        "emulated_frames_per_step": {k: sum(op is not None for op in e.ops) / steps for k, e in emulation.items()},
    }
    if "cleanrl_numpy" in best:
        result["dqnfast_speedup_over_cleanrl_numpy"] = best["cleanrl_numpy"] / best["dqnfast"]
    if "cleanrl_sb3" in best:
        result["dqnfast_speedup_over_sb3"] = best["cleanrl_sb3"] / best["dqnfast"]
    return result


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]} x{len(names)}" if names else "unknown CPU"
    except OSError:
        return "unknown CPU"


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="dqnfast bench pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", default="ALE/Breakout-v5")
    p.add_argument("--steps", type=int, default=5000, help="agent steps per timing")
    p.add_argument("--frame-size", type=int, default=84)
    p.add_argument("--capacity", type=int, default=20_000, help="replay capacity (filled before timing)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-frequency", type=int, default=4, help="agent steps per sampled batch")
    p.add_argument("--repeats", type=int, default=3, help="timings per path (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = p.parse_args(list(argv))
    for name in ("steps", "frame_size", "capacity", "batch", "train_frequency", "repeats"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.capacity < 5 * args.batch:
        p.error("--capacity must be at least 5 x --batch")
    res = run(args.env_id, args.steps, args.frame_size, 4, args.capacity, args.batch, args.train_frequency,
              args.seed, args.repeats)
    sps, ratio = res["steps_per_s"], res["time_per_step_over_raw_ale"]
    frames = res["emulated_frames_per_step"]
    print(f"pipeline: {args.env_id}, {args.steps} agent steps x best of {args.repeats}, {args.frame_size}x"
          f"{args.frame_size}, batch {args.batch} every {args.train_frequency} steps, replay full at "
          f"{args.capacity} ({res['machine']})")
    print(f"{'path':<44}{'agent steps/s':>14}{'time / its raw ALE':>20}")
    labels = {"raw_ale": f"raw ALE, dqnfast's frames ({frames['dqnfast']:.2f}/step)",  # type: ignore[index]
              "dqnfast_env": "dqnfast wrapper alone (no replay)",
              "dqnfast": "dqnfast (wrapper + ReplayBuffer)",
              "dqnfast_threaded": "  same, sampling on a 2nd thread (2 cores)",
              "raw_ale_cleanrl": f"raw ALE, CleanRL's frames ({frames['cleanrl']:.2f}/step)",  # type: ignore[index]
              "cleanrl_numpy": "CleanRL-style (gymnasium + numpy)", "cleanrl_sb3": "CleanRL + SB3 ReplayBuffer"}
    for k, label in labels.items():
        if k in sps:  # type: ignore[operator]
            r = ratio.get(k, 1.0)  # type: ignore[union-attr]
            print(f"{label:<44}{sps[k]:>14.0f}{r:>19.2f}x")  # type: ignore[index]
        else:
            print(f"{label:<44}{'not installed':>14}")
    replay_us = 1e6 * (1 / sps["dqnfast"] - 1 / sps["dqnfast_env"])  # type: ignore[index]
    paired = res["time_per_step_over_raw_ale_paired_median"]
    print(f"dqnfast overhead over raw ALE: {100 * (ratio['dqnfast'] - 1):+.1f}% (median of paired runs "  # type: ignore[index]
          f"{100 * (paired['dqnfast'] - 1):+.1f}%; goal: <= +10%), of which the "  # type: ignore[index]
          f"replay (stacked + add + sample/{args.train_frequency}) is {replay_us:.0f} us/step = "
          f"{100 * (ratio['dqnfast'] - ratio['dqnfast_env']):+.1f}% of raw ALE; "  # type: ignore[index]
          f"dqnfast vs CleanRL-style: {res.get('dqnfast_speedup_over_cleanrl_numpy', float('nan')):.2f}x faster")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
