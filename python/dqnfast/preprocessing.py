"""`dqnfast.preprocess`: Atari frame preprocessing (max-pool, grayscale, crop, resize) in one native pass.

``preprocess(frame, *, prev=None, crop=None, size=(84, 84), gray="luma", interp="nearest", out=None)``

- ``frame``: uint8 ``(H, W, 3)`` RGB or ``(H, W)`` gray, any strides; ``(N, H, W, 3)`` /
  ``(N, H, W)`` batches give ``(N, oh, ow)``. A 3-D array whose last axis is 3 is one RGB frame.
- ``prev``: same shape; the elementwise (per colour channel) maximum of ``frame`` and ``prev`` is
  taken first, the DQN paper's fix for sprites that flicker between emulator frames.
- ``crop``: ``(top, bottom, left, right)``, half-open; ``None`` is the whole frame.
- ``size``: ``(height, width)`` of the output (note: OpenCV's ``dsize`` is ``(width, height)``), or
  one int for a square.
- ``gray``: ``"luma"`` = (9798 R + 19235 G + 3735 B + 16384) >> 15, bit-exact with OpenCV's
  RGB2GRAY and with ALE's grayscale screen; ``"mean"`` = (R + G + B) // 3. Ignored for gray input.
- ``interp``: ``"nearest"`` samples the crop at pixel centres (like PIL's NEAREST);
  ``"area"`` is a box average (exact integer maths), within +-1 of OpenCV's INTER_AREA when both
  axes shrink or both grow (OpenCV filters differently when one shrinks and the other grows).
- ``out``: a C-contiguous, writeable uint8 array of the output shape to write into (no allocation).

Returns ``out`` or a new array. Bad arguments raise TypeError / ValueError naming the problem.
Every SIMD path (scalar, AVX2, AVX-512, chosen at run time; ``DQNFAST_SIMD`` caps it) gives the
same bytes as the numpy statement in :mod:`dqnfast.preprocess_reference`. The GIL is released while
the kernel runs; large batches are split over two threads.

It is a builtin taking its options by keyword only: at about a microsecond per frame the call
itself is a good part of the cost, so there is deliberately no Python layer in between.
"""
from __future__ import annotations

from ._core import preprocess

__all__ = ["preprocess", "simd_level"]


def simd_level() -> str:
    """The SIMD path in use: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    from ._core import simd_level as native_simd_level

    return native_simd_level()
