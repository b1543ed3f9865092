"""The keys of the classifier's registries, torch-free: the CLI builds its choices and ``--help``
from these tuples without importing torch.

The registries themselves (torch modules) take their keys from here where they are plain tuples
(ResNet names, stems, CBAM poolings, head fusions); where a registry is a dict of builders
(``classify.models.registry.MODEL_REGISTRY``, ``classify.models.vit.VIT_SIZES``,
``classify.models.gating.POOLINGS``, ``classify.models.placement.PLACEMENTS``), tests check that
its keys equal these names.
"""

from __future__ import annotations

# Where the attention block sits in each residual unit (Hu et al., "Squeeze-and-Excitation
# Networks", TPAMI 2019, Fig. 5): keys of classify.models.placement.PLACEMENTS.
ATTENTION_POSITIONS = ("standard", "pre", "post", "identity")

# ResNet-50 registry keys -> (attention block or None, its position). "standard" is the papers'
# placement (residual branch, before the addition); the suffixed names move the same block.
RESNET_VARIANTS: dict[str, tuple[str | None, str]] = {
    "resnet50": (None, "standard"),
    "resnet50-se": ("se", "standard"),
    "resnet50-cbam": ("cbam", "standard"),
    "resnet50-se-pre": ("se", "pre"),
    "resnet50-se-post": ("se", "post"),
    "resnet50-se-identity": ("se", "identity"),
    "resnet50-cbam-pre": ("cbam", "pre"),
    "resnet50-cbam-post": ("cbam", "post"),
    "resnet50-cbam-identity": ("cbam", "identity"),
}
RESNET_MODELS = tuple(RESNET_VARIANTS)
VIT_MODELS = ("vit-tiny", "vit-small")  # keys of classify.models.vit.VIT_SIZES
MODEL_NAMES = RESNET_MODELS + VIT_MODELS  # keys of classify.models.registry.MODEL_REGISTRY

CBAM_POOL_TYPES = ("avg", "max", "lp", "lse")  # keys of classify.models.gating.POOLINGS
STEMS = ("auto", "small", "imagenet")  # ResNet stems (classify.models.resnet.resolve_stem)
HEAD_FUSIONS = ("mean", "max", "min")  # how a ViT block's heads combine (explain.vit_attention)


def resnet_variant(attention: str | None, position: str) -> str | None:
    """The registry key of ResNet-50 with ``attention`` at ``position`` (None if there is none)."""
    for name, variant in RESNET_VARIANTS.items():
        if variant == (attention, position):
            return name
    return None
