"""``cli attention``: what a trained ViT's class token attends to, per block and head, in the last
block, and rolled out across all blocks (see :mod:`classify.explain.attention_run`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from classify.explain.vit_attention import HEAD_FUSIONS
from commands.common import user_errors
from commands.evaluate import (
    CHECKPOINT_HELP,
    METRIC_HELP,
    RUN_HELP,
    MetricChoice,
    _device,
    _image_files,
    _interrupted,
)
from core.progress import console

FusionChoice = Enum("FusionChoice", [(k, k) for k in HEAD_FUSIONS], type=str)  # type: ignore[misc]


def attention_command(
    name: str = typer.Argument(..., help=RUN_HELP + " (a vit-* run)."),
    images: list[Path] | None = typer.Argument(
        None, help="Image files to explain (default: --per-class test images)."
    ),
    per_class: int = typer.Option(4, "--per-class", help="Seeded-random test images per class."),
    layer: int = typer.Option(
        -1, "--layer", help="Block whose class-token attention is overlaid (0-based; -1: last)."
    ),
    rollout: bool = typer.Option(
        False, "--rollout", help="Also draw attention rollout (Abnar & Zuidema 2020)."
    ),
    head_fusion: FusionChoice = typer.Option(  # type: ignore[valid-type]
        "mean", "--head-fusion", help="How the heads of a block are combined."
    ),
    discard_ratio: float = typer.Option(
        0.0,
        "--discard-ratio",
        help="Rollout: zero this fraction of the weakest attention weights per block first "
        "(0: the paper's rollout; 0.9 gives sharper maps).",
    ),
    metric: MetricChoice = typer.Option("road", "--metric", help=METRIC_HELP),  # type: ignore[valid-type]
    checkpoint: str = typer.Option("best", "--checkpoint", help=CHECKPOINT_HELP),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="Folder for the PNGs (default: RUN/eval)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the test-image choice and ROAD's noise."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: int = typer.Option(0, "--workers", help="Threads decoding images (0: inline)."),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset folder, when it moved since training (default: the run's)."
    ),
) -> None:
    """A ViT's class-token attention: a block x head grid for one image per class (or per given
    file), the chosen block's head-fused attention overlaid on every image, and optionally
    attention rollout. Both overlays get the Grad-CAM faithfulness score (higher is better),
    stored for test images in RUN/eval/metrics.json under "attention"."""
    from classify.checkpoint import load_classifier
    from classify.evaluation.evaluate import eval_dir, update_metrics
    from classify.explain.attention_run import AttentionOptions, attention_run, require_vit
    from classify.explain.gradcam import test_images_per_class
    from core.progress import make_progress

    options = AttentionOptions(
        layer=layer,
        head_fusion=head_fusion.value,
        rollout=rollout,
        discard_ratio=discard_ratio,
        metric=metric.value,
        seed=seed,
    )
    try:
        loaded = load_classifier(name, checkpoint, runs_dir, _device(device))
        require_vit(loaded)  # before decoding any image
        if images:
            batch, labels, rows, row_labels, names = _image_files(loaded, images)
        else:
            batch, labels, rows, row_labels, names = test_images_per_class(
                loaded, per_class, seed, workers, data
            )
        target = out_dir or eval_dir(loaded.run_dir)
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
                explicit_files=bool(images),
                progress=lambda n: bar.advance(task, n),
            )
    except KeyboardInterrupt:
        raise _interrupted() from None
    for path in report.figures:
        console.print(f"wrote {path}", highlight=False)
    for key, entry in report.faithfulness.items():
        console.print(
            f"faithfulness of the {key} map ({entry['metric']}, higher is better): "
            f"[bold]{entry['value']:.4f}[/bold] ± {entry['std']:.4f} over {entry['n_images']} images",
            highlight=False,
        )
    if not images:
        update_metrics(loaded.run_dir, {"attention": report.faithfulness})
        console.print(f"stored in {eval_dir(loaded.run_dir) / 'metrics.json'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("attention")(user_errors(attention_command))
