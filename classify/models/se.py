"""Squeeze-and-Excitation: Hu et al. 2018, "Squeeze-and-Excitation Networks" (CVPR 2018, TPAMI
2019; arXiv:1709.01507), built as timm's ``layers/squeeze_excite.py`` builds it.

Squeeze (eq. 2): the global average of each channel, ``z_c``. Excitation (eq. 3): ``s =
sigmoid(W2 relu(W1 z))``, a bottleneck MLP with reduction ratio ``r`` (16 in the paper). Scale
(eq. 4): each channel of the input multiplied by its ``s_c``.

The two FC layers are ``nn.Linear`` (timm uses 1x1 convolutions: the same maths, other weight
shapes), so the parameter names and shapes of earlier runs' checkpoints are kept. Hidden width:
``max(channels // reduction, MIN_HIDDEN)``. At width 1 every ResNet-50 stage has >= 256 channels,
so the floor never applies and the parameter counts are the paper's; it only keeps tiny-width models
(e.g. 32 channels -> 2 hidden units) from a degenerate 1-2 unit MLP. CBAM's channel MLP
(:mod:`classify.models.cbam`) is sized by the same rule.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_HIDDEN = 4


def hidden_channels(channels: int, reduction: int) -> int:
    """Units of a squeeze MLP: the paper's ``channels // reduction``, floored at MIN_HIDDEN."""
    return max(channels // reduction, MIN_HIDDEN)


class SqueezeExcite(nn.Module):
    """SE block: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``, reduction 16 (the paper's)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = hidden_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean((2, 3))
        excitation = torch.sigmoid(self.fc2(self.act(self.fc1(squeezed))))
        return x * excitation[:, :, None, None]
