"""A tiny deterministic feature extractor standing in for InceptionV3 in tests and smoke runs.

A fixed, seeded random 3x3 convolution with ReLU, summarised by the mean and standard deviation of
each channel over the image: random conv features are a known cheap proxy that still moves when
colours, brightness or textures move. It has the extractor interface (uint8 B x 3 x H x W -> float
B x D, with ``name`` and ``dim``) and needs no weights file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WORKING_SIZE = 32  # every image is resized to this first, so mixed sizes give comparable features


class RandomConvExtractor:
    def __init__(
        self, channels: int = 16, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.device = torch.device(device)
        self.weight = (torch.randn(channels, 3, 3, 3, generator=generator) / 3.0).to(self.device)
        self.bias = (torch.randn(channels, generator=generator) * 0.1).to(self.device)
        self.name = f"random-conv-{channels}-seed{seed}"
        self.dim = 2 * channels

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = images.to(self.device).float().div(127.5).sub(1.0)
            x = F.interpolate(
                x, size=(WORKING_SIZE, WORKING_SIZE), mode="bilinear", align_corners=False
            )
            h = F.relu(F.conv2d(x, self.weight, self.bias, stride=2))
            flat = h.flatten(2)
            return torch.cat([flat.mean(-1), flat.std(-1)], dim=1).cpu()
