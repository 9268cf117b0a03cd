"""`dqnfast bench vector`: agent steps/s of parallel env stepping, with and without the replay data path.

Rows, all on the same ``num_envs`` envs taking the same seeded random actions, each with 1 and with
``num_envs`` workers (threads for ALE, processes for dqnfast):

- ``ale``: ale-py's ``AtariVectorEnv`` alone with its default preprocessing (84x84 gray, max-pool,
  stack of 4, no-op starts, FIRE reset, reward clipping; no episodic life), no replay;
- ``ale_full_frames``: the other design considered: ``AtariVectorEnv`` returning max-pooled gray
  210x160 screens, ``dqnfast.preprocess`` resizing the batch, then the replay data path below.
  Lacks the DQN resets (the C++ envs of one vector step together, see docs/preprocessing.md), so it is a
  lower bound on that design's cost;
- ``processes_env``: ``make_atari_env(num_envs, workers)`` (``ProcessVectorEnv``) alone;
- ``dqnfast``: the data path: ``ProcessVectorEnv`` -> ``add_batch`` (final frames of ended
  episodes from ``info["final_obs"]``, then ``start_episodes``) -> the stacked state of every env
  -> one ``sample(batch)`` per ``train_frequency`` agent steps, run between ``step_async`` and
  ``step_wait`` so that it overlaps the emulation, as a trainer's learner step would;
- ``dqnfast_async``: the same data path on ``send``/``recv`` (EnvPool's asynchronous API): each
  worker's envs are added, stacked and sent off again as soon as that worker is done, while the
  others still emulate; the batches are sampled at the same rate (one per ``train_frequency``
  agent steps);
- ``single``: the single-env dqnfast data path (``dqnfast bench pipeline``'s), for reference;
- ``ceiling``: the machine's own limit. ``workers`` independent processes each step their share of
  the same envs (the same single-env stacks, the same actions) with no coordination at all: no
  step messages, no shared frames, no replay. Released together, timed until the last one ends.
  Its 2-over-1 ratio is what this machine's cores give to parallel emulation right now; on a
  shared VM it moves from run to run, and no design can scale past it.

Each repeat times every row once, interleaved; the table shows the best of the repeats and the
goal ratios both from the best times and as the median of each repeat's own ratio.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import time
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from .pipeline import scripted_actions, cpu_name, bench_dqnfast, prefill


class Timing(NamedTuple):
    wall: float  # seconds
    cpu: Optional[float]  # CPU seconds of this process (all its threads) and the env's worker processes


class _Clock:
    """Wall time and CPU time of a timed loop. CPU time says what a path costs whatever else runs on
    the machine: on a shared machine the wall time of parallel paths suffers most (a step waits for
    its slowest worker), the CPU time much less."""

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = list(pids)
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    def _cpu(self) -> Optional[float]:
        total = time.process_time()
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
            except (OSError, ValueError, IndexError):
                return None
        return total

    def stop(self) -> Timing:
        wall, cpu = time.perf_counter() - self.wall, self._cpu()
        return Timing(wall, None if cpu is None or self.cpu is None else cpu - self.cpu)


def rom_name(env_id: str) -> str:
    """'ALE/MsPacman-v5' -> 'ms_pacman', the ROM name ale-py's AtariVectorEnv takes."""
    name = env_id.split("/")[-1].split("-")[0]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _vector_actions(steps: int, num_envs: int, num_actions: int, seed: int) -> np.ndarray:
    return scripted_actions(steps * num_envs, num_actions, seed).reshape(steps, num_envs)


def bench_ale(env_id: str, steps: int, num_envs: int, workers: int, frame_size: int, seed: int) -> Timing:
    """Seconds for ``steps`` vector steps of ale-py's AtariVectorEnv with its own DQN preprocessing."""
    from ale_py.vector_env import AtariVectorEnv
    # ale-py's defaults: stack of 4, no-op starts, FIRE reset, reward clipping, no sticky actions and
    # no episodic life. (Its episodic_life=True resets the whole game at every lost life, see
    # docs/preprocessing.md, so it would emulate many more reset frames per agent step than a DQN stack does.)
    env = AtariVectorEnv(rom_name(env_id), num_envs, num_threads=workers, img_height=frame_size,
                         img_width=frame_size)
    acts = _vector_actions(steps, num_envs, int(env.single_action_space.n), seed)
    env.reset(seed=seed)
    clock = _Clock()
    for a in acts:
        env.send(a)
        env.recv()
    dt = clock.stop()
    env.close()
    return dt


