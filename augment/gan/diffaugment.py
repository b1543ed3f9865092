"""Differentiable Augmentation (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training", https://arxiv.org/abs/2006.10738).

The same random, differentiable transforms are applied to real and generated images in both the D and
the G step, so D cannot tell them apart by augmentation artefacts while G still receives gradients
through them. The policy string and the transforms follow the authors' ``DiffAugment_pytorch.py``
(color = brightness + saturation + contrast; translation by up to 1/8 of the side with zero padding;
cutout of a square half the side), reimplemented with one change: every random draw comes from a
``torch.Generator`` passed in, so a checkpoint can hold that generator's state and a resumed run sees
the same augmentations as an uninterrupted one. Draws are made on the generator's device (CPU by
default) and moved to the images' device, which keeps them identical across devices.

With a ``probability`` p (driven by :mod:`augment.gan.ada`), each transform is applied to each image
with probability p, as ADA (Karras et al. 2020) applies its augmentations; without one, every
transform is applied to every image, exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from augment.gan.config import parse_policy

AugmentFn = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]

DEFAULT_POLICY = "color,translation,cutout"  # the paper's policy for small data


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U[0, 1) draw per image, shaped N x 1 x 1 x 1, on ``x``'s device and dtype."""
    device = generator.device if generator is not None else torch.device("cpu")
    draw = torch.rand(x.size(0), 1, 1, 1, generator=generator, device=device)
    return draw.to(device=x.device, dtype=x.dtype)


def _randint(
    low: int, high: int, n: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``n`` integers in [low, high) shaped N x 1, drawn on the generator's device."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    draw = torch.randint(low, high, (n, 1), generator=generator, device=gen_device)
    return draw.to(device)


def rand_brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add a per-image offset in [-0.5, 0.5)."""
    return x + (_uniform(x, generator) - 0.5)


def rand_saturation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each pixel's distance from its channel mean by a per-image factor in [0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, generator) * 2.0) + mean


def rand_contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale the distance from the image mean by a per-image factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def rand_translation(
    x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125
) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side in each direction; vacated pixels become 0."""
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio), int(w * ratio)
    rows = torch.arange(h, device=x.device) + _randint(
        -shift_h, shift_h + 1, n, generator, x.device
    )
    cols = torch.arange(w, device=x.device) + _randint(
        -shift_w, shift_w + 1, n, generator, x.device
    )
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing around the channel slice gives N x H x W x C; gather is differentiable.
    shifted = x[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    return shifted.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def rand_cutout(
    x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5
) -> torch.Tensor:
    """Zero one square of ``ratio`` times the side per image, centred anywhere (clipped at borders)."""
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    # Same centre distribution as the official code: [0, side + (1 - cut % 2)).
    top = _randint(0, h + (1 - cut_h % 2), n, generator, x.device) - cut_h // 2
    left = _randint(0, w + (1 - cut_w % 2), n, generator, x.device) - cut_w // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top) & (rows < top + cut_h)
    in_cols = (cols >= left) & (cols < left + cut_w)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


AUGMENT_FNS: dict[str, list[AugmentFn]] = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}


def diff_augment(
    x: torch.Tensor,
    policy: str,
    generator: torch.Generator | None = None,
    probability: float | None = None,
) -> torch.Tensor:
    """Apply ``policy`` (e.g. ``"color,translation,cutout"``) to an N x C x H x W batch in [-1, 1].

    ``probability`` None: every transform on every image. A number p: each transform on each image
    with probability p (one extra U[0, 1) draw per image and transform; none at all for p <= 0).
    With ``generator=None`` the global torch RNG (on CPU) is used.
    """
    for name in parse_policy(policy):
        for fn in AUGMENT_FNS[name]:
            if probability is None:
                x = fn(x, generator)
            elif probability > 0:
                chosen = _uniform(x, generator) < probability
                x = torch.where(chosen, fn(x, generator), x)
    return x
