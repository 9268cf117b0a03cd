"""The one reader of episode statistics: the (return, length) of each real game that ended at a step,
as gymnasium's RecordEpisodeStatistics reports them in ``info["episode"]`` (with the ``_episode``
mask of a vector env). Numpy only, so the trainer's actor and the Ray actors share it."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

Finished = List[Tuple[float, int]]  # (return, length) of each real game that ended at a step


def finished_games(info: Dict[str, Any], num_envs: int, vector: bool) -> Finished:
    """(return, length) of each real game that ended at this step; none without statistics. For a
    vector env only the envs its ``_episode`` mask names (all of them when the mask is absent)."""
    ep = info.get("episode") if isinstance(info, dict) else None
    if not isinstance(ep, dict) or "r" not in ep:
        return []
    returns, lengths = np.atleast_1d(ep["r"]), np.atleast_1d(ep.get("l", np.zeros(len(np.atleast_1d(ep["r"])))))
    if not vector:
        return [(float(returns.reshape(-1)[0]), int(lengths.reshape(-1)[0]))]
    mask = np.asarray(info.get("_episode", np.ones(num_envs, bool)), bool)
    return [(float(returns[i]), int(lengths[i])) for i in range(num_envs) if mask[i]]
