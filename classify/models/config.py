"""The classifier's architecture arguments: one frozen dataclass, saved in every checkpoint so a
model can be rebuilt from the file alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from classify.names import RESNET_VARIANTS, resnet_variant


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model to build and at what size.

    ``stem``: ``auto`` (small 3x3 stride-1 stem, no max-pool, for ``image_size`` <= 64; the ImageNet
    7x7 stride-2 + max-pool stem above), or force ``small`` / ``imagenet`` (e.g. to compare against
    timm's ImageNet-stem ResNets at 64 px). ``cbam_pool_types`` only matters for CBAM models;
    ``patch_size``, ``vit_depth`` and ``vit_heads`` only for ViTs (``width`` scales a ViT's
    embedding width, heads kept).

    ``attention_position`` (``standard | pre | post | identity``, see
    :mod:`classify.models.placement`) is where a ResNet's attention block sits. The name and the
    field always agree after construction: a placed name sets the field (``resnet50-se-pre`` ->
    ``pre``), and a field on a base name picks the placed name (``resnet50-se`` + ``pre`` ->
    ``resnet50-se-pre``), so checkpoints and reports name what was built. Checkpoints written
    before the field existed load as ``standard``, which is what they are. A contradiction
    (``resnet50-se-pre`` + ``post``, or a position on a model without attention) is left for
    :func:`~classify.models.registry.validate_config` to report.

    ``input_norm`` (``none | imagenet``, :mod:`classify.models.input_norm`) is the normalisation the
    model applies to its [-1, 1] input first: ``imagenet`` for weights trained on ImageNet.
    ``pretrained`` says where the initial weights came from (informational: a checkpoint's weights
    replace them), e.g. ``torchvision:ResNet50_Weights.IMAGENET1K_V2``; "" = random init.
    Checkpoints written before these fields existed load as ``none`` and "", which is what they
    are.
    """

    name: str = "resnet50"
    num_classes: int = 3
    image_size: int = 64
    width: float = 1.0
    cbam_pool_types: tuple[str, ...] = ("avg", "max")
    stem: str = "auto"
    # ViT only; 0 = automatic patch size (an 8 x 8 token grid) / the named size's depth and heads.
    patch_size: int = 0
    vit_depth: int = 0
    vit_heads: int = 0
    attention_position: str = "standard"
    input_norm: str = "none"
    pretrained: str = ""

    def __post_init__(self) -> None:
        # JSON gives lists; a frozen config must stay hashable and compare equal after a round trip.
        object.__setattr__(self, "cbam_pool_types", tuple(self.cbam_pool_types))
        attention, position = RESNET_VARIANTS.get(self.name, (None, "standard"))
        if position != "standard" and self.attention_position == "standard":
            object.__setattr__(self, "attention_position", position)
        elif position == "standard" and attention is not None:
            placed = resnet_variant(attention, self.attention_position)
            if placed is not None:
                object.__setattr__(self, "name", placed)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cbam_pool_types"] = list(self.cbam_pool_types)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
