"""The published Atari 100k evaluation protocol, and where a `dqnfast bench learning` batch departs
from it (listed beside its figures, so they are not read as like-for-like with the anchors).

Protocol (Atari 100k, Kaiser et al. 2020, as issue 18 states it for the agents in :mod:`.anchors`): 100k agent
steps of training; evaluation on full games (every life; a lost life ends only the *training*
episode) with no sticky actions (repeat_action_probability 0), up to 30 no-op actions at the
start, at most 108k frames (27k agent steps at frame skip 4) a game, ε-greedy with ε 0.05, 100
games per run; the agent chooses every action.
"""
from __future__ import annotations

from typing import List, Optional

from ..config import DRQ_EPS_EVAL_EPSILON, TrainConfig

NOOP_MAX = 30
EPSILON = 0.05
GAMES = 100
TRAIN_STEPS = 100_000
# What the anchors' agents see (not part of the protocol): Dopamine's AtariPreprocessing, which DER, DrQ
# and DrQ(eps) run in, resizes the whole gray screen to 84x84 with cv2.INTER_AREA; SPR's code, bilinear.
AGENT_FRAME_SIZE = 84
AGENT_INTERP = "area"


def evaluation_config(cfg: TrainConfig) -> TrainConfig:
    """The config evaluation plays with: the agent's preprocessing, the protocol's no-op starts.
    (Sticky actions: the env of every config has none, checked on the env itself at evaluation.)"""
    return cfg.replace(noop_max=NOOP_MAX)


def differences(cfg: TrainConfig, eval_games: int, *, repeat_action_probability: Optional[float] = None,
                fire_game: Optional[bool] = None) -> List[str]:
    """How this batch's training and evaluation differ from the protocol the anchors were measured with.

    ``repeat_action_probability``: as read from the evaluation env; ``fire_game``: whether the game's
    action 1 is FIRE (then ``fire_reset`` presses it); None when not known (then assumed so)."""
    out: List[str] = []
    if cfg.fire_reset and fire_game is not False:
        out.append("FIRE (then action 2) is pressed by the env after every reset"
                   + (", and evaluation presses FIRE after each lost life" if cfg.episodic_life else "")
                   + "; in the protocol the agent chooses every action")
    if cfg.eval_epsilon != EPSILON:
        whose = " (DrQ(ε)'s ε_eval, set against the protocol's)" if cfg.eval_epsilon == DRQ_EPS_EVAL_EPSILON else ""
        out.append(f"evaluation epsilon {cfg.eval_epsilon:g}, not {EPSILON:g}{whose}")
    if cfg.total_steps != TRAIN_STEPS:
        out.append(f"trained for {cfg.total_steps:,} agent steps; the anchors are at {TRAIN_STEPS:,}")
    if eval_games != GAMES:
        out.append(f"{eval_games} evaluation games per seed, not {GAMES}")
    if cfg.noop_max != NOOP_MAX:
        out.append(f"training used up to {cfg.noop_max} no-op starts (evaluation uses {NOOP_MAX})")
    if repeat_action_probability is not None and repeat_action_probability != 0:
        out.append(f"sticky actions in evaluation (repeat_action_probability {repeat_action_probability:g})")
    if cfg.frame_size != AGENT_FRAME_SIZE or cfg.crop is not None or cfg.interp != AGENT_INTERP:
        crop = "" if cfg.crop is None else f", crop {','.join(map(str, cfg.crop))}"
        out.append(f"the agent sees {cfg.frame_size}x{cfg.frame_size} frames ({cfg.interp} resize{crop}); "
                   f"the published agents 84x84 full screens, area resize in Dopamine's DER, DrQ and DrQ(ε) "
                   f"(bilinear in SPR's code): an agent design choice, not the protocol")
    return out
