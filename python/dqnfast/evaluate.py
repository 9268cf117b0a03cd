"""`dqnfast evaluate CHECKPOINT`: play N real games with an epsilon-greedy agent and report the score.

The real game: all lives in one episode, unclipped rewards (the training env's episodic life and
reward clipping are switched off); preprocessing is the one the agent was trained with. Prints
each game's score, the mean and the standard deviation; ``--gif`` records the first game.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, List, Mapping, Optional, Sequence

import numpy as np

from .checkpoint import CheckpointError, load_training_checkpoint
from .config import TrainConfig
from .envs import make_env
from .learner import epsilon_greedy
from .recurrent import build_learner, make_policy
from .replay import ReplayBuffer

# Games played side by side by default (`dqnfast evaluate`, `dqnfast bench learning`), one batched
# forward pass per step: the scores do not depend on it (evaluate_learner), only the time does.
PARALLEL_GAMES = 25


def evaluate_learner(learner, cfg, *, episodes: int, epsilon: float, seed: int, gif_path: Optional[str] = None,
                     max_steps: Optional[int] = None, progress: bool = False, parallel: int = 1,
                     done: Optional[Mapping[int, float]] = None,
                     on_game: Optional[Callable[[int, float, int], None]] = None) -> List[float]:
    """Scores of ``episodes`` real games played by ``learner`` (a DQNLearner) with ``epsilon``.

    ``max_steps`` caps each game in agent steps; by default ``cfg.game_step_cap``: 108k frames (30
    minutes of play, the usual limit) at ``cfg.frame_skip``: 27k agent steps at frame skip 4.
    The agent sees the states it was trained on: when it was trained with episodic life and FIRE on
    reset, each lost life is followed by FIRE and a fresh frame stack, as in training; the score
    still counts every life of the game.

    Game g is played on an env reset with seed ``seed + g`` and draws its epsilon-greedy choices
    from its own generator (``[seed, g]``), so its score does not depend on the other games nor on
    how many are played at once: up to ``parallel`` games step side by side with one batched
    forward pass (a recurrent agent, whose state follows one game, plays them one at a time). A
    stalled game (an agent that waits for a random FIRE at epsilon 0.001) can run to ``max_steps``:
    side by side, such games cost one batched pass per step instead of one each.

    For the same reason an evaluation can be resumed: ``done`` maps games already played (by an
    evaluation that was stopped) to their scores, which are not played again, and ``on_game(game,
    score, steps)`` is called as each game ends, to record it. Returns the scores in game order.
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if parallel <= 0:
        raise ValueError(f"parallel must be positive, got {parallel}")
    if max_steps is None:
        max_steps = cfg.game_step_cap
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    done = dict(done or {})
    if any(not 0 <= g < episodes for g in done):
        raise ValueError(f"done names games outside 0..{episodes - 1}: {sorted(g for g in done if not 0 <= g < episodes)}")
    returns: List[Optional[float]] = [done.get(g) for g in range(episodes)]
    todo = [g for g in range(episodes) if g not in done]
    if not todo:
        return [float(r) for r in returns]
    policy = make_policy(learner)  # a DRQN carries its LSTM state from step to step
    started = getattr(policy, "episode_started", None)
    width = 1 if started is not None else min(parallel, len(todo))
    started = started or (lambda slot: None)
    envs = [make_env(cfg, num_envs=1, seed=seed, evaluation=True) for _ in range(width)]
    shape = (cfg.frame_size, cfg.frame_size)
    stack = cfg.replay_stack
    stacker = ReplayBuffer(width * 4 * (stack + 1), frame_shape=shape, stack=stack, num_envs=width, seed=seed)
    meanings = envs[0].unwrapped.get_action_meanings()
    fire = meanings.index("FIRE") if cfg.fire_reset and "FIRE" in meanings else None
    states = np.empty((width, stack, *shape), np.uint8)
    frames: List[np.ndarray] = []
    games = iter(todo)
    slots: List[Optional[_Game]] = [None] * width

    def begin(slot: int) -> None:
        game = next(games, None)
        if game is None:
            slots[slot] = None
            return
        obs, _ = envs[slot].reset(seed=seed + game)
        stacker.start_episode(obs, slot)
        started(slot)
        slots[slot] = _Game(game, np.random.default_rng([seed, game]), envs[slot].unwrapped.ale.lives())

    for slot in range(width):
        begin(slot)
    while any(g is not None for g in slots):
        active = [k for k, g in enumerate(slots) if g is not None]
        for k in active:
            stacker.stacked(k, out=states[k])
            if gif_path is not None and slots[k].game == 0:
                frames.append(envs[k].unwrapped.ale.getScreenRGB())
        greedy = np.asarray(policy(states[:max(active) + 1], 0.0))  # every step: a recurrent state follows the game
        for k in active:
            g = slots[k]
            if g.relaunch:  # a life was lost: FIRE, as the training env's reset did after every lost life
                action = fire
            else:
                action = int(epsilon_greedy(g.rng, epsilon, learner.num_actions, 1, lambda: greedy[k:k + 1])[0])
            obs, reward, terminated, truncated, info = envs[k].step(action)
            g.total += float(reward)
            g.steps += 1
            if "episode" in info:  # RecordEpisodeStatistics: the real game's score
                g.total = float(np.asarray(info["episode"]["r"]).reshape(-1)[0])
            if terminated or truncated or g.steps >= max_steps:
                returns[g.game] = g.total
                if on_game is not None:
                    on_game(g.game, g.total, g.steps)
                if progress:
                    print(f"game {g.game + 1}/{episodes}: score {g.total:g} ({g.steps} steps)", flush=True)
                begin(k)
                continue
            if g.relaunch:  # the agent was trained on lives that start here (a fresh stack)
                stacker.start_episode(obs, k)
                started(k)
                g.relaunch = False
            else:
                stacker.add(action, float(reward), obs, False, env=k)
            lives = envs[k].unwrapped.ale.lives()
            if fire is not None and cfg.episodic_life and lives < g.lives:
                g.relaunch = True
            g.lives = lives
    for env in envs:
        env.close()
    if gif_path is not None and frames:
        save_gif(frames, gif_path)
    return [float(r) for r in returns]


