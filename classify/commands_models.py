"""``cli models``: the registered classifiers with their parameter counts and forward GFLOPs."""

from __future__ import annotations

from typing import Any

import typer

from classify.cliutil import console, user_errors


def models_command(
    num_classes: int = typer.Option(3, "--num-classes", help="Output classes."),
    image_size: int = typer.Option(64, "--image-size", help="Input size in px (square)."),
    width: float = typer.Option(1.0, "--width", help="Channel multiplier (depth kept)."),
    stem: str = typer.Option(
        "auto",
        "--stem",
        help="auto (small stem up to 64 px, ImageNet stem above), small, imagenet.",
    ),
) -> None:
    """List every registered model with its parameter count and forward cost."""
    import torch
    from rich.table import Table

    from classify.models import ModelConfig, build_model, model_names
    from classify.models.profile import count_parameters
    from classify.models.resnet import resolve_stem

    table = Table(
        title=f"Classifiers at {image_size} px, {num_classes} classes, width {width:g}",
        caption="GFLOPs: one image, forward, multiply-add = 2 FLOPs (convolutions and linear "
        "layers only).",
    )
    for column in ("model", "stem", "parameters", "GFLOPs", "CAM map"):
        table.add_column(column, justify="left" if column in ("model", "stem") else "right")
    for name in model_names():
        cfg = ModelConfig(
            name=name, num_classes=num_classes, image_size=image_size, width=width, stem=stem
        )
        # Shapes and FLOPs need no real weights: the meta device skips allocation, init and compute.
        with torch.device("meta"):
            model = build_model(cfg)
        gflops, cam = _gflops_and_cam_map(model, image_size)
        table.add_row(
            name,
            resolve_stem(stem, image_size),
            f"{count_parameters(model):,}",
            f"{gflops:.3f}",
            cam,
        )
    console.print(table)


def _gflops_and_cam_map(model: Any, image_size: int) -> tuple[float, str]:
    """Forward GFLOPs of one image and the spatial size of the Grad-CAM target layer's output."""
    from classify.models.profile import forward_gflops

    shapes: list[tuple[int, ...]] = []
    target = model.cam_target_layers()[-1]
    hook = target.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[2:])))
    try:
        gflops = forward_gflops(model, image_size)
    finally:
        hook.remove()
    cam = "x".join(str(s) for s in shapes[-1]) if shapes and shapes[-1] else "-"
    return gflops, cam


def register(app: typer.Typer) -> None:
    app.command("models")(user_errors(models_command))
