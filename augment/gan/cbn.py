"""Conditional BatchNorm and the DCGAN generator conditioned through it.

Conditional batch normalisation (de Vries et al. 2017; used for class conditioning by Miyato &
Koyama 2018, "cGANs with Projection Discriminator", https://arxiv.org/abs/1802.05637, and by
BigGAN, Brock et al. 2019, https://arxiv.org/abs/1809.11096) normalises like BatchNorm without
its own affine parameters, then scales and shifts every channel by a gain and a bias looked up
per class: ``out = gain[y] * BN(x) + bias[y]``. As in the projection-discriminator code
(``CategoricalConditionalBatchNormalization``), gains start at 1 and biases at 0, so at
initialisation the generator is an unconditional DCGAN and the class enters only as training
moves each class's gains and biases apart.

:class:`CbnGenerator` is :class:`augment.gan.models.Generator` (Radford et al. 2016) with every
BatchNorm made class-conditional and no embedding concatenated to the noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose per-channel gain and bias are embeddings of the class label."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gains 1 and biases 0 for every class (Miyato & Koyama 2018; BigGAN's ``1 + gain``)."""
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.long()
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class CbnGenerator(nn.Module):
    """z (N x z_size) and labels y (N,) -> images N x 3 x S x S in [-1, 1], the class entering
    through every BatchNorm's gain and bias."""

    def __init__(self, num_classes: int, widths: list[int], z_size: int = 128) -> None:
        super().__init__()
        self.z_size = z_size
        self.num_classes = num_classes
        self.image_size = 2 ** (len(widths) + 2)
        ins, outs = [z_size, *widths[:-1]], widths
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False)
            for i, (c_in, c_out) in enumerate(zip(ins, outs, strict=True))
        )  # 1x1 -> 4x4, then doubling
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, num_classes) for c in widths)
        self.to_rgb = nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1, bias=False)

    def reset_norms(self) -> None:
        """Gains 1, biases 0 (call after a weight initialisation that touched the embeddings)."""
        for norm in self.norms:
            norm.reset_parameters()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("a conditional generator needs class labels y")
        h = z[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = F.relu(norm(conv(h), y))
        return torch.tanh(self.to_rgb(h))
