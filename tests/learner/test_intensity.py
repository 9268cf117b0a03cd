"""The intensity augmentation of DQNLearner (SPR; Dopamine's DrQ and DrQ(ε)): in each update every
sampled state, all its stacked frames, is multiplied by one factor 1 + intensity * clip(z, -2, 2).

What the networks are handed is read with forward pre-hooks and divided by the batch's own frames,
so each factor is recovered from the data, not from the learner's counters."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dqnfast import PrioritizedBatch, empty_batch  # noqa: E402
from dqnfast.learner import DQNLearner  # noqa: E402

SHAPE = (36, 36)
STACK = 4
B = 64

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def learner(**kw) -> DQNLearner:
    kw = {"frame_shape": SHAPE, "stack": STACK, "device": "cpu", "seed": 3, "target_update_interval": 100, **kw}
    return DQNLearner(4, **kw)


def batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    b = empty_batch(B, STACK, SHAPE)
    b.obs[:] = rng.integers(1, 256, b.obs.shape, dtype=np.uint8)  # no zeros: every pixel gives the factor
    b.next_obs[:] = rng.integers(1, 256, b.next_obs.shape, dtype=np.uint8)
    b.action[:] = rng.integers(0, 4, B)
    b.reward[:] = rng.normal(size=B).astype(np.float32)
    b.terminated[:] = rng.random(B) < 0.2
    b.truncated[:] = False
    b.index[:] = np.arange(B)
    b.discount[:] = 0.99
    return b


def network_inputs(lrn: DQNLearner):
    """What the online and the target network are handed, call by call."""
    seen = {"online": [], "target": []}
    lrn.q_network.register_forward_pre_hook(lambda m, args: seen["online"].append(args[0].detach().clone()))
    lrn.target_network.register_forward_pre_hook(lambda m, args: seen["target"].append(args[0].detach().clone()))
    return seen


def factors(seen: torch.Tensor, frames: np.ndarray) -> np.ndarray:
    """Each row's factor: the input over the frames, checked to be one number for the whole state."""
    ratio = seen.double().numpy() / frames.astype(np.float64)
    per_row = ratio.reshape(len(ratio), -1)
    np.testing.assert_allclose(per_row, per_row[:, :1].repeat(per_row.shape[1], axis=1), rtol=1e-6)
    return per_row[:, 0]


@pytest.mark.parametrize("prioritized", [False, True], ids=["update", "update_prioritized"])
def test_each_state_is_scaled_by_one_clipped_normal_factor(prioritized):
    intensity = 0.05
    lrn = learner(intensity=intensity)
    seen = network_inputs(lrn)
    b = batch()
    if prioritized:
        lrn.update_prioritized(PrioritizedBatch(*b, weights=np.ones(B, np.float32)))
    else:
        lrn.update(b)
    (obs_in,), (next_in,) = seen["online"], seen["target"]  # plain DQN: online on obs, target on next_obs
    assert obs_in.dtype == next_in.dtype == torch.float32
    f_obs, f_next = factors(obs_in, b.obs), factors(next_in, b.next_obs)
    # the draws: standard normals from the learner's own stream (seed, 1), clipped to +-2; obs first
    z = np.clip(np.random.default_rng([3, 1]).standard_normal((2, B)), -2.0, 2.0)
    assert (np.abs(z) == 2.0).any(), "no draw reached the clip: pick another seed for this test"
    np.testing.assert_allclose(f_obs, 1 + intensity * z[0], rtol=1e-6)
    np.testing.assert_allclose(f_next, 1 + intensity * z[1], rtol=1e-6)
    assert f_obs.min() >= 1 - 2 * intensity - 1e-6 and f_obs.max() <= 1 + 2 * intensity + 1e-6
    assert not np.allclose(f_obs, f_next)  # obs and next_obs drawn independently


def test_each_update_draws_new_factors():
    lrn = learner(intensity=0.1)
    seen = network_inputs(lrn)
    b = batch()
    lrn.update(b)
    lrn.update(b)
    first, second = (factors(x, b.obs) for x in seen["online"])
    assert not np.allclose(first, second)


def test_with_intensity_off_the_networks_get_the_frames_and_acting_draws_alike():
    off, on = learner(), learner(intensity=0.05)
    seen = network_inputs(off)
    b = batch()
    off.update(b)
    assert seen["online"][0].dtype == torch.uint8  # nothing multiplied: the frames themselves
    assert torch.equal(seen["online"][0], torch.from_numpy(b.obs))
    on.update(b)
    # the augmentation has a stream of its own: epsilon-greedy draws the same with it on or off
    assert off.rng.bit_generator.state == on.rng.bit_generator.state
    states = batch(1).obs[:8]
    assert np.array_equal(learner().act(states, 0.5), learner(intensity=0.05).act(states, 0.5))


def test_the_augmentation_stream_survives_a_checkpoint():
    a = learner(intensity=0.05)
    a.update(batch())
    state = a.state_dict()
    b = learner(intensity=0.05, seed=99)
    b.load_state_dict(state)
    torch.testing.assert_close(a.intensity_scales(B), b.intensity_scales(B), rtol=0, atol=0)
    old = dict(state)
    del old["augment_rng"]  # a checkpoint from before the augmentation still loads
    learner(intensity=0.05).load_state_dict(old)


@pytest.mark.parametrize("bad", [-0.01, 0.5, float("nan")])
def test_bad_intensities_are_refused(bad):
    with pytest.raises(ValueError, match="intensity must be in"):
        learner(intensity=bad)
