"""One seed of `dqnfast bench learning`, in its own process: train (``python -m dqnfast.train``'s
main, in this process), then evaluate the final agent with the Atari 100k protocol and write the
seed's scores file.

    python -m dqnfast.benchmarks.learning_seed --scores FILE --run-dir RUN --eval-games N --eval-seed S \\
        [-- TRAIN OPTIONS]

Without train options the run in RUN is only evaluated (it finished training earlier). Training and
evaluation share the process so each seed pays for importing torch once, and seeds evaluate in
parallel. The scores file is written last and atomically: it is what marks the seed done.

Each evaluation game is recorded as it ends, in RUN/eval-games.csv (game, score, steps and the
evaluation's seconds so far, one line each, flushed to disk), and printed to the seed's log. Games
are independent of each other (``evaluate_learner``), so an evaluation stopped part-way resumes
from that file and plays only the games it lacks; a file of other settings (games, seed, epsilon,
step cap or checkpoint) is set aside, not mixed in.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import protocol

GAMES_FILE = "eval-games.csv"  # in the run folder: the evaluation's games so far


class GameRecord:
    """RUN/eval-games.csv: a header naming the evaluation's settings, then ``game,score,steps,seconds``
    per finished game. Reads the games an earlier process recorded under the same settings and
    appends each new one, flushed and synced, so a stop loses at most the games still in play."""

    def __init__(self, path: str, settings: Dict[str, Any]) -> None:
        self.path = path
        self.header = "# " + json.dumps(settings, sort_keys=True)
        self.scores: Dict[int, float] = {}
        self.steps: Dict[int, int] = {}
        self.seconds = 0.0  # the evaluation time the file already holds
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if not text.endswith("\n"):  # a line cut short by a kill: drop it (that game is played again)
                text = text[:text.rfind("\n") + 1]
                with open(path, "w") as f:
                    f.write(text)
            lines = text.splitlines()
            if lines[:2] == [self.header, "game,score,steps,seconds"]:
                for line in lines[2:]:
                    parts = line.split(",")
                    game = int(parts[0])
                    self.scores[game], self.steps[game] = float(parts[1]), int(parts[2])
                    self.seconds = max(self.seconds, float(parts[3]))
            else:
                os.replace(path, f"{path}.other-settings")
                print(f"{path}: recorded under other settings; moved to {path}.other-settings", flush=True)
        if not self.scores:
            with open(path, "w") as f:
                f.write(f"{self.header}\ngame,score,steps,seconds\n")

    def add(self, game: int, score: float, steps: int, seconds: float) -> None:
        self.scores[game], self.steps[game] = score, steps
        with open(self.path, "a") as f:
            f.write(f"{game},{score!r},{steps},{seconds:.3f}\n")
            f.flush()
            os.fsync(f.fileno())


def evaluate_run(run_dir: str, games: int, seed: int) -> dict:
    """The scores of ``games`` protocol games of the agent in ``run_dir``/checkpoint.pt, and how they were played."""
    import numpy as np
    import torch

    from ..envs import make_env
    from ..evaluate import PARALLEL_GAMES, evaluate_learner, load_learner

    path = os.path.join(run_dir, "checkpoint.pt")
    learner, cfg, state = load_learner(path)  # the loader `dqnfast evaluate` uses
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    eval_cfg = protocol.evaluation_config(cfg)
    env = make_env(eval_cfg, num_envs=1, seed=seed, evaluation=True)  # what the games will be played on
    sticky = float(env.unwrapped.ale.getFloat("repeat_action_probability"))
    fire_game = "FIRE" in env.unwrapped.get_action_meanings()[1:2]
    env.close()
    max_steps = cfg.game_step_cap  # the protocol's 108k frames a game, as evaluate_learner caps it
    counters = state["counters"]
    record = GameRecord(os.path.join(run_dir, GAMES_FILE), {
        "games": games, "seed": seed, "epsilon": cfg.eval_epsilon, "max_agent_steps": max_steps,
        "noop_max": eval_cfg.noop_max, "checkpoint_step": int(counters["global_step"])})
    if record.scores:
        print(f"resuming the evaluation: {len(record.scores)} of {games} games recorded in {record.path}", flush=True)
    start = time.perf_counter()

    def on_game(game: int, score: float, steps: int) -> None:
        record.add(game, score, steps, record.seconds + time.perf_counter() - start)
        print(f"game {game + 1}/{games}: score {score:g} ({steps} steps; {len(record.scores)}/{games} done)",
              flush=True)

    scores = evaluate_learner(learner, eval_cfg, episodes=games, epsilon=cfg.eval_epsilon, seed=seed,
                              max_steps=max_steps, parallel=PARALLEL_GAMES, done=record.scores, on_game=on_game)
    eval_s = record.seconds + time.perf_counter() - start
    lengths: List[Optional[int]] = [record.steps.get(g) for g in range(len(scores))]
    return {
        "seed": cfg.seed, "env_id": cfg.env_id, "preset": state["preset"],
        "agent_steps": int(counters["global_step"]), "updates": int(counters["updates"]),
        "training_games": int(counters["episodes"]), "resumes": int(counters.get("resumes", 0)),
        "train_s": float(counters["train_time"]), "eval_s": eval_s,
        "mean": float(np.mean(scores)), "std": float(np.std(scores)), "games": len(scores),
        "scores": [float(s) for s in scores], "game_steps": lengths,
        "eval": {"epsilon": cfg.eval_epsilon, "seed": seed, "noop_max": eval_cfg.noop_max,
                 "max_agent_steps": max_steps, "max_frames": max_steps * cfg.frame_skip,
                 "repeat_action_probability": sticky, "all_lives": True, "fire_game": fire_game,
                 "fire_after_lost_life": bool(cfg.fire_reset and cfg.episodic_life and fire_game)},
    }


def write_json(path: str, data: dict) -> None:
    """Atomically: a reader (or a resumed batch) never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: List[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, train_args = argv[:split], argv[split + 1:]
    p = argparse.ArgumentParser(prog="python -m dqnfast.benchmarks.learning_seed")
    p.add_argument("--scores", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--eval-games", type=int, required=True)
    p.add_argument("--eval-seed", type=int, required=True)
    args = p.parse_args(argv)
    # The runner asks a seed to stop (and checkpoint) with SIGINT. A runner started in the background
    # (nohup ... &) passes SIGINT on ignored, as non-interactive shells set it; the trainer would then
    # never see the request. This process is the runner's child: Python's own handler is the right one.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if train_args:
        from ..train import main as train_main
        rc = train_main(train_args)
        if rc:
            return int(rc)
    print(f"evaluating {args.run_dir} on {args.eval_games} games", flush=True)
    result = evaluate_run(args.run_dir, args.eval_games, args.eval_seed)
    write_json(args.scores, result)
    print(f"scores {args.scores}: mean {result['mean']:.2f} +- {result['std']:.2f} over {result['games']} games "
          f"in {result['eval_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
