"""dqnfast: exact, fast frame-store experience replay and Atari preprocessing for Deep Q-Learning."""
from __future__ import annotations

from . import _core
from .batch import Batch, empty_batch
from .preprocess import preprocess
from .replay import ReplayBuffer

__version__ = "0.1.0"

__all__ = ["Batch", "ReplayBuffer", "empty_batch", "preprocess", "__version__"]
