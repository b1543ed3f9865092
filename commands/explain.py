"""``cli explain``: several runs' explanations of the same test images in one figure, with each map
set's faithfulness (the job is :func:`study.explain.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from classify.names import MODEL_NAMES, PRETRAINED
from commands.command import command_class
from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.options import (
    CamMethod,
    Checkpoint,
    Device,
    ExplainPerClass,
    ExplainSeed,
    Rollout,
    RunsDir,
    choice,
    comma_list,
)
from core.errors import UserError
from core.progress import console
from study.explain_config import ExplainOptions

_E = ExplainOptions()


def explain_command(
    ctx: typer.Context,
    runs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUNS",
            help="Run names under --runs-dir, or run folders; with --pretrained or --weights: "
            "image files.",
        ),
    ],
    models: Annotated[
        str,
        typer.Option(
            "--models",
            metavar="<model,...>",
            help="With --pretrained or --weights: the ImageNet models whose maps stand side by "
            "side (resnet50, an SE / CBAM variant of it, vit-b16). Runs bring their own.",
            callback=comma_list(MODEL_NAMES),
        ),
    ] = ",".join(_E.models),
    pretrained: Annotated[
        choice(PRETRAINED),
        typer.Option(
            "--pretrained",
            help="imagenet: no runs; every positional argument is a photo, explained by each of "
            "--models with torchvision's ImageNet weights (from $TORCH_HOME/hub/checkpoints, or "
            "downloaded there).",
        ),
    ] = _E.pretrained,
    weight_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights",
            metavar="<path>",
            help="As --pretrained imagenet, with local state dicts in torchvision's layout "
            "(resnet50 / vit_b_16 files with their 1000-class heads): one --weights per "
            "--models entry, in that order.",
        ),
    ] = None,
    cam_method: CamMethod = _E.cam_method,
    cam_per_class: ExplainPerClass = _E.cam_per_class,
    rollout: Rollout = _E.rollout,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output PNG (default: reports/explain-<runs>.png, with --pretrained or "
            "--weights reports/explain-<models>.png); JSON beside it."
        ),
    ] = _E.out,
    checkpoint: Checkpoint = _E.checkpoint,
    seed: ExplainSeed = _E.seed,
    runs_dir: RunsDir = Path(_E.runs_dir),
    device: Device = _E.device,
) -> None:
    """Explain the same test images with several runs (or photos with ImageNet models) in one figure.

    Every run's class activation map (--cam-method, the same for every run) and, for ViT runs,
    attention rollout; prints each map set's faithfulness. With --pretrained imagenet or
    --weights, every positional argument is a photo and --models (default vit-b16,resnet50) with
    ImageNet weights explain their top-1 ImageNet class; each column shows its faithfulness.
    """
    from rich.table import Table

    from study.explain import explain, explain_photos

    weights = tuple(str(p) for p in weight_files or ())
    options = config_of(ExplainOptions, ctx, weights=weights)
    if options.photos:
        summary = explain_photos(runs, options)
        shown = f"Faithfulness on the same {len(summary['files'])} photos"
    else:
        if ctx.get_parameter_source("models").name not in ("DEFAULT", "DEFAULT_MAP"):
            raise UserError(
                "--models goes with --pretrained imagenet or --weights (photos); runs bring "
                "their own models"
            )
        summary = explain(runs, options)
        shown = f"Faithfulness on the same {len(summary['files'])} test images"
    table = Table(title=shown)
    for column in ("map", "metric", "mean ± sd", "images"):
        table.add_column(column, justify="right" if column in ("mean ± sd", "images") else "left")
    for row in summary["faithfulness"]:
        table.add_row(
            row["view"],
            str(row.get("metric", "?")),
            f"{row.get('value', float('nan')):.4f} ± {row.get('std', float('nan')):.4f}",
            str(row.get("n_images", "?")),
        )
    console.print(table)
    console.print("higher is more faithful", style="dim")
    console.print(f"wrote {summary['figure']}", highlight=False)


EXAMPLES = """Examples:

cli explain resnet50 resnet50-cbam vit-tiny --cam-method gradcam++
cli explain photos/cat.jpg photos/dog.jpg --pretrained imagenet
cli explain photos/cat.jpg --models vit-b16,resnet50 --weights vit.pth --weights resnet.pth
"""


def register(app: typer.Typer) -> None:
    renamed = {"--method": "--cam-method", "--per-class": "--cam-per-class"}
    app.command("explain", cls=command_class(renamed=renamed), epilog=EXAMPLES)(
        user_errors(one_process("explain")(explain_command))
    )
