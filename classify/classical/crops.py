"""Random crops and the horizontal flip of uint8 batches: classical augmentation's geometry.

The crops and the flip work on whole batches, vectorised and device-agnostic.

Each crop is a pure function ``(images uint8 B x 3 x S x S, generator) -> images`` of the same
shape, dtype and device, selected by name (as DiffAugment selects its policies). Every random
parameter is drawn from the given CPU ``torch.Generator`` (on the CPU, whatever the images' device)
and in a fixed order, so a batch's augmentation depends only on the generator state: training
seeds one generator per epoch and a resumed run replays the same stream.

- ``pad-crop``: zero-pad by S/8 and take a random S x S crop, i.e. an integer shift of up to S/8
  pixels with black filling in (the CIFAR ResNet recipe, He et al. 2016, sec. 4.2). Done by
  gathering pixels, so values are copied exactly.
- ``resized-crop``: a crop covering 60-100% of the area with aspect ratio in [3/4, 4/3], resized
  back to S x S bilinearly (the Inception crop, Szegedy et al. 2015, with a smaller scale range as
  small images cannot lose much). Sides longer than the image are clamped to it instead of
  re-drawing as torchvision does, which keeps the draw count fixed.
- ``none``: no geometric change.
- Horizontal flip with probability 1/2 is applied after the crop (``hflip=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Crop = Callable[[Tensor, torch.Generator], Tensor]

RESIZED_CROP_SCALE = (0.6, 1.0)
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def pad_crop(images: Tensor, generator: torch.Generator) -> Tensor:
    """Shift each image by integers (dy, dx) in [-S/8, S/8], filling with zeros (black)."""
    batch, _, height, width = images.shape
    pad = max(1, min(height, width) // 8)
    shifts = torch.randint(-pad, pad + 1, (2, batch), generator=generator).to(images.device)
    padded = F.pad(images, (pad, pad, pad, pad))  # zeros
    rows = torch.arange(height, device=images.device)[None, :] - shifts[0][:, None] + pad
    cols = torch.arange(width, device=images.device)[None, :] - shifts[1][:, None] + pad
    index = torch.arange(batch, device=images.device)[:, None, None]
    # Advanced indexing on a channels-last view picks out[b, i, j, :] = padded[b, rows, cols, :].
    shifted = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
    return shifted.permute(0, 3, 1, 2).contiguous()


def resized_crop_params(batch: int, generator: torch.Generator) -> Tensor:
    """Affine matrices (B x 2 x 3, float32, CPU) mapping output coordinates into a random crop."""
    area = _uniform(batch, *RESIZED_CROP_SCALE, generator)
    log_ratio = _uniform(
        batch, math.log(RESIZED_CROP_RATIO[0]), math.log(RESIZED_CROP_RATIO[1]), generator
    )
    ratio = torch.exp(log_ratio)
    # Crop side lengths as fractions of the image side (width / height = ratio, w * h = area).
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    # Centre in normalised coordinates [-1, 1], keeping the crop inside the image.
    cx = (torch.rand(batch, generator=generator, dtype=torch.float64) * 2 - 1) * (1 - w)
    cy = (torch.rand(batch, generator=generator, dtype=torch.float64) * 2 - 1) * (1 - h)
    theta = torch.zeros(batch, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return theta.float()


def resized_crop(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random-area, random-aspect crop resized back to the input size (bilinear)."""
    theta = resized_crop_params(images.shape[0], generator).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def no_crop(images: Tensor, generator: torch.Generator) -> Tensor:
    return images


def random_hflip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


# The crops by ``--augment`` name (keys: classify.names.CROPS; the flip is separate: ``--hflip``).
CROP_TRANSFORMS: dict[str, Crop] = {
    "pad-crop": pad_crop,
    "resized-crop": resized_crop,
    "none": no_crop,
}
