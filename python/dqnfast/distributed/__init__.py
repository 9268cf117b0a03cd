"""Ape-X-style actors on Ray core feeding the learner's replay (``pip install "dqnfast[ray]"``).

- :class:`ActorPool` runs N actors anywhere in a Ray cluster, each stepping K envs with its own
  epsilon (:func:`apex_epsilons`); weights reach them through the object store.
- :class:`Ingestor` is the learner-side thread that writes their chunks into one
  ``ReplayBuffer``/``PrioritizedReplayBuffer`` of ``num_envs = N * K`` streams, whole chunk or nothing.

Importing this package does not import Ray; starting a pool does (ImportError with the install
command when it is missing).
"""
from .actor import EnvActor
from .atari import AtariEnvFn
from .chunk import ChunkBuilder, ChunkWriter
from .connect import INSTALL_HINT, connect, ensure_token_auth, require_ray
from .epsilon import apex_epsilons
from .ingest import IngestStats, Ingestor
from .pool import ActorPool
from ..signals import StopOnSignals

__all__ = ["ActorPool", "AtariEnvFn", "ChunkBuilder", "ChunkWriter", "EnvActor", "INSTALL_HINT", "IngestStats", "Ingestor", "StopOnSignals",
           "apex_epsilons", "connect", "ensure_token_auth", "require_ray"]
