"""Self-identifying frames: every pixel of a frame encodes (env, episode, step), so a stack can be
decoded and checked, and a frame torn by a concurrent overwrite shows up as a mix of two ids."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

FrameId = Tuple[int, int, int]  # (env, episode, step)


def make_frame(env: int, episode: int, step: int, shape=(6, 5)) -> np.ndarray:
    """Pixel k holds byte k % 4 of the id word [env+1, episode, step, step >> 8] (so zeros = padding)."""
    word = np.array([env + 1, episode % 256, step % 256, (step >> 8) % 256], np.uint8)
    n = int(np.prod(shape))
    return np.resize(word, n).reshape(shape)


def decode(frame: np.ndarray) -> Optional[FrameId]:
    """The id a frame encodes, None for an all-zero padding frame; raises if the frame is torn."""
    flat = frame.reshape(-1)
    if not flat.any():
        return None
    word = flat[:4]
    if not np.array_equal(np.resize(word, flat.size), flat):
        raise AssertionError(f"torn frame: starts {flat[:8]}")
    return int(word[0]) - 1, int(word[1]), int(word[2]) + 256 * int(word[3])


def check_stack(stack: np.ndarray) -> Tuple[FrameId, int]:
    """Decode a (stack, ...) state: padding only at the front, then consecutive steps of one episode
    of one env. Returns the newest frame's id and the number of padding frames."""
    ids = [decode(f) for f in stack]
    pad = 0
    while pad < len(ids) and ids[pad] is None:
        pad += 1
    real = ids[pad:]
    assert real, "a state has at least one real frame"
    assert None not in real, f"padding inside a state: {ids}"
    env, ep, step = real[-1]
    for k, fid in enumerate(reversed(real)):
        assert fid == (env, ep, step - k), f"state mixes frames: {ids}"
    if pad:
        assert real[0][2] == 0, f"padding before a non-first frame: {ids}"
    return (env, ep, step), pad
