"""Checks of sampled replay batches shared by the replay tests: a row is a real transition of the
self-identifying stream (tests/support/streams.py), and two batches are equal field by field."""
from __future__ import annotations

import numpy as np

from dqnfast import Batch
from support.frames import check_stack
from support.streams import encode_action, reward_of


def check_transition(b: Batch, i: int) -> None:
    """Row i of a batch is a real transition: obs and next_obs are consecutive states of one episode."""
    (env, ep, step), pad = check_stack(b.obs[i])
    (env2, ep2, step2), _ = check_stack(b.next_obs[i])
    assert (env2, ep2, step2) == (env, ep, step + 1)
    np.testing.assert_array_equal(b.next_obs[i][:-1], b.obs[i][1:])
    assert b.action[i] == encode_action(env, ep, step + 1)
    assert b.reward[i] == np.float32(reward_of(step + 1))


def assert_batches_equal(a: Batch, b: Batch) -> None:
    for name in Batch._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
