"""`dqnfast bench ray`: N actors on a local Ray feeding one learner's replay.

Figures, each from one run on this machine (Ray started locally, bound to 127.0.0.1, token
authentication on, no dashboard):

1. ingest rate into one learner's ``ReplayBuffer``, in transitions/s: first with a counting fake
   env (84x84 frames made almost for free, random actions), so the learner side is what is
   measured, then with Breakout (``make_atari_env``, random actions: no network on the actors);
2. the learner's ``sample(32)`` latency while the fake-env actors ingest, against the same replay
   idle (median of many calls each; goal: within 1.2x);
3. agent steps/s of a whole training run with ``--actors`` x ``--envs-per-actor`` Ray actors,
   against the single-process trainer: two Breakout runs of the trainer in this process
   (``--train-seconds`` each, or ``--train-steps`` agent steps within that), same config apart
   from the Ray options, timed from their own run logs after ``--train-warmup-updates`` updates
   (:mod:`dqnfast.benchmarks.ray_training`).

The ingest rate counts transitions written into the replay per second of wall time once every
actor has delivered a chunk. On a machine with few cores the actors, Ray's processes and the
learner share them, so the figure is the whole machine's, not the learner's limit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np


def _median_sample_us(rb: Any, seconds: float, stop: Optional[threading.Event] = None) -> Dict[str, float]:
    out = rb.empty_batch(32)
    times: List[float] = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end and not (stop is not None and stop.is_set()):
        t0 = time.perf_counter()
        rb.sample(32, out=out)
        times.append(time.perf_counter() - t0)
    a = np.array(times) * 1e6
    return {"median_us": float(np.median(a)), "p90_us": float(np.percentile(a, 90)), "calls": len(a)}


def _learner_ceiling(pool: Any, capacity: int, chunks_per_actor: int = 32) -> Dict[str, float]:
    """Transitions/s the learner side can take: chunks made first and left in the object store, then
    fetched (ray.get, zero-copy) and written into a fresh replay as fast as the learner goes, so the
    figure does not depend on how many cores the actors got."""
    import ray

    from .. import ReplayBuffer
    from ..distributed import ChunkWriter

    refs = [pool.actors[a].collect.remote(None, -1, True)
            for a in range(pool.num_actors)]  # each actor's first chunk starts all its episodes
    refs += [pool.actors[a].collect.remote(None, -1, False)
             for _ in range(chunks_per_actor - 1) for a in range(pool.num_actors)]
    ray.wait(refs, num_returns=len(refs), fetch_local=True)
    rb = ReplayBuffer(capacity, (84, 84), num_envs=pool.num_streams)
    writer = ChunkWriter(rb, pool.num_actors, pool.envs_per_actor)
    t0 = time.perf_counter()
    n = sum(writer.write(ray.get(r)) for r in refs)
    dt = time.perf_counter() - t0
    return {"transitions": n, "seconds": dt, "rate": n / dt, "chunks": len(refs)}


def _run(env_fn: Any, actors: int, envs_per_actor: int, seconds: float, rounds: int, capacity: int,
         measure_sampling: bool) -> Dict[str, Any]:
    from .. import ReplayBuffer
    from ..distributed import ActorPool, Ingestor

    pool = ActorPool(None, actors, envs_per_actor, env_fn, rounds_per_chunk=rounds, num_cpus_per_actor=0.01)
    rb = ReplayBuffer(capacity, (84, 84), num_envs=pool.num_streams)
    pool.start()
    res: Dict[str, Any] = {}
    try:
        ing = Ingestor(pool, rb).start()
        t0 = time.perf_counter()
        while ing.actors_heard < actors:  # every actor warmed up
            ing.check()
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("actors did not deliver within 300 s")
            time.sleep(0.01)
        s0, w0 = ing.stats(), time.perf_counter()
        time.sleep(seconds)
        s1, w1 = ing.stats(), time.perf_counter()
        res.update(transitions=s1.transitions - s0.transitions, seconds=w1 - w0,
                   rate=(s1.transitions - s0.transitions) / (w1 - w0), chunks=s1.chunks - s0.chunks)
        if measure_sampling:  # the learner samples in a loop meanwhile: how fast does ingest go then?
            res["sample_ingesting"] = _median_sample_us(rb, seconds)
            s2, w2 = ing.stats(), time.perf_counter()
            res["rate_while_sampling"] = (s2.transitions - s1.transitions) / (w2 - w1)
        ing.stop()
        res["lost_chunks"] = ing.stats().lost_chunks
        if measure_sampling:
            res["learner_ceiling"] = _learner_ceiling(pool, capacity)
        if measure_sampling:
            res["sample_idle"] = _median_sample_us(rb, min(seconds, 3.0))
            res["sample_ratio"] = res["sample_ingesting"]["median_us"] / res["sample_idle"]["median_us"]
    finally:
        if pool.actors:
            pool.stop()
    return res


def _whole_run(args: argparse.Namespace) -> Dict[str, Any]:
    """The whole-run figure on the Ray this process is connected to; an error says why it is missing."""
    from .ray_training import whole_run_figure

    def figure(run_dir: str) -> Dict[str, Any]:
        return whole_run_figure(args.address, args.actors, args.envs_per_actor, args.train_seconds, args.train_steps,
                                args.train_warmup_updates, args.train_learning_starts, run_dir)

    try:
        if args.train_dir is not None:
            return figure(args.train_dir)
        with tempfile.TemporaryDirectory(prefix="dqnfast-bench-ray-") as run_dir:
            return figure(run_dir)
    except Exception as e:  # e.g. no ale-py / ROM, or a run too short to time: say so, keep the other figures
        return {"error": f"{type(e).__name__}: {e}"}


def _print_whole_run(w: Optional[Dict[str, Any]], args: argparse.Namespace) -> None:
    head = "  agent steps/s of a training run vs the single-process trainer"
    if w is None:
        print(f"{head}: not measured (--train-seconds 0)")
        return
    if "error" in w:
        print(f"{head}: not measured ({w['error']})")
        return
    bound = f"{w['steps']:,} agent steps within {w['seconds']:g} s" if w["steps"] else f"{w['seconds']:g} s"
    print(f"{head} ({w['preset']} preset, {bound} each, timed after {w['warmup_updates']:,} updates):")
    for name, label in (("single", "single process"), ("ray", f"Ray, {args.actors} x {args.envs_per_actor} envs")):
        r, win = w[name], w[name]["window"]
        print(f"    {label:22s}: {r['rate']:8,.0f} agent steps/s, {win['updates_per_s']:6,.1f} updates/s  "
              f"({win['steps']:,} steps in {win['seconds']:.1f} s; run: {r['agent_steps']:,} steps, "
              f"{r['updates']:,} updates, first update after {r['first_update_s']:.1f} s)")
    print(f"    Ray / single process: {w['ratio']:.2f}x agent steps/s")


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="dqnfast bench ray", description=__doc__.split("\n\n")[0])
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--envs-per-actor", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time of each figure")
    p.add_argument("--rounds", type=int, default=32, help="env steps per env in one chunk")
    p.add_argument("--capacity", type=int, default=200_000)
    p.add_argument("--env", choices=("fake", "breakout", "both"), default="both")
    p.add_argument("--address", default="local", help="'local' (start Ray here), 'auto' or host:port")
    p.add_argument("--train-seconds", type=float, default=30.0,
                   help="time box of each training run of the whole-run figure (the Ray run's actor start-up "
                        "counts in it); 0 skips that figure")
    p.add_argument("--train-steps", type=int, default=0,
                   help="agent steps of each training run (0: the time box alone); with steps, the runs log the "
                        "same rows on any machine and --train-seconds is their cap")
    p.add_argument("--train-warmup-updates", type=int, default=50,
                   help="updates of each training run left out of its figure (the window starts after them)")
    p.add_argument("--train-learning-starts", type=int, default=1000, help="learning_starts of the training runs")
    p.add_argument("--train-dir", default=None,
                   help="keep the training runs' folders here (default: a temporary folder, removed)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if not args.train_seconds >= 0 or args.train_steps < 0 or args.train_warmup_updates < 0:
        p.error("--train-seconds, --train-steps and --train-warmup-updates must be >= 0")
    try:
        import ray
    except ImportError:
        from ..distributed import INSTALL_HINT

        print(f"dqnfast bench ray: {INSTALL_HINT}")
        return 0 if argv == [] else 2
    from ..distributed import connect
    from ..distributed.fake_env import counting_env_fn

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    results: Dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                               "load_before": load, "actors": args.actors, "envs_per_actor": args.envs_per_actor}
    owns = connect(args.address)
    try:
        if args.env in ("fake", "both"):
            results["fake"] = _run(counting_env_fn(), args.actors, args.envs_per_actor, args.seconds, args.rounds,
                                   args.capacity, measure_sampling=True)
        if args.env in ("breakout", "both"):
            from ..distributed import AtariEnvFn

            try:
                results["breakout"] = _run(AtariEnvFn("ALE/Breakout-v5"), args.actors, args.envs_per_actor,
                                           args.seconds, args.rounds, args.capacity, measure_sampling=False)
            except Exception as e:  # e.g. no ale-py / ROM on this machine: say so, keep the other figures
                results["breakout"] = {"error": f"{type(e).__name__}: {e}"}
        if args.train_seconds > 0:
            results["whole_run"] = _whole_run(args)
    finally:
        if owns:
            ray.shutdown()
    results["load_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"dqnfast bench ray: {args.actors} actors x {args.envs_per_actor} envs, local Ray; {results['machine']}; "
          f"load {load}")
    for name in ("fake", "breakout"):
        r = results.get(name)
        if r is None:
            continue
        if "error" in r:
            print(f"  ingest, {name:8s}: not measured ({r['error']})")
            continue
        print(f"  ingest, {name:8s}: {r['rate']:10,.0f} transitions/s  ({r['transitions']:,} in {r['seconds']:.1f} s, "
              f"{r['chunks']} chunks, {r['lost_chunks']} lost)")
        if "rate_while_sampling" in r:
            print(f"  ingest, {name:8s}: {r['rate_while_sampling']:10,.0f} transitions/s while the learner samples "
                  f"in a loop")
    if "fake" in results:
        f = results["fake"]
        c = f["learner_ceiling"]
        print(f"  learner side alone (chunks already in the object store): {c['rate']:10,.0f} transitions/s "
              f"({c['transitions']:,} in {c['seconds']:.2f} s)  (goal >= 50,000)")
        print(f"  sample(32) while ingesting: {f['sample_ingesting']['median_us']:.1f} us median "
              f"(p90 {f['sample_ingesting']['p90_us']:.1f}), idle {f['sample_idle']['median_us']:.1f} us: "
              f"{f['sample_ratio']:.2f}x  (goal <= 1.2x)")
    _print_whole_run(results.get("whole_run"), args)
    print(f"  load after: {results['load_after']}")
    return 0
