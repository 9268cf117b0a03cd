"""`dqnfast bench learning`: train and evaluate several seeds of a preset, report them as the Atari
100k literature does (per-seed scores, IQM with a stratified bootstrap 95% CI, mean, median, the
published anchors, and where the protocol differs).

    dqnfast bench learning --preset demo --env-id ALE/Breakout-v5 --seeds 5 --jobs 2 [--out DIR]
        [--eval-games 100] [any `dqnfast train` option, e.g. --total-steps 400 --frame-size 36]

Each seed S (1..N) runs in its own process (:mod:`.learning_seed`: ``dqnfast.train``'s main with
--seed S, then the protocol evaluation), at most --jobs at a time, under one progress bar of agent
steps summed over seeds (read from each run's episodes.csv and scalars.csv as they grow).

OUT holds: ``batch.json`` (the config every seed shares), ``seed-S/`` (the run: checkpoint, logs),
``seed-S.log`` (the process's output), ``seed-S.json`` (its scores, written last: the seed is
done), ``scores.csv``, ``summary.json`` and ``learning_curves.png``. Running the same command again
skips done seeds, evaluates trained ones, resumes (``--resume``) those stopped with a checkpoint
and restarts those stopped before their first one; a larger --seeds adds seeds.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..config import TrainConfig
from . import aggregate, anchors, protocol
from .learning_plot import plot_batch, read_curve

# trainer options the runner sets itself, per seed
RUNNER_OWNED = ("seed", "run_dir", "run_name", "eval_episodes", "progress")
# config fields that may change between invocations on one OUT without changing what is measured
NOT_COMPARED = ("seed", "run_dir", "run_name", "eval_episodes", "progress", "torch_threads", "tensorboard", "device")
EVAL_SEED_BASE = 10_000_000  # seed S plays evaluation games EVAL_SEED_BASE + 100_000 S + game: apart from training's
MAX_EVAL_GAMES = 100_000
POLL_S = 0.5
# the training games the report sums up beside the evaluation: those ending in the last fifth of the
# agent steps (80-100k of Atari 100k), where the evaluated agent's training ends
LATE_FRACTION = 0.2


class UsageError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dqnfast bench learning", allow_abbrev=False,  # (no abbreviations: --seed must not mean --seeds)
        description="Train and evaluate seeds 1..N of a preset; report per-seed scores, the IQM over seeds with "
                    "a stratified bootstrap 95% CI, mean, median and the published Atari 100k anchors.",
        epilog="Every other option is a `dqnfast train` option (see `dqnfast train --help`), applied to every "
               "seed, e.g. --env-id ALE/Breakout-v5 --total-steps 100000. The runner sets --seed, --run-dir, "
               "--run-name, --resume, --eval-episodes 0 and --no-progress itself, and --torch-threads 1 unless "
               "given. Rerun the same command to resume a stopped batch.")
    p.add_argument("--preset", default="demo", help="trainer preset every seed starts from")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds: seeds 1..N")
    p.add_argument("--jobs", type=int, default=2, help="seeds run at the same time (one process each)")
    p.add_argument("--out", default=None, help="output folder (default runs/bench-learning/GAME__PRESET)")
    p.add_argument("--eval-games", type=int, default=protocol.GAMES, help="full games each final agent plays")
    p.add_argument("--bootstrap-reps", type=int, default=50_000, help="bootstrap replicates of each CI")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show the batch's progress bar")
    return p


# -- validation: everything is checked before any folder or process is made ---------------------------
def trainer_config(preset: str, overrides: Sequence[str]):
    """The TrainConfig every seed shares (seed aside), built the way `dqnfast train` builds it;
    UsageError with the trainer's own message when it refuses the options."""
    from ..config import PRESETS
    from ..train.cli import given_fields, parse_config

    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    for token in overrides:
        name = token.split("=", 1)[0]
        if name in ("-h", "--help"):
            raise UsageError("`dqnfast train --help` lists the trainer options")
        if name == "--resume":
            raise UsageError("--resume is the runner's: rerun the same command to resume a batch")
    owned = sorted(set(given_fields(overrides)) & set(RUNNER_OWNED))
    if owned:
        raise UsageError(f"the runner sets {', '.join('--' + o.replace('_', '-') for o in owned)} itself"
                         + (" (use --seeds N for seeds 1..N)" if "seed" in owned else ""))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cfg, *_ = parse_config(["--preset", preset, *overrides])
    except SystemExit:
        message = err.getvalue().strip() or "invalid trainer options"
        raise UsageError("the trainer refuses these options:\n" + message) from None
    return cfg


