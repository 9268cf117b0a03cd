"""`dqnfast bench update`: every mode steps to eager's weights, the two-pass reference bit for bit."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from dqnfast.benchmarks.update import bench_size  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_one_pass_target_steps_to_the_two_pass_weights_bit_for_bit():
    res = bench_size(36, ["eager", "channels_last", "two_pass"], calls=1, rounds=1, warmup=3, shift=2)
    # the skipped target pass computed exactly the online one: the same losses, then the same weights
    assert res["two_pass"]["loss_diff"] == 0.0 and res["two_pass"]["diff"] == 0.0
    # another layout: the same maths, rounded differently
    assert res["channels_last"]["loss_diff"] < 1e-4 and res["channels_last"]["diff"] < 1e-5
    assert all(r["ms"] > 0 and r["per_hour"] > 0 for r in res.values())
