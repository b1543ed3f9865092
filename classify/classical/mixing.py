"""Batch mixing with soft targets (mixup, CutMix), the last step of classical augmentation.

Both go through torchvision's ``transforms.v2``, selected by a mix name in ``--augment`` (see
:mod:`classify.classical.spec`).

- ``mixup`` (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): every image becomes
  lam * x_i + (1 - lam) * x_j with the same mix of their one-hot labels; ``v2.MixUp(alpha=1)``.
- ``cutmix`` (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with
  Localizable Features"): a random box of x_j is pasted into x_i, the labels mixed by area;
  ``v2.CutMix(alpha=1)``.

lam ~ Beta(1, 1), one draw per batch, and x_j is the batch rolled by one (torchvision's pairing),
on every batch: the papers' CIFAR settings (alpha = 1). The mix acts on the model's float inputs:
``v2.MixUp`` cannot scale uint8 images in place, and as the input scaling is affine, mixing before
or after it gives the same images (up to rounding).

The targets are class probabilities (B x K, rows summing to 1), which ``nn.CrossEntropyLoss``
takes as they are; its ``label_smoothing`` then smooths the mixed target, (1 - eps) * t + eps / K,
which equals mixing the smoothed one-hot labels (timm's ``mixup_target``). Training accuracy
counts a prediction correct when it is the argmax of the mixed target, i.e. the dominant label
(the one with weight >= 1/2).

Both transforms draw from torch's global RNG; :func:`core.seeding.seeded_global_rng` seeds it from
the epoch generator (see :mod:`classify.classical.policies`), so runs are reproducible and resume
exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms import v2

from core.seeding import seeded_global_rng

MIX_ALPHA = 1.0  # the Beta(alpha, alpha) of lam

# The mixes by ``--augment`` name (keys: classify.names.MIXES), built for K classes.
MIX_TRANSFORMS: dict[str, Callable[[int], v2.Transform]] = {
    "mixup": lambda num_classes: v2.MixUp(alpha=MIX_ALPHA, num_classes=num_classes),
    "cutmix": lambda num_classes: v2.CutMix(alpha=MIX_ALPHA, num_classes=num_classes),
}


def mix_batch(
    inputs: Tensor, labels: Tensor, name: str, num_classes: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Mix ``name`` of float inputs (B x C x H x W) and integer labels (B,): the mixed inputs and
    float targets (B x num_classes, rows summing to 1), drawn from one seed from ``generator``."""
    transform = MIX_TRANSFORMS[name](num_classes)
    with seeded_global_rng(generator):
        mixed, targets = transform(inputs, labels)
    return mixed, targets


def target_labels(targets: Tensor) -> Tensor:
    """The class each target counts as for accuracy: itself for class indices, the argmax (the
    dominant label) for probabilities."""
    return targets.argmax(1) if targets.ndim == 2 else targets
