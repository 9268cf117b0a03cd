"""Statistical checks for sampling distributions."""
import numpy as np


def sample_counts(draw, indices: np.ndarray, calls: int) -> np.ndarray:
    """How often each of `indices` comes back over `calls` calls of `draw()` (which returns indices);
    any index outside the list fails."""
    pos = {int(t): i for i, t in enumerate(indices)}
    counts = np.zeros(len(indices), np.int64)
    for _ in range(calls):
        for t in draw():
            counts[pos[int(t)]] += 1
    return counts


def assert_matches(observed: np.ndarray, probabilities: np.ndarray, sigmas: float = 5.0) -> None:
    """Pearson's chi-square of observed counts against expected probabilities, within `sigmas`
    standard deviations of its mean (dof; variance 2 dof)."""
    expected = probabilities / probabilities.sum() * observed.sum()
    chi2 = ((observed - expected) ** 2 / expected).sum()
    dof = len(observed) - 1
    assert chi2 < dof + sigmas * np.sqrt(2 * dof), (chi2, dof)
