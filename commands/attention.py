"""``cli attention``: what a trained ViT's class token attends to, per block and head, in the last
block, and rolled out across all blocks (see :mod:`classify.explain.attention_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from classify.names import HEAD_FUSIONS
from commands.command import command_class
from commands.common import interrupted_exit, one_process, user_errors
from commands.options import (
    Checkpoint,
    Device,
    ExplainImages,
    ExplainPerClass,
    ExplainSeed,
    Metric,
    PhotoPretrained,
    PhotoWeights,
    Rollout,
    RunData,
    RunOrPhoto,
    RunsDir,
    VitPhotoModel,
    Workers,
    choice,
    photos_or_run,
)
from core.progress import console


def attention_command(
    name: RunOrPhoto,
    images: ExplainImages = None,
    model: VitPhotoModel = None,
    pretrained: PhotoPretrained = "none",
    weights: PhotoWeights = None,
    cam_per_class: ExplainPerClass = 4,
    layer: Annotated[
        int,
        typer.Option(help="Block whose class-token attention is overlaid (0-based; -1: last)."),
    ] = -1,
    rollout: Rollout = True,
    head_fusion: Annotated[
        choice(HEAD_FUSIONS), typer.Option(help="How the heads of a block are combined.")
    ] = "mean",
    discard_ratio: Annotated[
        float,
        typer.Option(
            help="Rollout: zero this fraction of the weakest attention weights per block first "
            "(0: the paper's rollout; 0.9 gives sharper maps)."
        ),
    ] = 0.0,
    metric: Metric = "road",
    checkpoint: Checkpoint = "best",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the PNGs (default: RUN/eval; with --pretrained or --weights: "
            "reports/explain-<model>)."
        ),
    ] = None,
    seed: ExplainSeed = 0,
    runs_dir: RunsDir = Path("runs"),
    device: Device = "auto",
    workers: Workers = 0,
    data: RunData = None,
) -> None:
    """A ViT's class-token attention, overlaid on test images or image files.

    A block x head grid for one image per class (or per given file), the chosen block's
    head-fused attention overlaid on every image, and attention rollout across all blocks. Both
    overlays get the Grad-CAM faithfulness score (higher is better), stored for test images in
    RUN/eval/metrics.json under "attention". With --pretrained imagenet or --weights FILE there is
    no run: every positional argument is a photo, seen by --model (vit-b16) with ImageNet weights.
    """
    from classify.checkpoint import load_classifier
    from classify.explain.attention_run import AttentionOptions, attention_run, require_vit
    from classify.explain.selection import given_images, test_images_per_class
    from classify.models import is_vit
    from classify.pretrained_model import load_imagenet_classifier, photo_out_dir
    from core.device import setup_device
    from core.errors import UserError
    from core.evaldir import eval_dir, update_metrics
    from core.progress import make_progress

    options = AttentionOptions(
        layer=layer,
        head_fusion=head_fusion,
        rollout=rollout,
        discard_ratio=discard_ratio,
        metric=metric,
        seed=seed,
    )
    photos = photos_or_run(name, images, pretrained, weights, model)
    try:
        if photos is not None:
            model = model or "vit-b16"
            if not is_vit(model):  # before reading any weights
                raise UserError(
                    f"--model {model}: has no self-attention to show; `cli attention` takes "
                    "--model vit-b16 with ImageNet weights; use `cli gradcam` for this one"
                )
            loaded = load_imagenet_classifier(model, pretrained, weights, setup_device(device))
            batch, labels, rows, row_labels, names = given_images(loaded, photos)
            out = out or photo_out_dir(loaded.model_config.name)
        else:
            loaded = load_classifier(name, checkpoint, runs_dir, setup_device(device))
            require_vit(loaded)  # before decoding any image
            if images:
                batch, labels, rows, row_labels, names = given_images(loaded, images)
            else:
                batch, labels, rows, row_labels, names = test_images_per_class(
                    loaded, cam_per_class, seed, workers, data
                )
        target = out or eval_dir(loaded.run_dir)
        with make_progress(transient=True) as bar:
            task = bar.add_task("attention", total=batch.shape[0], info=loaded.device.type)
            report = attention_run(
                loaded,
                batch,
                labels,
                rows,
                row_labels,
                names,
                target,
                options,
                explicit_files=bool(images) or photos is not None,
                progress=lambda n: bar.advance(task, n),
            )
    except KeyboardInterrupt:
        raise interrupted_exit() from None
    for path in report.figures:
        console.print(f"wrote {path}", highlight=False)
    for key, entry in report.faithfulness.items():
        console.print(
            f"faithfulness of the {key} map ({entry['metric']}, higher is better): "
            f"[bold]{entry['value']:.4f}[/bold] ± {entry['std']:.4f} over {entry['n_images']} images",
            highlight=False,
        )
    if loaded.run_dir is not None and not images:
        update_metrics(loaded.run_dir, {"attention": report.faithfulness})
        console.print(f"stored in {eval_dir(loaded.run_dir) / 'metrics.json'}", highlight=False)


EXAMPLES = """Examples:

cli attention vit-tiny --layer 5 --head-fusion max
cli attention vit-tiny photos/a.jpg
cli attention photos/cat.jpg photos/dog.jpg --model vit-b16 --pretrained imagenet
"""


def register(app: typer.Typer) -> None:
    renamed = {"--out-dir": "--out", "--per-class": "--cam-per-class"}
    app.command("attention", cls=command_class(renamed=renamed), epilog=EXAMPLES)(
        user_errors(one_process("attention")(attention_command))
    )