def _replay(num_envs: int, frame_size: int, capacity: int, batch: int, seed: int):
    from ..replay import ReplayBuffer
    rb = ReplayBuffer(capacity, frame_shape=(frame_size, frame_size), stack=4, num_envs=num_envs, seed=seed)
    prefill(rb)  # stream 0 fills every slot: the timed run sees a full buffer
    return rb, rb.empty_batch(batch, shared_frames=True), np.empty((num_envs, 4, frame_size, frame_size), np.uint8)


def _samples_due(agent_steps: int, num_envs: int, train_frequency: int) -> int:
    """Batches due in the vector step after ``agent_steps`` agent steps: one per ``train_frequency``."""
    return (agent_steps + num_envs) // train_frequency - agent_steps // train_frequency


def bench_ale_full_frames(env_id: str, steps: int, num_envs: int, workers: int, frame_size: int, capacity: int,
                          batch: int, train_frequency: int, seed: int) -> Timing:
    """Seconds for the data path on AtariVectorEnv's 210x160 pooled gray screens + dqnfast.preprocess."""
    from ale_py.vector_env import AtariVectorEnv

    from ..preprocessing import preprocess
    env = AtariVectorEnv(rom_name(env_id), num_envs, num_threads=workers, img_height=210, img_width=160,
                         stack_num=1, noop_max=0, use_fire_reset=False, episodic_life=False, reward_clipping=False,
                         repeat_action_probability=0.0, autoreset_mode="SameStep")
    rb, out, states = _replay(num_envs, frame_size, capacity, batch, seed)
    size = (frame_size, frame_size)
    frames = np.empty((num_envs,) + size, np.uint8)
    acts = _vector_actions(steps, num_envs, int(env.single_action_space.n), seed)
    obs, _ = env.reset(seed=seed)
    clock = _Clock()
    rb.start_episodes(preprocess(obs[:, 0], size=size, out=frames))
    for t, a in enumerate(acts):
        for i in range(num_envs):
            rb.stacked(i, out=states[i])
        env.send(a)
        for _ in range(_samples_due(t * num_envs, num_envs, train_frequency)):
            rb.sample(batch, out=out)
        obs, reward, terminated, truncated, info = env.recv()
        done = terminated | truncated
        if done.any():
            ended = np.flatnonzero(done)
            preprocess(np.where(done[:, None, None], info["final_obs"][:, 0], obs[:, 0]), size=size, out=frames)
            rb.add_batch(a, np.sign(reward), frames, terminated, truncated)
            rb.start_episodes(preprocess(obs[ended, 0], size=size), envs=ended)
        else:
            rb.add_batch(a, np.sign(reward), preprocess(obs[:, 0], size=size, out=frames), terminated, truncated)
    dt = clock.stop()
    env.close()
    return dt


def _process_env(env_id: str, num_envs: int, workers: int, frame_size: int, seed: int):
    from ..wrappers import make_atari_env
    # infos="episode", as the trainer makes it: no info but the episode statistics is pickled per step
    env = make_atari_env(env_id, num_envs=num_envs, workers=workers, seed=seed, screen_size=frame_size,
                         infos="episode")
    env.copy = False  # views of the shared frames: add_batch copies them into the replay at once
    return env


def bench_processes_env(env_id: str, steps: int, num_envs: int, workers: int, frame_size: int,
                        seed: int) -> Timing:
    """Seconds for ``steps`` vector steps of make_atari_env(num_envs, workers) alone (no replay)."""
    env = _process_env(env_id, num_envs, workers, frame_size, seed)
    acts = _vector_actions(steps, num_envs, int(env.single_action_space.n), seed)
    env.reset(seed=seed)
    clock = _Clock(list(env.worker_pids))
    for a in acts:
        env.step(a)
    dt = clock.stop()
    env.close()
    return dt


def bench_dqnfast_vector(env_id: str, steps: int, num_envs: int, workers: int, frame_size: int, capacity: int,
                         batch: int, train_frequency: int, seed: int) -> Timing:
    """Seconds for ``steps`` vector steps of the dqnfast data path on ``workers`` processes."""
    from ..vector_env import add_same_step
    env = _process_env(env_id, num_envs, workers, frame_size, seed)
    rb, out, states = _replay(num_envs, frame_size, capacity, batch, seed)
    acts = _vector_actions(steps, num_envs, int(env.single_action_space.n), seed)
    obs, _ = env.reset(seed=seed)
    clock = _Clock(list(env.worker_pids))
    rb.start_episodes(obs)
    for t, a in enumerate(acts):
        for i in range(num_envs):
            rb.stacked(i, out=states[i])  # what the agent would act on
        env.step_async(a)
        for _ in range(_samples_due(t * num_envs, num_envs, train_frequency)):
            rb.sample(batch, out=out)  # the learner's batch, while the workers emulate
        add_same_step(rb, a, *env.step_wait())  # as the trainer's actor stores a step
    dt = clock.stop()
    env.close()
    return dt


