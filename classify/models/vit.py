"""A Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") sized to train
from scratch on a few hundred small images, built on torchvision's ``VisionTransformer``.

We only add what the toolkit needs around the library model: named sizes (``vit-tiny``,
``vit-small``), a patch size chosen from the image size (an 8 x 8 token grid unless told otherwise),
the ``--width`` multiplier applied to the embedding and MLP widths (heads kept), and the Grad-CAM
hooks (:meth:`ViT.cam_target_layers`, :meth:`ViT.cam_reshape_transform`). The blocks' own
``forward`` methods are untouched: attention weights are read by hooks on the library's
``nn.MultiheadAttention`` modules (:mod:`classify.explain.vit_attention`).

``vit-b16`` is not sized for small data: it is torchvision's ``vit_b_16`` exactly (ViT-B/16 of the
paper: patch 16, 12 blocks of 12 heads, width 768, MLP 3072, LayerNorm eps 1e-6, no dropout), so
``ViT_B_16_Weights.IMAGENET1K_V1`` loads into it key for key (``--pretrained imagenet``,
:mod:`classify.models.transfer`). ``input_norm`` (:mod:`classify.models.input_norm`) runs first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

from torch import Tensor, nn
from torchvision.models.vision_transformer import VisionTransformer

DEFAULT_GRID = 8  # tokens per side when the patch size is left on auto
MIN_HEAD_DIM = 8


@dataclass(frozen=True)
class ViTSize:
    """Depth, heads and embedding width of a named ViT (MLP width = ``mlp_ratio`` x embedding)."""

    depth: int
    heads: int
    dim: int
    mlp_ratio: float = 2.0
    dropout: float = (
        0.0  # a few hundred images underfit a ViT in a CPU budget; 0.1 measured no better
    )
    patch_size: int = 0  # 0: automatic (an 8 x 8 token grid); ViT-B/16 fixes its 16


# Smaller than timm's ImageNet ViT-Ti/S (depth 12, MLP ratio 4): a few hundred training images at
# 32-64 px do not feed twelve blocks; the names keep timm's widths and head counts.
VIT_SIZES: dict[str, ViTSize] = {
    "vit-tiny": ViTSize(depth=6, heads=3, dim=192),
    "vit-small": ViTSize(depth=8, heads=6, dim=384),
    # torchvision's vit_b_16 (Dosovitskiy et al. 2021, Table 1: ViT-Base, patch 16).
    "vit-b16": ViTSize(depth=12, heads=12, dim=768, mlp_ratio=4.0, patch_size=16),
}


def auto_patch_size(image_size: int) -> int:
    """Largest patch size giving at least a :data:`DEFAULT_GRID`-token side (4 px at 32 px)."""
    return max(1, image_size // DEFAULT_GRID)


def default_patch_size(size: str, image_size: int) -> int:
    """The named size's own patch size (ViT-B/16: 16), else :func:`auto_patch_size`."""
    return VIT_SIZES[size].patch_size or auto_patch_size(image_size)


def scaled_dim(dim: int, heads: int, width: float) -> int:
    """``dim * width`` rounded to a multiple of ``heads`` with at least MIN_HEAD_DIM per head."""
    per_head = max(MIN_HEAD_DIM, round(dim * width / heads))
    return per_head * heads


class ViT(VisionTransformer):
    """torchvision's ViT on [-1, 1] inputs, with the hooks the rest of the toolkit expects.

    ``grid`` is the side of the patch-token grid; token 0 is the class token, tokens 1..grid**2 the
    patches in row-major order. ``input_norm`` maps the [-1, 1] input first (None: as it is).
    """

    head_name = "heads"  # the classifier (torchvision's ``heads.head``)

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        size: ViTSize,
        num_classes: int,
        width: float = 1.0,
        input_norm: nn.Module | None = None,
    ) -> None:
        dim = scaled_dim(size.dim, size.heads, width)
        super().__init__(
            image_size=image_size,
            patch_size=patch_size,
            num_layers=size.depth,
            num_heads=size.heads,
            hidden_dim=dim,
            mlp_dim=int(round(dim * size.mlp_ratio)),
            dropout=size.dropout,
            attention_dropout=0.0,
            num_classes=num_classes,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
        )
        self.grid = image_size // patch_size
        self.num_heads = size.heads
        self.depth = size.depth
        self.input_norm = input_norm if input_norm is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.input_norm(x))

    def attention_modules(self) -> list[nn.MultiheadAttention]:
        """The self-attention module of every encoder block, first to last."""
        return [block.self_attention for block in self.encoder.layers]

    def no_weight_decay(self) -> set[str]:
        """Parameters kept out of weight decay (as timm does for its ViTs)."""
        return {"class_token", "encoder.pos_embedding"}

    def cam_target_layers(self) -> list[nn.Module]:
        """Grad-CAM reads the last block's input LayerNorm: the token features the class token
        attends to one last time (pytorch-grad-cam's recipe for ViTs)."""
        return [self.encoder.layers[-1].ln_1]

    def cam_reshape_transform(self, tokens: Tensor) -> Tensor:
        """B x (1 + g*g) x C tokens -> B x C x g x g patch map (the class token dropped)."""
        patches = tokens[:, 1:, :]
        side = math.isqrt(patches.shape[1])
        return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def vit(
    image_size: int,
    num_classes: int,
    size: str,
    *,
    patch_size: int = 0,
    depth: int = 0,
    heads: int = 0,
    width: float = 1.0,
    input_norm: nn.Module | None = None,
) -> ViT:
    """The named ViT ``size`` (a :data:`VIT_SIZES` key); a 0 for ``patch_size``, ``depth`` or
    ``heads`` keeps the size's patch size (:func:`default_patch_size`) / depth / heads."""
    base = VIT_SIZES[size]
    chosen = replace(base, depth=depth or base.depth, heads=heads or base.heads)
    patch = patch_size or default_patch_size(size, image_size)
    return ViT(image_size, patch, chosen, num_classes, width, input_norm)