def check_args(args: argparse.Namespace) -> None:
    for name, low in (("seeds", 1), ("jobs", 1), ("eval_games", 1), ("bootstrap_reps", 1)):
        if getattr(args, name) < low:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
    if args.eval_games > MAX_EVAL_GAMES:
        raise UsageError(f"--eval-games must be at most {MAX_EVAL_GAMES}, got {args.eval_games}")


def comparable(cfg) -> Dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k not in NOT_COMPARED}


def recorded_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """A batch's recorded config, a field it predates (added to TrainConfig since) at its default:
    the value its seeds ran with."""
    return {**comparable(TrainConfig()), **config}


_MISSING = object()  # a field only one config has differs even where the other's value is None


def differing_fields(a: Dict[str, Any], b: Dict[str, Any], *, ignore: Sequence[str] = ()) -> List[str]:
    """The fields, sorted, where two recorded configs hold different values (a field one of them
    lacks counts as different), leaving out ``ignore``: what makes two batches measure different
    things."""
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k, _MISSING) != b.get(k, _MISSING))


def check_batch_file(out: str, batch: Dict[str, Any]) -> None:
    """A rerun on OUT must measure the same thing: mixing configs in one IQM would be meaningless.

    A field that OUT's batch predates (added to TrainConfig since) counts as its default there, the
    value its seeds ran with, so a batch can be resumed by a newer dqnfast unless the field was set."""
    path = os.path.join(out, "batch.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    before = recorded_config(old["config"])
    changed = differing_fields(before, batch["config"])
    changed += [k for k in ("preset", "eval_games") if old.get(k) != batch.get(k)]
    if changed:
        raise UsageError(f"{out} holds a batch run with other settings ({', '.join(changed)} differ); use another "
                         f"--out, or the original options to resume it")


# -- per seed: what is left to do -----------------------------------------------------------------------
@dataclasses.dataclass
class Seed:
    seed: int
    out: str
    action: str = "train"  # done | evaluate | resume | train
    start_step: int = 0
    proc: Optional[subprocess.Popen] = None
    started: float = 0.0
    tails: Tuple["StepTail", ...] = ()
    rc: Optional[int] = None

    @property
    def run_dir(self) -> str:
        return os.path.join(self.out, f"seed-{self.seed}")

    @property
    def scores_path(self) -> str:
        return os.path.join(self.out, f"seed-{self.seed}.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.out, f"seed-{self.seed}.log")

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.run_dir, "checkpoint.pt")

    def steps(self) -> int:
        return max([self.start_step, *(t.poll() for t in self.tails)])


def plan(seed: Seed, total_steps: int) -> Seed:
    """Sets what ``seed`` still needs, from the files in OUT."""
    from ..checkpoint import CheckpointError, load_training_checkpoint

    if os.path.exists(seed.scores_path):
        with open(seed.scores_path) as f:
            seed.action, seed.start_step = "done", int(json.load(f)["agent_steps"])
        return seed
    if os.path.exists(seed.checkpoint):
        try:
            step = int(load_training_checkpoint(seed.checkpoint)["counters"]["global_step"])
        except CheckpointError as e:  # (written atomically, so only a damaged disk gets here)
            print(f"seed {seed.seed}: unreadable checkpoint ({e}); training it again", file=sys.stderr)
        else:
            seed.action, seed.start_step = ("evaluate" if step >= total_steps else "resume"), step
            return seed
    seed.action, seed.start_step = "train", 0
    return seed


def drop_rows_after(path: str, step: int) -> None:
    """Rows a run logged after its last checkpoint: the resumed run plays those steps again, so they
    would appear twice in its curve (TensorBoard's purge_step does the same for the event files)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(keep) != len(rows):
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(keep)
        os.replace(tmp, path)


class StepTail:
    """The largest agent step (first column) in a CSV log that another process appends to; reads only
    what was added since the last poll and ignores a line still being written."""

    def __init__(self, path: str) -> None:
        self.path, self.offset, self.partial, self.max_step = path, 0, b"", 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:  # not written yet
            return self.max_step
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()  # no newline yet: not complete
        for line in lines:
            head = line.split(b",", 1)[0]
            if head.isdigit():  # (the header line is not)
                self.max_step = max(self.max_step, int(head))
        return self.max_step


# -- running the seeds ------------------------------------------------------------------------------------
def worker_command(seed: Seed, preset: str, overrides: Sequence[str], eval_games: int) -> List[str]:
    cmd = [sys.executable, "-m", "dqnfast.benchmarks.learning_seed", "--scores", seed.scores_path,
           "--run-dir", seed.run_dir, "--eval-games", str(eval_games),
           "--eval-seed", str(EVAL_SEED_BASE + 100_000 * seed.seed)]
    from ..train.cli import given_fields
    common = [*overrides, "--no-progress", "--eval-episodes", "0"]
    if "torch_threads" not in given_fields(overrides):
        common += ["--torch-threads", "1"]  # seeds share the cores: one intra-op thread each
    if seed.action == "train":
        cmd += ["--", "--preset", preset, "--seed", str(seed.seed), "--run-dir", seed.out,
                "--run-name", os.path.basename(seed.run_dir), *common]
    elif seed.action == "resume":
        cmd += ["--", "--resume", seed.checkpoint, *common]  # (the checkpoint holds the preset and seed)
    return cmd


def start(seed: Seed, cmd: List[str]) -> None:
    if seed.action == "train" and os.path.exists(seed.run_dir):
        shutil.rmtree(seed.run_dir)  # stopped before its first checkpoint: its logs would be appended to
    if seed.action == "resume":
        for name in ("episodes.csv", "scalars.csv"):
            drop_rows_after(os.path.join(seed.run_dir, name), seed.start_step)
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with open(seed.log_path, "a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {seed.action}: {' '.join(cmd)}\n")
        log.flush()
        # a session of its own: a Ctrl-C reaches the runner only, which passes one SIGINT to each seed
        # (the trainer then writes a checkpoint; a second signal could cut that short)
        seed.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
    seed.started = time.perf_counter()
    seed.tails = (StepTail(os.path.join(seed.run_dir, "episodes.csv")),
                  StepTail(os.path.join(seed.run_dir, "scalars.csv")))


def log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class _Stop(KeyboardInterrupt):
    pass


def seed_count(n: int) -> str:
    """'1 seed', '5 seeds': for the progress bar and the plot's title."""
    return f"{n} seed{'' if n == 1 else 's'}"


def run_seeds(seeds: List[Seed], preset: str, overrides: Sequence[str], eval_games: int, jobs: int,
              total_steps: int, show_progress: bool) -> bool:
    """Runs what each seed needs, ``jobs`` at a time; False when interrupted."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    todo = [s for s in seeds if s.action != "done"]
    running: List[Seed] = []
    bar = None
    if show_progress and tqdm is not None:
        bar = tqdm(total=len(seeds) * total_steps, unit="step", dynamic_ncols=True, mininterval=1.0,
                   desc=seed_count(len(seeds)), smoothing=0.1)
    write = bar.write if bar is not None else (lambda text: print(text, flush=True))

    def on_term(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    try:
        while todo or running:
            while todo and len(running) < jobs:
                seed = todo.pop(0)
                start(seed, worker_command(seed, preset, overrides, eval_games))
                running.append(seed)
            time.sleep(POLL_S)
            for seed in list(running):
                seed.rc = seed.proc.poll()
                if seed.rc is None:
                    continue
                running.remove(seed)
                if seed.rc == 0 and os.path.exists(seed.scores_path):
                    with open(seed.scores_path) as f:
                        r = json.load(f)
                    seed.action, seed.start_step, seed.tails = "done", int(r["agent_steps"]), ()
                    write(f"seed {seed.seed}: {r['agent_steps']} steps, score {r['mean']:.2f} +- {r['std']:.2f} over "
                          f"{r['games']} games (train {r['train_s']:.0f} s, eval {r['eval_s']:.0f} s)")
                else:
                    write(f"seed {seed.seed}: failed (exit status {seed.rc}); the end of {seed.log_path}:\n"
                          + log_tail(seed.log_path))
            if bar is not None:
                bar.update(sum(s.steps() for s in seeds) - bar.n)
                bar.set_postfix_str(f"running {','.join(str(s.seed) for s in running) or '-'} "
                                    f"done {sum(s.action == 'done' for s in seeds)}/{len(seeds)}", refresh=False)
        return True
    except KeyboardInterrupt:
        write(f"stopping: seeds {', '.join(str(s.seed) for s in running) or '-'} write a checkpoint; "
              f"rerun the same command to resume")
        for seed in running:
            with contextlib.suppress(ProcessLookupError):
                seed.proc.send_signal(signal.SIGINT)
        for seed in running:
            try:
                seed.proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                seed.proc.kill()
                seed.proc.wait()
        return False
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# -- results ----------------------------------------------------------------------------------------------
def load_results(seeds: List[Seed]) -> List[Dict[str, Any]]:
    results = []
    for s in seeds:
        if os.path.exists(s.scores_path):
            with open(s.scores_path) as f:
                results.append(json.load(f))
    return results


def write_scores_csv(path: str, results: List[Dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "mean", "std", "games", "train_s", "eval_s", "agent_steps", "scores"])
        for r in results:
            w.writerow([r["seed"], f"{r['mean']:.6g}", f"{r['std']:.6g}", r["games"], f"{r['train_s']:.3f}",
                        f"{r['eval_s']:.3f}", r["agent_steps"], " ".join(f"{x:g}" for x in r["scores"])])


def late_from_step(total_steps: int) -> int:
    return int(round(total_steps * (1 - LATE_FRACTION)))


def late_training_games(steps, returns, from_step: int) -> Dict[str, Any]:
    """The training games that end after agent step ``from_step`` (:func:`late_from_step`): their
    count, mean and IQM (None without games). A second view of where a seed ended, less bound to a
    few repeated trajectories than the near-greedy evaluation is, but played at the training ε and
    with the network still changing: not the protocol's figure."""
    late = [float(r) for s, r in zip(steps, returns) if s > from_step]
    return {"from_step": from_step, "games": len(late),
            "mean": sum(late) / len(late) if late else None,
            "iqm": aggregate.iqm(late) if late else None}


def late_cell(late: Dict[str, Any]) -> str:
    if not late["games"]:
        return f"{'-':>16}"
    return f"{late['mean']:>7.2f} {late['iqm']:>7.2f} ({late['games']})"


def report(cfg, preset: str, results: List[Dict[str, Any]], failed: List[int], summary: Dict[str, Any]) -> str:
    lines = [f"{cfg.env_id}, preset {preset}: {len(results)} seeds, {results[0]['games']} evaluation games each "
             f"(epsilon {results[0]['eval']['epsilon']:g})", "",
             f"{'seed':>5} {'agent steps':>12} {'score (mean +- std over games)':>32} {'train s':>9} {'eval s':>8}"
             f"   training games after step {summary['late_training']['from_step']:,}: mean, IQM (games)"]
    for r in results:
        late = summary["late_training"]["per_seed"][str(r["seed"])]
        lines.append(f"{r['seed']:>5} {r['agent_steps']:>12,} {r['mean']:>20.2f} +- {r['std']:<9.2f} "
                     f"{r['train_s']:>9.1f} {r['eval_s']:>8.1f}   {late_cell(late)}")
    lo, hi = summary["iqm_ci"]
    late_iqm = summary["late_training"]["iqm_of_means"]
    lines += ["", f"IQM {summary['iqm']:.2f} [95% CI {lo:.2f}, {hi:.2f}] over {summary['runs']} seeds "
                  f"(stratified bootstrap, {summary['bootstrap_reps']:,} replicates); "
                  f"mean {summary['mean']:.2f} [{summary['mean_ci'][0]:.2f}, {summary['mean_ci'][1]:.2f}]; "
                  f"median {summary['median']:.2f}"]
    if late_iqm is not None:
        lines.append(f"training games after step {summary['late_training']['from_step']:,} (training epsilon, "
                     f"not the protocol's figure): IQM of the seeds' means {late_iqm:.2f}")
    if failed:
        lines.append(f"failed seeds (not in the figures): {', '.join(map(str, failed))}")
    if summary["anchors"]:
        lines += ["", f"published, {anchors.game_name(cfg.env_id)} at {anchors.STEPS:,} agent steps:"]
        for a in summary["anchors"]:
            note = f"; {a['note']}" if a["note"] else ""
            lines.append(f"  {a['agent']:<8} {a['score']:>6g}   ({a['source']}{note})")
    else:
        lines += ["", f"no published anchors for {cfg.env_id}"]
    if summary["differences"]:
        lines += ["", "differences from the published Atari 100k protocol:"]
        lines += [f"  - {d}" for d in summary["differences"]]
    lines += ["", f"files: {summary['out']}/summary.json, scores.csv, seed-S.json, learning_curves.png"]
    return "\n".join(lines)


def summarize(out: str, cfg, preset: str, overrides: Sequence[str], seeds: List[Seed], eval_games: int,
              reps: int) -> Tuple[Optional[Dict[str, Any]], List[Dict[str, Any]]]:
    from .learning_seed import write_json

    results = load_results(seeds)
    if not results:
        return None, results
    write_scores_csv(os.path.join(out, "scores.csv"), results)
    stats = aggregate.summarize([r["mean"] for r in results], reps=reps)
    first = results[0]["eval"]
    table = anchors.anchors_for(cfg.env_id)
    curves = {r["seed"]: read_curve(os.path.join(out, f"seed-{r['seed']}")) for r in results}
    late_from = late_from_step(cfg.total_steps)
    late = {str(seed): late_training_games(*curve, late_from) for seed, curve in curves.items()}
    png = plot_batch(os.path.join(out, "learning_curves.png"), curves, table,
                     title=f"{cfg.env_id} ({preset}), {seed_count(len(results))}", anchor_steps=anchors.STEPS,
                     finals={r["seed"]: (r["agent_steps"], r["mean"]) for r in results})
    summary: Dict[str, Any] = {
        "out": out, "env_id": cfg.env_id, "preset": preset, "overrides": list(overrides),
        "config": comparable(cfg),  # what every seed ran with (`dqnfast bench games` compares batches by it)
        "seeds": [r["seed"] for r in results], "failed_seeds": [s.seed for s in seeds if s.action != "done"],
        "per_seed_mean": {str(r["seed"]): r["mean"] for r in results},
        **stats,
        "statistic_note": "IQM = scipy.stats.trim_mean(x, 0.25) over the per-seed mean scores (as rliable); "
                          "CIs: percentile bootstrap over seeds, stratified by task (one task here)",
        "protocol": {"eval_games": eval_games, "epsilon": first["epsilon"], "noop_max": first["noop_max"],
                     "max_frames_per_game": first["max_frames"], "max_agent_steps_per_game": first["max_agent_steps"],
                     "repeat_action_probability": first["repeat_action_probability"], "all_lives": True},
        "differences": protocol.differences(cfg, eval_games, repeat_action_probability=max(
            r["eval"]["repeat_action_probability"] for r in results), fire_game=first["fire_game"]),
        "anchors": [a._asdict() for a in table], "anchor_steps": anchors.STEPS,
        "learning_curves": png,
        # beside the evaluation, not instead of it: see late_training_games
        "late_training": {"from_step": late_from, "per_seed": late, "iqm_of_means": aggregate.iqm(
            [x["mean"] for x in late.values()]) if all(x["games"] for x in late.values()) else None},
    }
    write_json(os.path.join(out, "summary.json"), summary)
    return summary, results


# -- entry point ------------------------------------------------------------------------------------------
def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(list(argv))
    try:
        check_args(args)
        cfg = trainer_config(args.preset, overrides)
        out = args.out or os.path.join("runs", "bench-learning",
                                       f"{anchors.game_name(cfg.env_id)}__{args.preset}")
        if os.path.exists(out) and not os.path.isdir(out):
            raise UsageError(f"--out {out} is a file")
        batch = {"preset": args.preset, "eval_games": args.eval_games, "config": comparable(cfg)}
        check_batch_file(out, batch)
    except UsageError as e:
        print(f"usage: dqnfast bench learning [options] [dqnfast train options]\n"
              f"dqnfast bench learning: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(out, "batch.json")):
        from .learning_seed import write_json
        write_json(os.path.join(out, "batch.json"), {**batch, "overrides": overrides})

    seeds = [plan(Seed(s, out), cfg.total_steps) for s in range(1, args.seeds + 1)]
    for action in ("done", "evaluate", "resume"):
        chosen = [s for s in seeds if s.action == action]
        if chosen:
            print(f"seeds {', '.join(str(s.seed) for s in chosen)}: "
                  + {"done": "already done (scores in OUT), not rerun",
                     "evaluate": "trained, to evaluate",
                     "resume": "stopped with a checkpoint, resumed from it"}[action]
                  + (f" (at {', '.join(str(s.start_step) for s in chosen)} steps)" if action == "resume" else ""),
                  flush=True)
    finished = run_seeds(seeds, args.preset, overrides, args.eval_games, args.jobs, cfg.total_steps, args.progress)
    if not finished:
        return 130
    summary, results = summarize(out, cfg, args.preset, overrides, seeds, args.eval_games, args.bootstrap_reps)
    if summary is None:
        print("dqnfast bench learning: no seed finished", file=sys.stderr)
        return 1
    print(report(cfg, args.preset, results, summary["failed_seeds"], summary))
    return 1 if summary["failed_seeds"] else 0
