"""DopamineQNetwork: the Q-network of Dopamine's DrQ(ε) and DER, checked against a numpy reference.

The reference below is written from Dopamine's ``FullRainbowNetwork`` (Flax ``nn.Conv``, whose
padding is ``'SAME'`` by default) and TensorFlow's documented ``'SAME'`` rule: ``ceil(n / stride)``
outputs per axis, the padding ``max((out - 1) * stride + kernel - n, 0)`` split with the odd pixel
after. It convolves with explicit loops over output positions, in float64, so it shares nothing
with the module but the weights.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dqnfast import empty_batch  # noqa: E402
from dqnfast.dopamine_network import DopamineQNetwork, same_padding  # noqa: E402
from dqnfast.learner import DQNLearner, QNetwork, make_q_network  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """(C, H, W) -> (O, ceil(H / s), ceil(W / s)): TensorFlow's 'SAME' conv, one output pixel at a time."""
    _, h, wd = x.shape
    k = w.shape[-1]
    oh, ow = math.ceil(h / stride), math.ceil(wd / stride)
    top = max((oh - 1) * stride + k - h, 0) // 2
    left = max((ow - 1) * stride + k - wd, 0) // 2
    out = np.empty((w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = np.zeros((x.shape[0], k, k))
            for di in range(k):
                for dj in range(k):
                    r, c = i * stride - top + di, j * stride - left + dj
                    if 0 <= r < h and 0 <= c < wd:
                        window[:, di, dj] = x[:, r, c]
            out[:, i, j] = np.tensordot(w, window, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


def reference_q(net: DopamineQNetwork, state: np.ndarray) -> np.ndarray:
    """Q-values of one uint8 state (stack, H, W), from ``net``'s weights, in numpy."""
    p = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    x = state.astype(np.float64) / 255.0
    for i, stride in ((1, 4), (4, 2), (7, 1)):  # the convs' indices in net.network
        x = np.maximum(reference_conv_same(x, p[f"network.{i}.weight"], p[f"network.{i}.bias"], stride), 0)
    hidden = np.maximum(p["network.10.weight"] @ x.reshape(-1) + p["network.10.bias"], 0)  # one shared layer
    if not net.dueling:
        return p["network.12.weight"] @ hidden + p["network.12.bias"]
    value = p["value.weight"] @ hidden + p["value.bias"]
    advantage = p["advantage.weight"] @ hidden + p["advantage.bias"]
    return value + advantage - advantage.mean()


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
def test_q_values_equal_the_reference_on_a_frame_that_is_not_square(dueling):
    torch.manual_seed(0)
    net = DopamineQNetwork(5, stack=3, frame_shape=(41, 46), dueling=dueling)
    with torch.no_grad():  # non-zero biases, so a bias dropped or misplaced shows
        for p in net.parameters():
            if p.dim() == 1:
                p.uniform_(-0.1, 0.1)
    states = np.random.default_rng(1).integers(0, 256, (2, 3, 41, 46), dtype=np.uint8)
    with torch.no_grad():
        q = net(torch.from_numpy(states)).double().numpy()
    assert q.shape == (2, 5)
    for s, row in zip(states, q):
        np.testing.assert_allclose(row, reference_q(net, s), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, kernel, stride, pads", [
    (84, 8, 4, (2, 2)),   # 84 -> 21
    (21, 4, 2, (1, 2)),   # 21 -> 11: the odd pixel after
    (11, 3, 1, (1, 1)),   # 11 -> 11
    (64, 8, 4, (2, 2)),   # 64 -> 16
    (16, 4, 2, (1, 1)),   # 16 -> 8
    (3, 8, 4, (2, 3)),    # 3 -> 1: padding wider than the input
    (8, 4, 4, (0, 0)),    # 8 -> 2: the windows tile it
    (10, 3, 4, (0, 1)),   # 10 -> 3: one pixel, after
])
def test_same_padding_follows_tensorflows_rule(size, kernel, stride, pads):
    assert same_padding(size, kernel, stride) == pads


def test_at_84x84_the_layer_after_the_convs_takes_11x11x64_features():
    net = make_q_network("dopamine", 6, 4, (84, 84), dueling=True)
    assert isinstance(net, DopamineQNetwork)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 11 * 11, 512), (512, 1), (512, 6)]
    assert net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    # the Nature CNN, for contrast: 7x7x64, and a 512-unit layer per dueling stream
    nature = make_q_network("nature", 6, 4, (84, 84), dueling=True)
    assert isinstance(nature, QNetwork)
    assert [m.in_features for m in nature.modules() if isinstance(m, torch.nn.Linear)] == [3136, 512, 3136, 512]


def test_weights_are_glorot_uniform_and_biases_zero():
    """Flax's ``xavier_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), the fans counting the
    kernel's receptive field; Flax's biases start at zero (torch's defaults give neither)."""
    torch.manual_seed(0)
    net = DopamineQNetwork(18, stack=4, frame_shape=(84, 84), dueling=True)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 6
    for layer in layers:
        w = layer.weight.detach().double()
        receptive = w[0, 0].numel() if w.dim() == 4 else 1
        bound = math.sqrt(6.0 / ((w.shape[0] + w.shape[1]) * receptive))
        assert torch.count_nonzero(layer.bias) == 0
        assert float(w.abs().max()) <= bound
        if w.numel() >= 2000:  # enough draws to tell the spread: a uniform's std is a / sqrt(3)
            assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.06)
            assert float(w.abs().max()) > 0.95 * bound


def test_the_learner_builds_and_resets_the_named_network():
    lrn = DQNLearner(4, frame_shape=(44, 44), stack=2, dueling=True, network="dopamine", device="cpu", seed=0,
                     optimizer="adam", learning_rate=1e-3)
    assert isinstance(lrn.q_network, DopamineQNetwork) and isinstance(lrn.target_network, DopamineQNetwork)
    rng = np.random.default_rng(0)
    b = empty_batch(8, 2, (44, 44))
    b.obs[:], b.next_obs[:] = (rng.integers(0, 256, b.obs.shape, dtype=np.uint8) for _ in range(2))
    b.action[:], b.reward[:], b.discount[:] = rng.integers(0, 4, 8), rng.normal(size=8), 0.99
    lrn.update(b)  # every bias moves off zero
    before = {k: v.clone() for k, v in lrn.q_network.state_dict().items()}
    assert lrn.reset_layers("head") == ["network.10", "value", "advantage"]  # the shared layer and both heads
    after = lrn.q_network.state_dict()
    changed = {k for k in before if not torch.equal(after[k], before[k])}
    assert changed == {f"{name}.{p}" for name in ("network.10", "value", "advantage") for p in ("weight", "bias")}
    assert all(torch.count_nonzero(after[f"{name}.bias"]) == 0 for name in ("network.10", "value", "advantage"))
    assert isinstance(DQNLearner(4, frame_shape=(44, 44), device="cpu").q_network, QNetwork)  # the default


def test_an_unknown_network_is_refused():
    with pytest.raises(ValueError, match="network must be one of"):
        DQNLearner(4, frame_shape=(44, 44), network="impala", device="cpu")
    with pytest.raises(ValueError, match="network must be one of"):
        make_q_network("impala", 4)
