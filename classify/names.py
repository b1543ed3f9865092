"""Every name list the classifier accepts, each kept once here and torch-free.

The CLI builds its choices and ``--help`` from these tuples without importing torch, and the
library checks its arguments against them; no other module keeps a copy.

The registries themselves (torch modules) take their keys from here where they are plain tuples
(ResNet names, stems, CBAM poolings, head fusions); where a registry is a dict of builders
(``classify.models.registry.MODEL_REGISTRY``, ``classify.models.vit.VIT_SIZES``,
``classify.models.cbam.POOLINGS``, ``classify.models.placement.PLACEMENTS``,
``classify.training.optim.OPTIMIZER_BUILDERS`` and ``SCHEDULES``, the classical augmentation's
``CROP_TRANSFORMS``, ``POLICY_TRANSFORMS`` and ``MIX_TRANSFORMS``), tests check that its keys equal
these names.
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
VIT_MODELS = ("vit-tiny", "vit-small", "vit-b16")  # keys of classify.models.vit.VIT_SIZES
MODEL_NAMES = RESNET_MODELS + VIT_MODELS  # keys of classify.models.registry.MODEL_REGISTRY

CBAM_POOL_TYPES = ("avg", "max", "lp", "lse")  # keys of classify.models.cbam.POOLINGS
STEMS = ("auto", "small", "imagenet")  # ResNet stems (classify.models.resnet.resolve_stem)
HEAD_FUSIONS = ("mean", "max", "min")  # how a ViT block's heads combine (explain.vit_attention)
# How a model maps its [-1, 1] input before the first layer (classify.models.input_norm):
# "imagenet" is the mean / std normalisation that torchvision's ImageNet weights expect.
INPUT_NORMS = ("none", "imagenet")

# Training (classify.training.config.TrainConfig's fields of the same names).
OPTIMIZERS = ("sgd", "adam", "adamw")  # keys of classify.training.optim.OPTIMIZER_BUILDERS
SCHEDULERS = ("cosine", "onecycle", "none")  # keys of classify.training.optim.SCHEDULES
TRAIN_ON = ("real", "synthetic")  # synthetic: train on the synthetic images only (CAS)
SYNTHETIC_LABELS = ("hard", "teacher")  # classify.training.teacher: soft targets of a real run
SYNTHETIC_BN = ("shared", "separate")  # classify.models.dual_bn: AdvProp's auxiliary BatchNorm
PRETRAINED = ("none", "imagenet")  # --pretrained: torchvision's ImageNet weights (models.hub)

# Classical augmentation (classify.classical): an --augment value names at most one of each group.
CROPS = ("pad-crop", "resized-crop", "none")  # keys of classify.classical.crops.CROP_TRANSFORMS
POLICIES = ("trivialaugment", "randaugment", "autoaugment")  # classical.policies.POLICY_TRANSFORMS
MIXES = ("mixup", "cutmix")  # keys of classify.classical.mixing.MIX_TRANSFORMS


def resnet_variant(attention: str | None, position: str) -> str | None:
    """The registry key of ResNet-50 with ``attention`` at ``position`` (None if there is none)."""
    for name, variant in RESNET_VARIANTS.items():
        if variant == (attention, position):
            return name
    return None
