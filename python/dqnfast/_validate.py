"""Argument checks shared by the modules that take counts and Atari env ids (one copy of each).

Light on purpose: importing this module imports neither torch nor gymnasium.
"""
from __future__ import annotations

import operator
from typing import Any


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool or a float) of at least ``minimum``;
    TypeError / ValueError naming ``name`` otherwise."""
    if isinstance(value, (bool, float)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = operator.index(value)
    if v < minimum:
        if minimum in (0, 1):
            raise ValueError(f"{name} must be {'positive' if minimum else 'non-negative'}, got {v}")
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    return v


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
