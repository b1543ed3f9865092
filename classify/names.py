"""The keys of the classifier's registries, torch-free: the CLI builds its choices and ``--help``
from these tuples without importing torch.

The registries themselves (torch modules) take their keys from here where they are plain tuples
(ResNet names, stems, CBAM poolings, head fusions); where a registry is a dict of builders
(``classify.models.registry.MODEL_REGISTRY``, ``classify.models.vit.VIT_SIZES``,
``classify.models.gating.POOLINGS``), tests/test_cli.py checks that its keys equal these names.
"""

from __future__ import annotations

RESNET_MODELS = ("resnet50", "resnet50-se", "resnet50-cbam")  # ResNet-50 + none | SE | CBAM
VIT_MODELS = ("vit-tiny", "vit-small")  # keys of classify.models.vit.VIT_SIZES
MODEL_NAMES = RESNET_MODELS + VIT_MODELS  # keys of classify.models.registry.MODEL_REGISTRY

CBAM_POOL_TYPES = ("avg", "max", "lp", "lse")  # keys of classify.models.gating.POOLINGS
STEMS = ("auto", "small", "imagenet")  # ResNet stems (classify.models.resnet.resolve_stem)
HEAD_FUSIONS = ("mean", "max", "min")  # how a ViT block's heads combine (explain.vit_attention)
