"""Pure-numpy statement of `dqnfast.preprocess`: the specification the native kernel is tested
against, bit for bit. Written for clarity, not speed: whole-array integer maths in int64.

The steps, in order (docs/preprocessing.md says why each is defined this way):

1. ``prev`` given: elementwise maximum with ``frame`` (per colour channel for RGB).
2. RGB to gray: ``luma`` Y = (9798 R + 19235 G + 3735 B + 16384) >> 15 (OpenCV's RGB2GRAY),
   ``mean`` Y = (R + G + B) // 3.
3. Crop ``(top, bottom, left, right)``, half-open.
4. Resize to ``size = (height, width)``: ``nearest`` samples crop row ((2i+1) ch) // (2 oh) and
   column ((2j+1) cw) // (2 ow); ``area`` takes box averages with integer weights (below):
   v = (Wy @ crop + 8) >> 4, then Y = (v @ Wx.T + 2**18) >> 19.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

AREA_QY = 11  # fixed-point bits of the row weights
AREA_QX = 12  # ... and of the column weights
AREA_VSHIFT = 4  # row sums are rounded by this many bits to fit int16 before the column pass


def gray_ref(rgb: np.ndarray, gray: str = "luma") -> np.ndarray:
    """(..., 3) uint8 RGB to (...) uint8 gray."""
    x = rgb.astype(np.int64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    if gray == "luma":
        return ((9798 * r + 19235 * g + 3735 * b + 16384) >> 15).astype(np.uint8)
    if gray == "mean":
        return ((r + g + b) // 3).astype(np.uint8)
    raise ValueError(f"gray must be 'luma' or 'mean', got {gray!r}")


def nearest_index(n: int, m: int) -> np.ndarray:
    """Centre sampling: which of n source pixels each of m outputs takes."""
    i = np.arange(m, dtype=np.int64)
    return ((2 * i + 1) * n) // (2 * m)


def area_weights(n: int, m: int, q: int) -> np.ndarray:
    """(m, n) int64 matrix: row i holds output i's weights over the n source pixels, summing to 2**q.

    Output i covers [i n/m, (i+1) n/m) of the source axis. In units of 1/m source pixel every
    overlap is an integer; weights are differences of the rounded cumulative overlap, so each is
    within one unit of exact and each row sums exactly to 2**q.
    """
    w = np.zeros((m, n), dtype=np.int64)
    for i in range(m):
        lo, hi = i * n, (i + 1) * n
        cum = prev = 0
        for k in range(lo // m, (hi - 1) // m + 1):
            cum += min(hi, (k + 1) * m) - max(lo, k * m)
            rounded = ((cum << q) + n // 2) // n
            w[i, k] = rounded - prev
            prev = rounded
    return w


def preprocess_ref(
    frame: np.ndarray,
    *,
    prev: Optional[np.ndarray] = None,
    crop: Optional[Sequence[int]] = None,
    size: Tuple[int, int] = (84, 84),
    gray: str = "luma",
    interp: str = "nearest",
) -> np.ndarray:
    """Reference for `dqnfast.preprocess` (valid arguments only; no ``out``)."""
    frame = np.asarray(frame)
    assert frame.dtype == np.uint8
    rgb = frame.ndim in (3, 4) and frame.shape[-1] == 3
    if (frame.ndim == 4) or (frame.ndim == 3 and not rgb):  # batch: one frame at a time
        prevs = [None] * len(frame) if prev is None else list(prev)
        out = [preprocess_ref(f, prev=p, crop=crop, size=size, gray=gray, interp=interp) for f, p in zip(frame, prevs)]
        oh, ow = (size, size) if isinstance(size, int) else size
        return np.stack(out) if out else np.zeros((0, oh, ow), np.uint8)
    x = frame if prev is None else np.maximum(frame, prev)
    g = gray_ref(x, gray) if rgb else x
    h, w = g.shape
    top, bottom, left, right = (0, h, 0, w) if crop is None else crop
    c = g[top:bottom, left:right].astype(np.int64)
    ch, cw = c.shape
    oh, ow = (size, size) if isinstance(size, int) else size
    if interp == "nearest":
        return c[nearest_index(ch, oh)][:, nearest_index(cw, ow)].astype(np.uint8)
    if interp == "area":
        # Rows first, each sum rounded to 16 bits (at most 255 << 7), then columns.
        rows = (area_weights(ch, oh, AREA_QY) @ c + (1 << (AREA_VSHIFT - 1))) >> AREA_VSHIFT
        total = rows @ area_weights(cw, ow, AREA_QX).T  # exact in int64, as the kernel's int32 sums
        shift = AREA_QX + AREA_QY - AREA_VSHIFT
        return ((total + (1 << (shift - 1))) >> shift).astype(np.uint8)
    raise ValueError(f"interp must be 'nearest' or 'area', got {interp!r}")
