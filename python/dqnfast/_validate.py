"""The Python layer's argument checks, one copy of each: counts, numbers and Atari env ids.

Constructor arguments are checked here once per object rather than natively; per-call arrays and
the scalars of native calls such as ``add`` are checked natively (``cpp/bindings/args.hpp``), with
the same wording. Light on purpose: importing this module imports neither torch nor gymnasium.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Optional

import numpy as np


def integer(value: Any, name: str) -> int:
    """An int or a numpy integer, as an int; not a bool (those are flags) nor a float."""
    if type(value) is int:  # the usual case, first: sample() checks its batch size on every call
        return value
    if isinstance(value, (bool, np.bool_)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return operator.index(value)


def positive_int(value: Any, name: str, minimum: int = 1, at_most: Optional[int] = None) -> int:
    """``value`` as an int when it is an integer (not a bool or a float) in [minimum, at_most];
    TypeError / ValueError naming ``name`` otherwise."""
    v = integer(value, name)
    if v < minimum:
        if minimum in (0, 1):
            raise ValueError(f"{name} must be {'positive' if minimum else 'non-negative'}, got {v}")
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    if at_most is not None and v > at_most:
        raise ValueError(f"{name} must be at most {at_most}, got {v}")
    return v


def network_input(num_actions: Any, stack: Any, frame_shape: Any) -> "tuple[int, int, tuple[int, int]]":
    """A Q-network's ``(num_actions, stack, (height, width))``, checked: positive ints, two sides."""
    num_actions = positive_int(num_actions, "num_actions")
    stack = positive_int(stack, "stack")
    if len(frame_shape) != 2:
        raise ValueError(f"frame_shape must be (height, width), got {tuple(frame_shape)}")
    h, w = (positive_int(d, "frame_shape entries") for d in frame_shape)
    return num_actions, stack, (h, w)


def number(value: Any, name: str) -> float:
    """An int, float or numpy number, as a float; not a bool."""
    if type(value) is float or type(value) is int:  # the usual cases, first (beta, on every prioritized sample)
        return float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def finite_non_negative(value: Any, name: str) -> float:
    x = number(value, name)
    if not (x >= 0.0 and math.isfinite(x)):
        raise ValueError(f"{name} must be finite and >= 0, got {x}")
    return x


def atari_env_id(env_id: Any) -> str:
    """``env_id`` when gymnasium knows it as an Atari (ale-py) game; TypeError / ValueError otherwise,
    with the nearest known ids as a hint."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str such as 'ALE/Breakout-v5', got {type(env_id).__name__}")
    import gymnasium as gym
    try:
        import ale_py
    except ModuleNotFoundError as e:  # named, so `dqnfast train` can say what to install
        raise ModuleNotFoundError('Atari games need ale-py: pip install "dqnfast[atari]"', name="ale_py") from e
    gym.register_envs(ale_py)
    if env_id not in gym.registry:
        near = [k for k in gym.registry if k.lower().startswith(env_id.split("-")[0].lower())][:3]
        raise ValueError(f"unknown env id {env_id!r}" + (f"; did you mean one of {near}?" if near else
                                                        "; Atari ids look like 'ALE/Breakout-v5'"))
    entry = gym.spec(env_id).entry_point
    if not (isinstance(entry, str) and entry.startswith("ale_py")):
        raise ValueError(f"{env_id!r} is not an Atari (ALE) environment")
    return env_id
