"""Per-actor exploration rates of Ape-X (Horgan et al. 2018)."""
from __future__ import annotations

from typing import List

from .._validate import number, positive_int


def apex_epsilons(num_actors: int, base: float = 0.4, alpha: float = 7.0) -> List[float]:
    """epsilon_i = base ** (1 + alpha * i / (N - 1)) for actor i of N (Ape-X: base 0.4, alpha 7).

    Actor 0 explores most (0.4), actor N-1 least (0.4 ** 8, about 0.00066). With a single actor
    the formula is undefined (N - 1 = 0); it then gets ``base``, the most exploring rate, since a
    lone actor must still find the rewards.
    """
    n = positive_int(num_actors, "num_actors")
    base, alpha = number(base, "base"), number(alpha, "alpha")
    if not 0.0 < base < 1.0:
        raise ValueError(f"base must be in (0, 1), got {base}")
    if not alpha >= 0.0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if n == 1:
        return [float(base)]
    return [float(base ** (1.0 + alpha * i / (n - 1))) for i in range(n)]
