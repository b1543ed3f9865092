"""``cli models``: the registered classifiers with their parameter counts and forward GFLOPs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from classify.names import STEMS
from classify.training.config import TrainConfig
from commands.common import user_errors
from commands.options import ImageSize, PatchSize, VitDepth, VitHeads, Width, choice
from core.progress import console

_D = TrainConfig()


def models_command(
    num_classes: Annotated[int, typer.Option(help="Output classes.")] = 3,
    image_size: ImageSize = _D.image_size,
    width: Width = _D.width,
    stem: Annotated[
        choice(STEMS),
        typer.Option(help="ResNet stem (auto: the small stem up to 64 px, ImageNet stem above)."),
    ] = "auto",
    patch_size: PatchSize = _D.patch_size,
    vit_depth: VitDepth = _D.vit_depth,
    vit_heads: VitHeads = _D.vit_heads,
) -> None:
    """List every registered model with its parameter count and forward cost."""
    import torch
    from rich.table import Table

    from classify.models import ModelConfig, build_model, is_vit, model_names
    from classify.models.profile import count_parameters
    from classify.models.resnet import resolve_stem
    from classify.models.vit import default_patch_size

    table = Table(
        title=f"Classifiers at {image_size} px, {num_classes} classes, width {width:g}",
        caption="GFLOPs: one image, forward, multiply-add = 2 FLOPs (convolutions and linear "
        "layers only).",
    )
    names = model_names()
    # Names never wrap or shorten (resnet50-cbam-identity is what `cli train --model` takes).
    table.add_column("model", no_wrap=True, min_width=max(len(name) for name in names))
    for column in ("layout", "parameters", "GFLOPs", "CAM map"):
        table.add_column(column, justify="left" if column == "layout" else "right")
    for name in names:
        cfg = ModelConfig(
            name=name,
            num_classes=num_classes,
            image_size=image_size,
            width=width,
            stem=stem,
            patch_size=patch_size,
            vit_depth=vit_depth,
            vit_heads=vit_heads,
        )
        patch = default_patch_size(name, image_size) if is_vit(name) else 0
        if patch and not patch_size and image_size % patch:  # vit-b16's fixed 16 px patches
            table.add_row(name, f"patch {patch} does not divide {image_size} px", "-", "-", "-")
            continue
        # Shapes and FLOPs need no real weights: the meta device skips allocation, init and compute.
        with torch.device("meta"):
            model = build_model(cfg)
        gflops, cam = _gflops_and_cam_map(model, image_size)
        table.add_row(
            name,
            _layout(model) if is_vit(name) else f"{resolve_stem(stem, image_size)} stem",
            f"{count_parameters(model):,}",
            f"{gflops:.3f}",
            cam,
        )
    console.print(table)


def _layout(model: Any) -> str:
    """A ViT's shape in one phrase: patch size, blocks, heads, embedding width."""
    patch = model.patch_size
    return f"patch {patch}, {model.depth} x {model.num_heads} heads, dim {model.hidden_dim}"


def _gflops_and_cam_map(model: Any, image_size: int) -> tuple[float, str]:
    """Forward GFLOPs of one image and the spatial size of the Grad-CAM target layer's output."""
    from classify.models.profile import forward_gflops

    shapes: list[tuple[int, ...]] = []
    target = model.cam_target_layers()[-1]
    reshape = getattr(model, "cam_reshape_transform", None) or (lambda out: out)
    hook = target.register_forward_hook(
        lambda _m, _i, out: shapes.append(tuple(reshape(out).shape[2:]))
    )
    try:
        gflops = forward_gflops(model, image_size)
    finally:
        hook.remove()
    cam = "x".join(str(s) for s in shapes[-1]) if shapes and shapes[-1] else "-"
    return gflops, cam


def register(app: typer.Typer) -> None:
    app.command("models")(user_errors(models_command))
