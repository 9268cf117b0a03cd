"""The Q-network of Dopamine's JAX agents, as DrQ(ε) and DER ran on Atari 100k.

Dopamine's ``FullRainbowNetwork`` (``dopamine/jax/networks.py``) is the Nature CNN's three convs
and one 512-unit layer, but written in Flax, whose ``nn.Conv`` pads ``'SAME'`` unless told
otherwise. So the published Atari 100k agents built on it (DrQ(ε), Dopamine's DER and DrQ) see
11x11x64 conv features from an 84x84 frame, 7,744 inputs to the fully connected layer, where the
Nature CNN (:class:`dqnfast.learner.QNetwork`, padding ``'VALID'``) has 7x7x64 = 3,136. Three
differences from :class:`~dqnfast.learner.QNetwork`, all Dopamine's:

- **padding**: TensorFlow's ``'SAME'`` rule per conv and axis: ``ceil(n / stride)`` outputs, and
  the ``max((out - 1) * stride + kernel - n, 0)`` padding pixels split with the odd one after
  (bottom, right), zeros. For 84x84: 21x21, 11x11 (padding 1 before, 2 after), 11x11;
- **dueling**: one shared 512-unit layer, then a linear value head and a linear advantage head,
  ``Q = V + A - mean_a A`` (Wang et al. 2016 give each stream its own 512 units);
- **initialisation**: Glorot/Xavier-uniform weights and zero biases in every layer (Flax's zero
  biases, ``kernel_init=xavier_uniform()``), instead of torch's defaults.

It costs more than the Nature CNN: about 16M multiply-adds a state at 84x84 against 11M for the
dueling Nature CNN (``dqnfast bench update --network`` times a step).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from ._validate import network_input

# (out channels, kernel, stride) of the three convs: the Nature CNN's
CONVS: Tuple[Tuple[int, int, int], ...] = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
HIDDEN = 512


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) zero pixels TensorFlow's ``'SAME'`` adds on one axis of ``size`` pixels, so
    that the conv gives ``ceil(size / stride)`` outputs; the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class DopamineQNetwork(nn.Module):
    """Dopamine's ``FullRainbowNetwork`` without noise or distributions (DrQ(ε)'s): one Q-value per
    action. Input: uint8 (B, stack, H, W), scaled by 1/255 in ``forward``; any frame size works.

    ``network`` is the conv stack, flattened, and the 512-unit layer with its ReLU; without
    ``dueling`` it ends in the linear layer to the Q-values, with ``dueling`` the linear heads
    ``value`` (one output) and ``advantage`` (one per action) follow it.
    """

    def __init__(self, num_actions: int, stack: int = 4, frame_shape: Sequence[int] = (84, 84),
                 dueling: bool = False) -> None:
        super().__init__()
        num_actions, stack, (h, w) = network_input(num_actions, stack, frame_shape)
        self.num_actions, self.stack, self.frame_shape = num_actions, stack, (h, w)
        self.dueling = bool(dueling)
        layers: List[nn.Module] = []
        channels = stack
        for out, kernel, stride in CONVS:
            top, bottom = same_padding(h, kernel, stride)
            left, right = same_padding(w, kernel, stride)
            layers += [nn.ZeroPad2d((left, right, top, bottom)), nn.Conv2d(channels, out, kernel, stride=stride),
                       nn.ReLU()]
            h, w, channels = -(-h // stride), -(-w // stride), out
        layers += [nn.Flatten(), nn.Linear(channels * h * w, HIDDEN), nn.ReLU()]  # 7,744 inputs at 84x84
        if self.dueling:
            self.network = nn.Sequential(*layers)
            self.value = nn.Linear(HIDDEN, 1)
            self.advantage = nn.Linear(HIDDEN, num_actions)
        else:
            self.network = nn.Sequential(*layers, nn.Linear(HIDDEN, num_actions))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                init_like_dopamine(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dueling:
            return self.network(x / 255.0)
        hidden = self.network(x / 255.0)
        advantage = self.advantage(hidden)
        return self.value(hidden) + advantage - advantage.mean(dim=1, keepdim=True)


@torch.no_grad()
def init_like_dopamine(layer: nn.Module) -> None:
    """Glorot-uniform weights (fan in and out counting the kernel's receptive field, as Flax's
    ``xavier_uniform``) and zero biases."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        layer.bias.zero_()


__all__ = ["DopamineQNetwork", "same_padding", "init_like_dopamine", "CONVS", "HIDDEN"]
