"""Model registry: name -> builder(ModelConfig). A new family (e.g. ViT) is one more entry."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from classify.errors import UserError
from classify.models.attention import CBAM_POOL_TYPES, create_attention
from classify.models.config import ModelConfig
from classify.models.resnet import RESNET50_LAYERS, STEMS, ResNet, resolve_stem

ModelBuilder = Callable[[ModelConfig], nn.Module]
MIN_IMAGE_SIZE = 8


def resnet50(cfg: ModelConfig, attention: str | None = None, **attn_kwargs: object) -> ResNet:
    """ResNet-50 sized by ``cfg``, with ``attention`` (an ATTENTION_REGISTRY key) in every block."""
    attn_layer = partial(create_attention, attention, **attn_kwargs) if attention else None
    return ResNet(
        RESNET50_LAYERS,
        num_classes=cfg.num_classes,
        width=cfg.width,
        stem=resolve_stem(cfg.stem, cfg.image_size),
        attn_layer=attn_layer,
    )


MODEL_REGISTRY: dict[str, ModelBuilder] = {
    "resnet50": resnet50,
    "resnet50-se": lambda cfg: resnet50(cfg, "se"),
    "resnet50-cbam": lambda cfg: resnet50(cfg, "cbam", pool_types=cfg.cbam_pool_types),
}


def model_names() -> list[str]:
    return list(MODEL_REGISTRY)


def validate_config(cfg: ModelConfig) -> None:
    """Raise UserError (one line, naming the option and the fix) for a config no model can take."""
    if cfg.name not in MODEL_REGISTRY:
        raise UserError(f"model {cfg.name!r} is unknown: choose one of {', '.join(MODEL_REGISTRY)}")
    if cfg.num_classes < 1:
        raise UserError(f"num_classes {cfg.num_classes}: a classifier needs at least 1 class")
    if cfg.image_size < MIN_IMAGE_SIZE:
        raise UserError(f"image size {cfg.image_size}: use at least {MIN_IMAGE_SIZE} px")
    if not cfg.width > 0:
        raise UserError(f"width {cfg.width}: the channel multiplier must be > 0 (e.g. 0.25 or 1.0)")
    if cfg.stem not in STEMS:
        raise UserError(f"stem {cfg.stem!r} is unknown: choose one of {', '.join(STEMS)}")
    unknown = [p for p in cfg.cbam_pool_types if p not in CBAM_POOL_TYPES]
    if not cfg.cbam_pool_types or unknown:
        raise UserError(
            f"CBAM pool types {list(cfg.cbam_pool_types)}: use one or more of "
            f"{', '.join(CBAM_POOL_TYPES)}"
        )


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the registered model ``cfg.name``: input float [-1, 1] N x 3 x S x S, output logits.

    The model also provides ``cam_target_layers()`` and ``cam_reshape_transform`` for Grad-CAM.
    """
    validate_config(cfg)
    return MODEL_REGISTRY[cfg.name](cfg)