def _ceiling_worker(env_id: str, steps: int, num_envs: int, workers: int, w: int, frame_size: int, seed: int,
                    start: Any, results: Any) -> None:
    """Builds worker ``w``'s envs, waits at ``start`` for the other workers, then steps them one after
    the other with their columns of the other rows' actions; reports (start, end, CPU seconds)."""
    from ..wrappers import make_atari_env
    envs = [make_atari_env(env_id, seed=seed + i, screen_size=frame_size) for i in range(w, num_envs, workers)]
    for env in envs:
        env.reset()
    acts = _vector_actions(steps, num_envs, int(envs[0].action_space.n), seed)[:, w::workers].tolist()
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    stepped = 0
    for row in acts:
        for env, a in zip(envs, row):
            _, _, terminated, truncated, _ = env.step(a)
            stepped += 1
            if terminated or truncated:
                env.reset()
    results.put((t0, time.perf_counter(), time.process_time() - cpu0, stepped))
    for env in envs:
        env.close()


def bench_ceiling(env_id: str, steps: int, num_envs: int, workers: int, frame_size: int, seed: int) -> Timing:
    """Seconds for ``steps`` vector steps of ``num_envs`` envs split over ``workers`` independent
    processes (env i in process ``i % workers``, as ProcessVectorEnv splits them), from the common
    start to the last process's end. CLOCK_MONOTONIC (perf_counter) is one clock for all processes."""
    ctx = mp.get_context()
    start, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_ceiling_worker, daemon=True,
                         args=(env_id, steps, num_envs, workers, w, frame_size, seed, start, results))
             for w in range(workers)]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=600) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    if sum(n for *_, n in got) != steps * num_envs:  # every env stepped, each exactly `steps` times
        raise RuntimeError(f"ceiling: the processes made {[n for *_, n in got]} env steps, not {steps * num_envs} "
                           f"in all ({steps} for each of {num_envs} envs)")
    return Timing(max(end for _, end, _, _ in got) - min(t0 for t0, _, _, _ in got), sum(cpu for _, _, cpu, _ in got))


def bench_dqnfast_async(env_id: str, steps: int, num_envs: int, workers: int, frame_size: int, capacity: int,
                        batch: int, train_frequency: int, seed: int) -> Timing:
    """Seconds for ``steps`` steps of every env of the data path on send/recv: a worker's envs go
    back to it as soon as their step is stored and their next state stacked."""
    from ..vector_env import add_same_step
    env = _process_env(env_id, num_envs, workers, frame_size, seed)
    rb, out, states = _replay(num_envs, frame_size, capacity, batch, seed)
    acts = _vector_actions(steps, num_envs, int(env.single_action_space.n), seed)
    obs, _ = env.reset(seed=seed)
    clock = _Clock(list(env.worker_pids))
    rb.start_episodes(obs)
    groups = [env.worker_envs(w) for w in range(workers)]
    taken = [0] * workers  # steps sent to each worker's envs
    stored = sampled = 0

    def send(w: int) -> None:
        ids = groups[w]
        for i in ids:
            rb.stacked(int(i), out=states[i])  # what the agent would act on
        env.send(acts[taken[w], ids], ids)
        taken[w] += 1

    for w in range(workers):
        send(w)
    pending = workers
    while pending:
        obs, reward, terminated, truncated, info = env.recv()
        ids = info["env_id"]
        w = int(ids[0]) % workers
        add_same_step(rb, acts[taken[w] - 1, ids], obs, reward, terminated, truncated, info, envs=ids)
        stored += len(ids)
        if taken[w] < steps:
            send(w)
        else:
            pending -= 1
        while sampled < stored // train_frequency:  # the learner's batches, while the workers emulate
            rb.sample(batch, out=out)
            sampled += 1
    dt = clock.stop()
    env.close()
    return dt


