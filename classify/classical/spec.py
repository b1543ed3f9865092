"""Parses an ``--augment`` value into the classical augmentation it names, without torch.

The CLI checks the option and builds ``--help`` through this module without importing torch.

The value is a comma-separated list of at most one name from each group of :mod:`classify.names`,
in any order:

- a crop (``CROPS``, the keys of :data:`classify.classical.crops.CROP_TRANSFORMS`): ``pad-crop``
  (the default when no crop is named), ``resized-crop`` or ``none``;
- a per-sample automatic policy (``POLICIES``, the keys of
  :data:`classify.classical.policies.POLICY_TRANSFORMS`): ``trivialaugment`` (TrivialAugment Wide,
  Mueller & Hutter 2021), ``randaugment`` (Cubuk et al. 2020) or ``autoaugment`` (Cubuk et al.
  2019, the ImageNet policy);
- a batch mix with soft targets (``MIXES``, the keys of
  :data:`classify.classical.mixing.MIX_TRANSFORMS`): ``mixup`` (Zhang et al. 2018) or ``cutmix``
  (Yun et al. 2019).

So every value that existed before (``pad-crop``, ``resized-crop``, ``none``) means what it meant,
``trivialaugment`` is pad-crop + flip + TrivialAugment, ``trivialaugment,mixup`` adds mixup, and
``none,cutmix`` is CutMix without crops. The order in the string does not matter: a batch is always
policy -> crop -> flip (``--hflip``) -> mix (see :func:`classify.classical.apply.augment_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

from classify.names import CROPS, MIXES, POLICIES
from core.errors import UserError

DEFAULT_CROP = "pad-crop"

USAGE = (
    f"use a comma-separated list of one crop ({'|'.join(CROPS)}; default {DEFAULT_CROP}), "
    f"at most one policy ({'|'.join(POLICIES)}) and at most one mix ({'|'.join(MIXES)}), "
    "e.g. trivialaugment,mixup"
)


@dataclass(frozen=True)
class AugmentSpec:
    """A parsed ``--augment`` value: which crop, policy (or None) and mix (or None) to apply."""

    crop: str = DEFAULT_CROP
    policy: str | None = None
    mix: str | None = None


_GROUPS = {"crop": CROPS, "policy": POLICIES, "mix": MIXES}


def parse_augment(value: str) -> AugmentSpec:
    """The :class:`AugmentSpec` that ``value`` names; a one-line :class:`UserError` for an unknown
    name, an empty list or two names from one group."""
    found: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",")):
        group = next((g for g, names in _GROUPS.items() if part in names), None)
        if group is None:
            raise UserError(f"--augment {value!r}: unknown {part!r}; {USAGE}")
        if group in found:
            raise UserError(f"--augment {value!r}: two of a kind ({found[group]}, {part}); {USAGE}")
        found[group] = part
    return AugmentSpec(**found)
