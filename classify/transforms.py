"""Classical train-time transforms (random crops and flips) of whole uint8 batches, vectorised and
device-agnostic: the hand-designed augmentation a classifier trains with, selected by
``--augment`` / ``TrainConfig.augment``. Not to be confused with the GAN that makes synthetic
images (the ``augment/`` package) or with DiffAugment, which transforms the GAN's real and fake
batches alike (``augment/gan/diffaugment.py``).

Each policy is a pure function ``(images uint8 B x 3 x S x S, generator) -> images`` of the same
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

``--augment`` may also name a per-sample automatic policy (TrivialAugment, RandAugment,
AutoAugment: :mod:`classify.autoaugment`) and a batch mix (mixup, CutMix: :mod:`classify.mixing`);
:mod:`classify.augment_spec` parses the value. :func:`augment_batch` applies the policy first, then
the crop and the flip, as the papers' CIFAR code does (AutoAugment's ``data_utils.py``: policy, then
zero-pad-and-crop and flip, then Cutout; TrivialAugment's ``data.py`` inserts the policy before
``RandomCrop(32, padding=4)`` and the flip), so the padding stays black whatever the policy does to
colours. (timm's ImageNet pipeline puts the policy after RandomResizedCrop and the flip because the
crop there also resizes to the training size; our images already have it.) The mix needs labels
and float inputs, so it comes after the scaling to [-1, 1] (:func:`train_inputs`, what the trainer
calls). Without a policy or a mix nothing more is drawn from the generator: the crops and the flip
give what they always gave.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from classify.augment_spec import AugmentSpec, parse_augment
from core.data import to_model_input

Policy = Callable[[Tensor, torch.Generator], Tensor]

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


def no_policy(images: Tensor, generator: torch.Generator) -> Tensor:
    return images


def random_hflip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


# The classical policies by ``--augment`` name (the flip is separate: ``--hflip``).
AUGMENTATIONS: dict[str, Policy] = {
    "pad-crop": pad_crop,
    "resized-crop": resized_crop,
    "none": no_policy,
}


def augment_batch(
    images: Tensor, policy: str | AugmentSpec, *, hflip: bool, generator: torch.Generator
) -> Tensor:
    """Apply an ``--augment`` value's automatic policy (if any, per sample), then its crop (an
    AUGMENTATIONS key), then the random flip, to a uint8 batch. Its mix, if any, is not applied
    here (:func:`classify.mixing.mix_batch` needs the labels). An unknown value is a one-line
    UserError."""
    spec = policy if isinstance(policy, AugmentSpec) else parse_augment(policy)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"expected a uint8 B x C x H x W batch, got {images.dtype} {tuple(images.shape)}"
        )
    if spec.policy is not None:
        from classify.autoaugment import apply_policy  # torchvision, only when a policy is used

        images = apply_policy(images, spec.policy, generator)
    out = AUGMENTATIONS[spec.crop](images, generator)
    return random_hflip(out, generator) if hflip else out


def train_inputs(
    images: Tensor,
    labels: Tensor,
    augment: str | AugmentSpec,
    *,
    hflip: bool,
    num_classes: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """A training batch as the model and the loss take it: uint8 ``images`` through
    :func:`augment_batch`, scaled to [-1, 1], then mixed when ``augment`` names a mix. Returns
    (inputs, targets): the ``labels`` themselves, or B x ``num_classes`` class probabilities after
    a mix (:mod:`classify.mixing`)."""
    spec = augment if isinstance(augment, AugmentSpec) else parse_augment(augment)
    inputs = to_model_input(augment_batch(images, spec, hflip=hflip, generator=generator))
    if spec.mix is None:
        return inputs, labels
    from classify.mixing import mix_batch  # torchvision, only when a mix is used

    return mix_batch(inputs, labels, spec.mix, num_classes, generator)
