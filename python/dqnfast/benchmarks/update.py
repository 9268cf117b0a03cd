"""`dqnfast bench update`: the cost of one learner step on a CPU core, sampling included.

For each frame size: ``rb.sample(32, shift=...)`` plus one gradient step of the atari100k
learner (dueling, Double DQN, Adam, 10-step returns; ``--network`` names the Nature CNN, DrQ(ε)'s
network or both, timed one after the other in one process), on one torch thread, in these ways:

- ``eager``: ``DQNLearner.update`` as the trainer runs it on a CPU;
- ``channels_last``: the same with the networks in channels-last memory format (oneDNN's
  preferred layout for convolutions);
- ``compile``: ``torch.compile`` of the whole step (:class:`dqnfast.fast_update.CompiledUpdate`);
- ``compile_bf16``: the same with the network passes under bfloat16 autocast (the trainer's
  ``--bf16``; weights and Adam stay float32). Not the same numbers as eager: the table says how far
  apart. Faster only on CPUs with bfloat16 dot products (AVX512-BF16, AMX): the header says
  whether this one has them;
- ``two_pass``: eager, with the target network run as well as the online net on the next states.
  The learner skips that pass when the target is a copy made after every update (as here, and in
  the preset: ``DQNLearner.target_is_online``); this mode is what the step cost before it did.

With ``--prioritized`` the replay is a ``PrioritizedReplayBuffer`` (alpha 0.5) sampled with beta 0.4,
each step is the importance-weighted one (``update_prioritized``, or the compiled step's
``prioritized``) and the new priorities go back with ``update_priorities``: the trainer's
``--prioritized`` step.

Each way starts from the same weights and takes its steps on the same batches; the table gives
the largest difference of its losses on those batches and of its weights after those steps from
eager's (0 is bit for bit), and the updates an hour allows. (Adam's first steps move each weight by
about the step size whatever the gradient's size, so the weights alone can agree while the losses
do not.) Median over rounds; the first calls (warm-up, compilation) are not timed.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Dict, List

from ..config import TrainConfig
from ..learner_options import NETWORKS
from .replay import fill, machine

MODES = ("eager", "channels_last", "compile", "compile_bf16", "two_pass")


def _learner(frame_size: int, seed: int, two_pass: bool = False, network: str = "nature"):
    from ..learner import DQNLearner

    class TwoPassLearner(DQNLearner):
        target_is_online = False  # run the target network even though it equals the online one

    cls = TwoPassLearner if two_pass else DQNLearner
    return cls(6, frame_shape=(frame_size, frame_size), stack=4, optimizer="adam", learning_rate=1e-4,
               adam_eps=1.5e-4, target_update_interval=1, double_dqn=True, dueling=True, network=network,
               device="cpu", seed=seed)


# the trainer's prioritized-replay defaults, so the bench times the step `dqnfast train --prioritized` takes
PRIORITY_ALPHA, PRIORITY_BETA, PRIORITY_EPS = (TrainConfig.priority_alpha, TrainConfig.priority_beta,
                                               TrainConfig.priority_eps)


def _update_fn(learner, mode: str, rb=None):
    """The step of ``mode``: ``step(batch, metrics)`` returns the metrics; with a prioritized ``rb``
    it takes the importance-weighted step and writes the new priorities back to ``rb``."""
    import torch

    if mode == "channels_last":
        learner.q_network.to(memory_format=torch.channels_last)
        learner.target_network.to(memory_format=torch.channels_last)
    if mode in ("compile", "compile_bf16"):
        from ..fast_update import make_update

        update = make_update(learner, "compile", autocast_bf16=mode == "compile_bf16")
        weighted = update.prioritized
    else:
        def update(batch, metrics=True):
            return learner.update(batch)

        def weighted(batch, metrics=True):
            return learner.update_prioritized(batch)
    if rb is None:
        return update

    def prioritized_step(batch, metrics=True):
        m, td_error = weighted(batch, metrics)
        rb.update_priorities(batch.index, td_error + PRIORITY_EPS)
        return m
    return prioritized_step


def bench_size(frame_size: int, modes: List[str], calls: int, rounds: int, warmup: int, shift: int,
               seed: int = 0, prioritized: bool = False, network: str = "nature") -> Dict[str, Dict[str, float]]:
    from ..prioritized import PrioritizedReplayBuffer
    from ..replay import ReplayBuffer

    kind, extra = (PrioritizedReplayBuffer, {"alpha": PRIORITY_ALPHA}) if prioritized else (ReplayBuffer, {})
    rb = kind(20_000, (frame_size, frame_size), stack=4, seed=seed, n_step=10, gamma=0.99, **extra)
    fill(rb, 20_000, (frame_size, frame_size), mean_episode=200)

    def sample(out=None):
        if prioritized:
            return rb.sample(32, PRIORITY_BETA, out=out, shift=shift)
        return rb.sample(32, out=out, shift=shift)

    batches = [copy.deepcopy(sample()) for _ in range(warmup + 1)]
    base = _learner(frame_size, seed, network=network)
    out: Dict[str, Dict[str, float]] = {}
    weights: Dict[str, List] = {}
    losses: Dict[str, List[float]] = {}
    for mode in modes:
        learner = _learner(frame_size, seed, two_pass=mode == "two_pass", network=network)
        learner.q_network.load_state_dict(base.q_network.state_dict())
        learner.target_network.load_state_dict(base.target_network.state_dict())
        update = _update_fn(learner, mode, rb if prioritized else None)
        # warm-up (and compilation) on the shared batches: the losses and then the weights compare here
        losses[mode] = [update(b)["td_loss"] for b in batches]
        weights[mode] = [p.detach().clone() for p in learner.q_network.parameters()]
        batch = rb.empty_prioritized_batch(32) if prioritized else rb.empty_batch(32)
        per_round = []
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(calls):
                update(sample(out=batch), False)
            per_round.append((time.perf_counter() - t) / calls * 1e3)
        out[mode] = {"ms": statistics.median(per_round)}
    for mode in modes:
        diff = max(float((a - b).abs().max()) for a, b in zip(weights[mode], weights[modes[0]]))
        out[mode]["diff"] = diff
        out[mode]["loss_diff"] = max(abs(a - b) for a, b in zip(losses[mode], losses[modes[0]]))
        out[mode]["per_hour"] = 3600e3 / out[mode]["ms"]
    return out


def build_parser() -> argparse.ArgumentParser:
    """The options; the shift defaults to the atari100k preset's, the setting whose cost is measured."""
    from ..config import PRESETS

    p = argparse.ArgumentParser(prog="dqnfast bench update", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[52, 64, 84], help="frame sizes (at least 36)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--calls", type=int, default=40, help="timed updates per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3, help="untimed first updates (compilation happens there)")
    p.add_argument("--shift", type=int, default=PRESETS["atari100k"]["shift"],
                   help="the sampler's random shift (0: none; default: the atari100k preset's, %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--network", nargs="+", choices=NETWORKS, default=[PRESETS["atari100k"].get("network", "nature")],
                   help="the Q-networks, each timed in turn in this process (default: the atari100k preset's, "
                        "%(default)s; dopamine: DrQ(ε)'s, dqnfast.dopamine_network)")
    p.add_argument("--prioritized", action="store_true",
                   help="prioritized replay's step: weighted loss, sample(32, beta) and update_priorities")
    return p


def main(argv: List[str]) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if any(s < 36 for s in args.sizes) or min(args.calls, args.rounds, args.warmup, args.threads) <= 0:
        p.error("--sizes must be at least 36 and --calls/--rounds/--warmup/--threads positive")
    if "eager" not in args.modes:
        p.error("--modes must include eager (the reference the others are compared with)")
    import torch

    from ..fast_update import bf16_dot_products

    torch.set_num_threads(args.threads)
    modes = ["eager"] + [m for m in args.modes if m != "eager"]
    dots = bf16_dot_products()
    dots = "unknown" if dots is None else dots or "none"  # None: the flags cannot be read (not Linux)
    what = (f"prioritized sample(32, beta={PRIORITY_BETA}, shift={args.shift}) + one weighted update + "
            f"update_priorities" if args.prioritized else f"sample(32, shift={args.shift}) + one update")
    print(f"dqnfast bench update: {what} (dueling, Double DQN, Adam, 10-step), "
          f"{args.threads} torch thread(s), torch {torch.__version__} - {machine()}; torch's CPU kernels: "
          f"{torch.backends.cpu.get_cpu_capability()}, bfloat16 dot products: {dots}")
    print(f"\n{'network':<9}{'frame':>6} {'mode':<14}{'ms/update':>10}{'updates/hour':>14}{'max |w - eager|':>17}"
          f"{'max |loss - eager|':>20}")
    for network in dict.fromkeys(args.network):  # (each once, in the order given)
        for size in args.sizes:
            res = bench_size(size, modes, args.calls, args.rounds, args.warmup, args.shift,
                             prioritized=args.prioritized, network=network)
            for mode in modes:
                r = res[mode]
                print(f"{network:<9}{size:>6} {mode:<14}{r['ms']:>10.2f}{r['per_hour']:>14,.0f}{r['diff']:>17.2e}"
                      f"{r['loss_diff']:>20.2e}")
    return 0


__all__ = ["bench_size", "main", "MODES"]
