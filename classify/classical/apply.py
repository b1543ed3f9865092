"""Applies an ``--augment`` value to a training batch: policy, crop, flip, then the batch mix.

:func:`augment_batch` applies the policy first (:mod:`classify.classical.policies`), then the crop
and the flip (:mod:`classify.classical.crops`), as the papers' CIFAR code does (AutoAugment's
``data_utils.py``: policy, then zero-pad-and-crop and flip, then Cutout; TrivialAugment's
``data.py`` inserts the policy before ``RandomCrop(32, padding=4)`` and the flip), so the padding
stays black whatever the policy does to colours. (timm's ImageNet pipeline puts the policy after
RandomResizedCrop and the flip because the crop there also resizes to the training size; our
images already have it.) The mix (:mod:`classify.classical.mixing`) needs labels and float inputs,
so it comes after the scaling to [-1, 1] (:func:`train_inputs`, what the trainer calls). Without a
policy or a mix nothing more is drawn from the generator: the crops and the flip give what they
always gave.
"""

from __future__ import annotations

import torch
from torch import Tensor

from classify.classical.crops import CROP_TRANSFORMS, random_hflip
from classify.classical.spec import AugmentSpec, parse_augment
from core.data import to_model_input


def augment_batch(
    images: Tensor, policy: str | AugmentSpec, *, hflip: bool, generator: torch.Generator
) -> Tensor:
    """Apply an ``--augment`` value's automatic policy (if any, per sample), then its crop (a
    CROP_TRANSFORMS key), then the random flip, to a uint8 batch. Its mix, if any, is not applied
    here (:func:`classify.classical.mixing.mix_batch` needs the labels). An unknown value is a
    one-line UserError."""
    spec = policy if isinstance(policy, AugmentSpec) else parse_augment(policy)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"expected a uint8 B x C x H x W batch, got {images.dtype} {tuple(images.shape)}"
        )
    if spec.policy is not None:
        from classify.classical.policies import apply_policy  # torchvision, only with a policy

        images = apply_policy(images, spec.policy, generator)
    out = CROP_TRANSFORMS[spec.crop](images, generator)
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
    a mix (:mod:`classify.classical.mixing`)."""
    spec = augment if isinstance(augment, AugmentSpec) else parse_augment(augment)
    inputs = to_model_input(augment_batch(images, spec, hflip=hflip, generator=generator))
    if spec.mix is None:
        return inputs, labels
    from classify.classical.mixing import mix_batch  # torchvision, only when a mix is used

    return mix_batch(inputs, labels, spec.mix, num_classes, generator)
