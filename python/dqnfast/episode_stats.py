"""The one reader of episode statistics: the games one env or vector-env step reports as ended, as
gymnasium's ``RecordEpisodeStatistics`` puts them in ``info``. Needs no gymnasium, so that the
trainer's actor and the Ray actors (which may run any vector env) share it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, List, Tuple

import numpy as np

Finished = List[Tuple[float, int]]  # (return, length) of each real game that ended at a step


def finished_episodes(info: Any) -> List[Tuple[int, float, int]]:
    """(env, return, length) of each episode that one vector step's ``info`` reports
    (``RecordEpisodeStatistics``' ``r`` and ``l``, length 0 where ``l`` is missing), in env order.

    gymnasium puts them in two places, each with its ``_episode`` mask: ``info["episode"]`` (an
    episode that ended on this step under NEXT_STEP autoreset, or one that a reset made inside the
    step reported) and ``info["final_info"]["episode"]`` (the step that ended an episode under
    SAME_STEP autoreset: its info is ``final_info``). For one env, the latter comes first: the
    reset follows the step."""
    found: List[Tuple[int, float, int]] = []
    if not isinstance(info, Mapping):
        return found
    for source in (info.get("final_info"), info):
        episode = source.get("episode") if isinstance(source, Mapping) else None
        if not isinstance(episode, Mapping) or "r" not in episode:
            continue
        returns = np.atleast_1d(episode["r"])
        lengths = np.atleast_1d(episode["l"]) if "l" in episode else np.zeros(len(returns), np.int64)
        mask = np.asarray(source.get("_episode", np.ones(len(returns), bool)), bool).reshape(-1)
        found.extend((int(i), float(returns[i]), int(lengths[i])) for i in np.flatnonzero(mask))
    found.sort(key=lambda e: e[0])  # (stable: final_info's episode before the reset's, for one env)
    return found


def finished_games(info: Any) -> Finished:
    """(return, length) of each real game that ended at this step, in env order: a single env's
    ``info["episode"]`` (scalars: one game, no mask) or a vector env's, wherever gymnasium's layout
    puts them."""
    return [(r, length) for _, r, length in finished_episodes(info)]