def run(env_id: str = "ALE/Breakout-v5", steps: int = 4000, num_envs: int = 2, workers: Sequence[int] = (1, 2),
        frame_size: int = 84, capacity: int = 20_000, batch: int = 32, train_frequency: int = 4, seed: int = 0,
        repeats: int = 3) -> Dict[str, object]:
    """``steps`` agent steps per timing (``steps // num_envs`` vector steps); best of ``repeats``."""
    vsteps = max(1, steps // num_envs)
    agent_steps = vsteps * num_envs
    data_kw = dict(frame_size=frame_size, capacity=capacity, batch=batch, train_frequency=train_frequency, seed=seed)
    timings: Dict[str, List[Timing]] = {}
    load_before = os.getloadavg()
    for _ in range(repeats):
        for w in workers:
            timings.setdefault(f"ale_w{w}", []).append(bench_ale(env_id, vsteps, num_envs, w, frame_size, seed))
            timings.setdefault(f"ale_full_frames_w{w}", []).append(
                bench_ale_full_frames(env_id, vsteps, num_envs, w, **data_kw))
            timings.setdefault(f"processes_env_w{w}", []).append(
                bench_processes_env(env_id, vsteps, num_envs, w, frame_size, seed))
            timings.setdefault(f"dqnfast_w{w}", []).append(
                bench_dqnfast_vector(env_id, vsteps, num_envs, w, **data_kw))
            timings.setdefault(f"dqnfast_async_w{w}", []).append(
                bench_dqnfast_async(env_id, vsteps, num_envs, w, **data_kw))
            timings.setdefault(f"ceiling_w{w}", []).append(
                bench_ceiling(env_id, vsteps, num_envs, w, frame_size, seed))
        timings.setdefault("single", []).append(Timing(bench_dqnfast(
            env_id, agent_steps, frame_size, 4, capacity, batch, train_frequency, seed), None))
    load_after = os.getloadavg()
    times = {k: [t.wall for t in v] for k, v in timings.items()}
    # CPU microseconds per agent step, the least over the repeats (None where not measured).
    cpu_us = {k: (1e6 * min(t.cpu for t in v) / agent_steps if all(t.cpu is not None for t in v) else None)
              for k, v in timings.items()}
    best = {k: min(v) for k, v in times.items()}
    sps = {k: agent_steps / t for k, t in best.items()}
    lo, hi = min(workers), max(workers)

    def ratio(fast: str, slow: str) -> Dict[str, float]:
        """steps/s of ``fast`` over ``slow``: from the best times, and the median of each repeat's."""
        return {"best": best[slow] / best[fast],
                "paired_median": float(np.median([s / f for f, s in zip(times[fast], times[slow])]))}

    goals = {f"dqnfast_w{hi}_over_w{lo}": ratio(f"dqnfast_w{hi}", f"dqnfast_w{lo}"),
             **{f"dqnfast_over_ale_w{w}": ratio(f"dqnfast_w{w}", f"ale_w{w}") for w in workers},
             f"dqnfast_async_w{hi}_over_w{lo}": ratio(f"dqnfast_async_w{hi}", f"dqnfast_async_w{lo}"),
             **{f"dqnfast_async_over_ale_w{w}": ratio(f"dqnfast_async_w{w}", f"ale_w{w}") for w in workers},
             f"ale_w{hi}_over_w{lo}": ratio(f"ale_w{hi}", f"ale_w{lo}"),
             f"ceiling_w{hi}_over_w{lo}": ratio(f"ceiling_w{hi}", f"ceiling_w{lo}"),
             **{f"dqnfast_over_ceiling_w{w}": ratio(f"dqnfast_w{w}", f"ceiling_w{w}") for w in workers},
             **{f"dqnfast_async_over_ceiling_w{w}": ratio(f"dqnfast_async_w{w}", f"ceiling_w{w}") for w in workers},
             f"processes_env_w{hi}_over_w{lo}": ratio(f"processes_env_w{hi}", f"processes_env_w{lo}")}
    return {"env_id": env_id, "agent_steps": agent_steps, "num_envs": num_envs, "workers": list(workers),
            "frame_size": frame_size, "batch": batch, "train_frequency": train_frequency, "capacity": capacity,
            "repeats": repeats, "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs",
            "load_before": load_before, "load_after": load_after, "times": times, "steps_per_s": sps,
            "cpu_us_per_agent_step": cpu_us,
            "ratios": goals}


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="dqnfast bench vector", description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", default="ALE/Breakout-v5")
    p.add_argument("--steps", type=int, default=4000, help="agent steps per timing, over all envs")
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts to time (each <= --num-envs)")
    p.add_argument("--frame-size", type=int, default=84)
    p.add_argument("--capacity", type=int, default=20_000, help="replay capacity (filled before timing)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-frequency", type=int, default=4, help="agent steps per sampled batch")
    p.add_argument("--repeats", type=int, default=3, help="timings per row (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = p.parse_args(list(argv))
    for name in ("steps", "num_envs", "frame_size", "capacity", "batch", "train_frequency", "repeats"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    try:
        workers = sorted({int(w) for w in args.workers.split(",")})
    except ValueError:
        p.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    if not workers or workers[0] < 1 or workers[-1] > args.num_envs:
        p.error(f"--workers must each be between 1 and --num-envs ({args.num_envs}), got {args.workers!r}")
    if args.capacity < 5 * args.batch:
        p.error("--capacity must be at least 5 x --batch")
    res = run(args.env_id, args.steps, args.num_envs, workers, args.frame_size, args.capacity, args.batch,
              args.train_frequency, args.seed, args.repeats)
    sps: Dict[str, float] = res["steps_per_s"]  # type: ignore[assignment]
    print(f"vector: {args.env_id}, {res['agent_steps']} agent steps on {args.num_envs} envs x best of {args.repeats}, "
          f"batch {args.batch} every {args.train_frequency} agent steps, replay full at {args.capacity} "
          f"({res['machine']}; load average {res['load_before'][0]:.2f} before, {res['load_after'][0]:.2f} after)")
    print(f"{'path':<62}{'agent steps/s':>14}{'CPU us/step':>13}")
    labels = {"ale_w{}": "ale-py AtariVectorEnv alone, default preprocessing, {} thread(s)",
              "ale_full_frames_w{}": "AtariVectorEnv 210x160 + preprocess + replay, {} thread(s)",
              "processes_env_w{}": "dqnfast ProcessVectorEnv alone, {} process(es)",
              "dqnfast_w{}": "dqnfast data path (ProcessVectorEnv + replay), {} process(es)",
              "dqnfast_async_w{}": "the same data path on send/recv, {} process(es)",
              "ceiling_w{}": "ceiling: {} independent process(es), no coordination"}
    cpu: Dict[str, Optional[float]] = res["cpu_us_per_agent_step"]  # type: ignore[assignment]
    rows = [(label.format(w), key.format(w)) for key, label in labels.items() for w in workers]
    for label, key in rows + [("dqnfast single-env data path (1 env, in process)", "single")]:
        c = cpu[key]
        print(f"{label:<62}{sps[key]:>14.0f}{'-' if c is None else f'{c:.0f}':>13}")
    lo, hi = workers[0], workers[-1]
    r: Dict[str, Dict[str, float]] = res["ratios"]  # type: ignore[assignment]
    goals = {f"dqnfast_w{hi}_over_w{lo}": f"data path, {hi} workers over {lo} (goal >= 1.8x)",
             f"dqnfast_over_ale_w{hi}": f"data path over AtariVectorEnv alone, {hi} workers (goal >= 0.9x)",
             f"dqnfast_over_ale_w{lo}": f"data path over AtariVectorEnv alone, {lo} worker(s)",
             f"dqnfast_async_w{hi}_over_w{lo}": f"send/recv data path, {hi} workers over {lo} (goal >= 1.8x)",
             f"dqnfast_async_over_ale_w{hi}": f"send/recv data path over AtariVectorEnv, {hi} workers (goal >= 0.9x)",
             f"dqnfast_async_over_ale_w{lo}": f"send/recv data path over AtariVectorEnv, {lo} worker(s)",
             f"ale_w{hi}_over_w{lo}": f"AtariVectorEnv alone, {hi} threads over {lo}",
             f"ceiling_w{hi}_over_w{lo}": f"ceiling (the machine's own), {hi} processes over {lo}",
             f"processes_env_w{hi}_over_w{lo}": f"ProcessVectorEnv alone, {hi} processes over {lo}",
             f"dqnfast_over_ceiling_w{lo}": f"data path over the ceiling, {lo} worker(s)",
             f"dqnfast_over_ceiling_w{hi}": f"data path over the ceiling, {hi} workers",
             f"dqnfast_async_over_ceiling_w{lo}": f"send/recv data path over the ceiling, {lo} worker(s)",
             f"dqnfast_async_over_ceiling_w{hi}": f"send/recv data path over the ceiling, {hi} workers"}
    for key, label in goals.items():
        if key in r and (hi != lo or "_over_ale" in key or "_over_ceiling" in key):
            print(f"{label:<70}{r[key]['best']:>8.2f}x  (median of paired repeats {r[key]['paired_median']:.2f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
