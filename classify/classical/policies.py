"""Automatic augmentation policies (TrivialAugment, RandAugment, AutoAugment), drawn per sample.

They transform uint8 batches through torchvision's ``transforms.v2``, selected by a policy name in
``--augment`` (see :mod:`classify.classical.spec`).

- ``trivialaugment``: TrivialAugment Wide (Mueller & Hutter 2021, "TrivialAugment: Tuning-free Yet
  State-of-the-Art Data Augmentation"): one op drawn uniformly from 14, with a magnitude drawn
  uniformly from 31 bins of the wide ranges; ``v2.TrivialAugmentWide()``.
- ``randaugment``: RandAugment (Cubuk et al. 2020, "RandAugment: Practical automated data
  augmentation with a reduced search space"): N = 2 ops drawn uniformly from 14 at magnitude
  M = 9 of 31 (the paper's ImageNet ResNet-50 setting); ``v2.RandAugment()``.
- ``autoaugment``: AutoAugment (Cubuk et al. 2019, "AutoAugment: Learning Augmentation Strategies
  from Data"), the learned ImageNet policy: one of 25 sub-policies of two ops, each applied with
  its own probability; ``v2.AutoAugment(AutoAugmentPolicy.IMAGENET)``.

All with torchvision's defaults: nearest interpolation, black (0) fill, as the zero padding of
``pad-crop``. Each sample gets its own draw: on a batched tensor a v2 auto-augment transform picks
one op and magnitude for the whole batch, which is not the published method, so the transform is
called image by image. At 32 px that costs ~0.1-0.3 ms an image on a CPU core, 1-2% of an epoch
at the quick preset (up to ~7% measured with both cores oversubscribed;
``bench/augment_throughput.py``), so grouping samples by op is not needed.

The v2 transforms draw from torch's global RNG; :func:`core.seeding.seeded_global_rng` seeds it
from the trainer's epoch generator once per batch (and restores it after), so a batch's ops depend
only on the epoch generator's state: runs are reproducible from their seed and resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms import v2

from core.seeding import seeded_global_rng

# The policies by ``--augment`` name (keys: classify.names.POLICIES).
POLICY_TRANSFORMS: dict[str, Callable[[], v2.Transform]] = {
    "trivialaugment": v2.TrivialAugmentWide,
    "randaugment": v2.RandAugment,
    "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
}


def apply_policy(images: Tensor, name: str, generator: torch.Generator) -> Tensor:
    """Policy ``name`` applied to each image of a uint8 B x 3 x H x W batch with its own random
    op(s) and magnitude(s), all drawn from one seed taken from ``generator``; same shape, dtype and
    device."""
    transform = POLICY_TRANSFORMS[name]()
    with seeded_global_rng(generator):
        return torch.stack([transform(image) for image in images])
