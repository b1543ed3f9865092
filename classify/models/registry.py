"""Model registry: name -> builder(ModelConfig). A new family is one more entry (as the ViTs)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from classify.models.attention import create_attention
from classify.models.config import ModelConfig
from classify.models.input_norm import make_input_norm
from classify.models.resnet import RESNET50_LAYERS, ResNet, resolve_stem
from classify.models.vit import VIT_SIZES, ViT, vit
from classify.names import (
    ATTENTION_POSITIONS,
    CBAM_POOL_TYPES,
    INPUT_NORMS,
    RESNET_VARIANTS,
    STEMS,
)
from core.errors import UserError

ModelBuilder = Callable[[ModelConfig], nn.Module]
MIN_IMAGE_SIZE = 8


def resnet50(cfg: ModelConfig, attention: str | None = None, position: str = "standard") -> ResNet:
    """ResNet-50 sized by ``cfg``, with ``attention`` (an ATTENTION_REGISTRY key) at ``position``
    (a PLACEMENTS key) in every block; CBAM takes ``cfg.cbam_pool_types``."""
    attn_kwargs = {"pool_types": cfg.cbam_pool_types} if attention == "cbam" else {}
    attn_layer = partial(create_attention, attention, **attn_kwargs) if attention else None
    return ResNet(
        RESNET50_LAYERS,
        num_classes=cfg.num_classes,
        width=cfg.width,
        stem=resolve_stem(cfg.stem, cfg.image_size),
        attn_layer=attn_layer,
        attention_position=position,
        input_norm=make_input_norm(cfg.input_norm),
    )


def vit_model(cfg: ModelConfig, size: str) -> ViT:
    """The named ViT size at ``cfg``'s image size, patch size, depth, heads and width."""
    return vit(
        cfg.image_size,
        cfg.num_classes,
        size,
        patch_size=cfg.patch_size,
        depth=cfg.vit_depth,
        heads=cfg.vit_heads,
        width=cfg.width,
        input_norm=make_input_norm(cfg.input_norm),
    )


MODEL_REGISTRY: dict[str, ModelBuilder] = {
    # resnet50, resnet50-se, resnet50-cbam and their placements (resnet50-se-pre, ...).
    **{
        name: partial(resnet50, attention=attention, position=position)
        for name, (attention, position) in RESNET_VARIANTS.items()
    },
    **{size: partial(vit_model, size=size) for size in VIT_SIZES},
}


def is_vit(name: str) -> bool:
    """True for the registry's Vision Transformers (the ``vit-*`` names)."""
    return name in VIT_SIZES


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
    if cfg.input_norm not in INPUT_NORMS:
        raise UserError(
            f"input norm {cfg.input_norm!r} is unknown: choose one of {', '.join(INPUT_NORMS)}"
        )
    validate_position(cfg)
    if is_vit(cfg.name):
        validate_vit(cfg)
    unknown = [p for p in cfg.cbam_pool_types if p not in CBAM_POOL_TYPES]
    if not cfg.cbam_pool_types or unknown:
        raise UserError(
            f"CBAM pool types {list(cfg.cbam_pool_types)}: use one or more of "
            f"{', '.join(CBAM_POOL_TYPES)}"
        )


def validate_position(cfg: ModelConfig) -> None:
    """The attention position must be known, and the one the model's name stands for (a config
    built from a base name and a position has already been given the placed name)."""
    if cfg.attention_position not in ATTENTION_POSITIONS:
        raise UserError(
            f"attention position {cfg.attention_position!r} is unknown: choose one of "
            f"{', '.join(ATTENTION_POSITIONS)}"
        )
    attention, position = RESNET_VARIANTS.get(cfg.name, (None, "standard"))
    if cfg.attention_position == position:
        return
    if attention is None:
        raise UserError(
            f"attention position {cfg.attention_position!r}: {cfg.name} has no attention block "
            "to place; use a ResNet with SE or CBAM (e.g. resnet50-se)"
        )
    raise UserError(
        f"attention position {cfg.attention_position!r} contradicts model {cfg.name} "
        f"(position {position!r}); name the model or the position, not both"
    )


def validate_vit(cfg: ModelConfig) -> None:
    from classify.models.vit import auto_patch_size, default_patch_size

    if cfg.patch_size < 0 or cfg.vit_depth < 0 or cfg.vit_heads < 0:
        raise UserError("--patch-size, --vit-depth and --vit-heads must be >= 0 (0 = automatic)")
    patch = cfg.patch_size or default_patch_size(cfg.name, cfg.image_size)
    if cfg.image_size % patch == 0:
        return
    if not cfg.patch_size and patch != auto_patch_size(cfg.image_size):  # the size's own patch
        raise UserError(
            f"{cfg.name}'s patch size {patch} does not divide --image-size {cfg.image_size}: "
            f"use a multiple of {patch} (e.g. {patch * max(1, round(cfg.image_size / patch))})"
        )
    raise UserError(
        f"--patch-size {patch} does not divide --image-size {cfg.image_size}: "
        f"use a divisor (e.g. {auto_patch_size(cfg.image_size)})"
    )


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the registered model ``cfg.name``: input float [-1, 1] N x 3 x S x S, output logits.

    The model also provides ``cam_target_layers()`` and ``cam_reshape_transform`` for Grad-CAM.
    """
    validate_config(cfg)
    return MODEL_REGISTRY[cfg.name](cfg)
