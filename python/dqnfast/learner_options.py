"""The learner's choices of loss, optimizer and Q-network, as types and as tuples. They live apart from
``learner.py`` so that the trainer's config can name them without importing torch, and so that the
library learner never imports the trainer's config."""
from __future__ import annotations

import typing
from typing import Literal, Tuple

Loss = Literal["huber", "mse"]
Optimizer = Literal["adam", "rmsprop"]
# nature: the Nature CNN; dopamine: the network of Dopamine's DrQ(ε) and DER (dqnfast.dopamine_network)
Network = Literal["nature", "dopamine"]

LOSSES: Tuple[str, ...] = typing.get_args(Loss)
OPTIMIZERS: Tuple[str, ...] = typing.get_args(Optimizer)
NETWORKS: Tuple[str, ...] = typing.get_args(Network)
