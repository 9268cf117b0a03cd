"""The Python layer's argument checks: constructor arguments (checked once per object, here rather
than natively) and the scalars of the Python-level methods (batch sizes, lengths, beta).

Per-call arrays and the scalars of native calls such as ``add`` are checked natively
(``cpp/bindings/args.hpp``), with the same wording.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Optional

import numpy as np


def integer(name: str, value: object) -> int:
    """An int or a numpy integer, as an int; not a bool (those are flags) nor a float."""
    if type(value) is int:  # the usual case, first: sample() checks its batch size on every call
        return value
    if isinstance(value, (bool, np.bool_)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return operator.index(value)


def positive_int(name: str, value: object, at_most: Optional[int] = None) -> int:
    n = integer(name, value)
    if n <= 0:
        raise ValueError(f"{name} must be positive, got {n}")
    if at_most is not None and n > at_most:
        raise ValueError(f"{name} must be at most {at_most}, got {n}")
    return n


def number(name: str, value: object) -> float:
    """An int, float or numpy number, as a float; not a bool."""
    if type(value) is float or type(value) is int:  # the usual cases, first (beta, on every prioritized sample)
        return float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def finite_non_negative(name: str, value: object) -> float:
    x = number(name, value)
    if not (x >= 0.0 and math.isfinite(x)):
        raise ValueError(f"{name} must be finite and >= 0, got {x}")
    return x