class _Game:
    """One game in play: its index, its epsilon-greedy generator, score so far, steps and lives."""

    def __init__(self, game: int, rng: np.random.Generator, lives: int) -> None:
        self.game, self.rng, self.lives = game, rng, lives
        self.total, self.steps, self.relaunch = 0.0, 0, False


def save_gif(frames: List[np.ndarray], path: str, fps: int = 15, max_frames: int = 2000) -> None:
    """An animated GIF (pillow) of RGB frames; at most ``max_frames`` (evenly subsampled)."""
    from PIL import Image
    if len(frames) > max_frames:
        keep = np.linspace(0, len(frames) - 1, max_frames).astype(int)
        frames = [frames[i] for i in keep]
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=False)


def load_learner(path: str, device: Optional[str] = None):
    """(learner, config, checkpoint state) from a `dqnfast train` checkpoint."""
    state = load_training_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    learner = build_learner(cfg, int(state["num_actions"]), device=device)
    learner.q_network.load_state_dict(state["learner"]["q_network"])
    learner.q_network.eval()
    return learner, cfg, state


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dqnfast evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint.pt written by `dqnfast train`")
    p.add_argument("--episodes", type=int, default=10, help="games to play")
    p.add_argument("--epsilon", type=float, default=None, help="exploration rate (default: the run's eval_epsilon, 0.05)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the games and of epsilon-greedy")
    p.add_argument("--max-steps", type=int, default=None,
                   help="agent steps after which a game is cut off (default: 108k frames at the run's frame skip, 27k at 4)")
    p.add_argument("--parallel", type=int, default=PARALLEL_GAMES,
                   help="games played side by side, one batched forward pass a step (same scores, faster)")
    p.add_argument("--gif", metavar="PATH", default=None, help="write the first game as an animated GIF")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.episodes <= 0:
        parser.error(f"--episodes must be positive, got {args.episodes}")
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error(f"--max-steps must be positive, got {args.max_steps}")
    if args.parallel <= 0:
        parser.error(f"--parallel must be positive, got {args.parallel}")
    if args.epsilon is not None and not 0.0 <= args.epsilon <= 1.0:
        parser.error(f"--epsilon must be in [0, 1], got {args.epsilon}")
    try:
        learner, cfg, state = load_learner(args.checkpoint, args.device)
    except CheckpointError as e:
        print(f"dqnfast evaluate: {e}", file=sys.stderr)
        return 2
    epsilon = cfg.eval_epsilon if args.epsilon is None else args.epsilon
    returns = evaluate_learner(learner, cfg, episodes=args.episodes, epsilon=epsilon, seed=args.seed,
                               gif_path=args.gif, max_steps=args.max_steps, progress=not args.json,
                               parallel=args.parallel)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "global_step": state["counters"]["global_step"],
                          "epsilon": epsilon, "returns": returns, "mean": mean, "std": std}))
    else:
        print(f"{cfg.env_id} after {state['counters']['global_step']} steps, epsilon {epsilon}: "
              f"mean score {mean:.2f} +- {std:.2f} over {len(returns)} games")
        if args.gif:
            print(f"GIF of game 1: {args.gif}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
