"""dqnfast: exact, fast frame-store experience replay and Atari preprocessing for Deep Q-Learning."""
from __future__ import annotations

from . import _core
from .batch import Batch, PrioritizedBatch, SequenceBatch, empty_batch, empty_sequence_batch
from .prioritized import PrioritizedReplayBuffer
from .preprocessing import preprocess
from .replay import ReplayBuffer

from ._version import __version__

__all__ = [
    "Batch",
    "PrioritizedBatch",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "SequenceBatch",
    "empty_batch",
    "empty_sequence_batch",
    "preprocess",
    "__version__",
]
