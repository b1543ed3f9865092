"""``cli evaluate``, ``cli gradcam`` and ``cli predict``: a trained classifier run on its test set,
its class activation maps (with a faithfulness number), and on single image files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from classify.explain.methods import CAM_METHODS, CAM_TARGETS
from commands.command import command_class
from commands.common import interrupted_exit, one_process, user_errors
from commands.options import (
    CamMethod,
    Checkpoint,
    CnnPhotoModel,
    Device,
    ExplainImages,
    ExplainPerClass,
    ExplainSeed,
    Metric,
    PhotoPretrained,
    PhotoWeights,
    Run,
    RunData,
    RunOrPhoto,
    RunsDir,
    Workers,
    choice,
    photos_or_run,
)
from core.progress import console, err_console

# --- evaluate --------------------------------------------------------------------------------


def print_metrics(metrics: dict[str, Any], out_dir: Path) -> None:
    from rich.table import Table

    table = Table(
        title=f"{metrics['run']}: test set, {metrics['checkpoint']}.pt (epoch {metrics['epoch']})"
    )
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in metrics["per_class"].items():
        table.add_row(
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    console.print(table)
    console.print(
        f"accuracy [bold]{100 * metrics['accuracy']:.2f}%[/bold]  macro-F1 "
        f"[bold]{metrics['macro_f1']:.4f}[/bold]  test loss {metrics['loss']:.4f}  "
        f"n_test {metrics['n_test']}",
        highlight=False,
    )
    console.print(
        f"wrote {out_dir}/ ({', '.join(metrics.get('files', []))}, metrics.json)", highlight=False
    )


def evaluate_command(
    name: Run,
    checkpoint: Checkpoint = "best",
    runs_dir: RunsDir = Path("runs"),
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    device: Device = "auto",
    workers: Workers = 0,
    data: RunData = None,
) -> None:
    """Evaluate a trained run on its test split and write RUN/eval/.

    Writes metrics.json (accuracy, macro-F1, per-class precision/recall/F1, test loss),
    confusion.png/.json, curves.png and predictions.csv, and prints the per-class metrics.
    """
    from classify.checkpoint import load_classifier
    from classify.evaluation.evaluate import evaluate_loaded
    from core.device import setup_device
    from core.errors import UserError
    from core.evaldir import eval_dir

    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    try:
        loaded = load_classifier(name, checkpoint, runs_dir, setup_device(device))
        metrics = evaluate_loaded(loaded, batch_size=batch_size, workers=workers, data=data)
    except KeyboardInterrupt:
        raise interrupted_exit() from None
    print_metrics(metrics, eval_dir(loaded.run_dir))


# --- gradcam ---------------------------------------------------------------------------------


def gradcam_command(
    name: RunOrPhoto,
    images: ExplainImages = None,
    model: CnnPhotoModel = None,
    pretrained: PhotoPretrained = "none",
    weights: PhotoWeights = None,
    cam_method: CamMethod = "gradcam",
    aug_smooth: Annotated[
        bool,
        typer.Option(
            "--aug-smooth", help="Average maps over flips and brightness changes (~6x slower)."
        ),
    ] = False,
    eigen_smooth: Annotated[
        bool,
        typer.Option(
            "--eigen-smooth", help="Keep the first principal component (less noisy maps)."
        ),
    ] = False,
    cam_per_class: ExplainPerClass = 4,
    checkpoint: Checkpoint = "best",
    target: Annotated[
        choice(CAM_TARGETS), typer.Option(help="Explain the predicted class or the true class.")
    ] = "predicted",
    metric: Metric = "road",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output PNG (default: RUN/eval/gradcam_<cam method>.png; with --pretrained or "
            "--weights: reports/explain-<model>/gradcam_<cam method>.png)."
        ),
    ] = None,
    seed: ExplainSeed = 0,
    batch_size: Annotated[
        int,
        typer.Option(help="Images per CAM pass (slow methods: masked copies per forward pass)."),
    ] = 16,
    runs_dir: RunsDir = Path("runs"),
    device: Device = "auto",
    workers: Workers = 0,
    data: RunData = None,
) -> None:
    """Class activation maps as a grid PNG, with a faithfulness score.

    Rows are classes (--cam-per-class seeded-random test images each) or the given image files.
    The faithfulness score (higher is better) is printed and, for test images, stored in
    RUN/eval/metrics.json under "cam", keyed by the CAM method. With --pretrained imagenet or
    --weights FILE there is no run: every positional argument is a photo, one row each, labelled
    with --model's top-1 ImageNet class, whose map is shown.
    """
    from classify.checkpoint import load_classifier
    from classify.explain.cams import CamOptions, check_options
    from classify.explain.gradcam_run import render_cams
    from classify.explain.selection import given_images, test_images_per_class
    from classify.pretrained_model import load_imagenet_classifier, photo_out_dir
    from core.device import setup_device
    from core.evaldir import eval_dir, update_metrics
    from core.progress import make_progress

    options = CamOptions(
        method=cam_method,
        target=target,
        aug_smooth=aug_smooth,
        eigen_smooth=eigen_smooth,
        batch_size=batch_size,
        metric=metric,
        seed=seed,
    )
    check_options(options)
    photos = photos_or_run(name, images, pretrained, weights, model)
    try:
        if photos is not None:
            loaded = load_imagenet_classifier(
                model or "resnet50", pretrained, weights, setup_device(device)
            )
            batch, labels, rows, row_labels, names = given_images(loaded, photos)
            out = out or photo_out_dir(loaded.model_config.name) / f"gradcam_{options.method}.png"
        else:
            loaded = load_classifier(name, checkpoint, runs_dir, setup_device(device))
            if images:
                batch, labels, rows, row_labels, names = given_images(loaded, images)
            else:
                batch, labels, rows, row_labels, names = test_images_per_class(
                    loaded, cam_per_class, seed, workers, data
                )
        if CAM_METHODS[options.method].slow_on_cpu and loaded.device.type == "cpu":
            # Printed now, not via warnings (user_errors shows those when the command ends).
            err_console.print(
                f"[yellow]warning:[/yellow] {options.method} on the CPU runs one forward pass per "
                f"target-layer channel per image ({batch.shape[0]} images): expect minutes",
                highlight=False,
            )
        path = out or eval_dir(loaded.run_dir) / f"gradcam_{options.method}.png"
        with make_progress(transient=True) as bar:
            task = bar.add_task(options.method, total=batch.shape[0], info=loaded.device.type)
            report = render_cams(
                loaded,
                batch,
                labels,
                rows,
                row_labels,
                path,
                options,
                names,
                progress=lambda n: bar.advance(task, n),
                label_predicted=photos is not None,
            )
    except KeyboardInterrupt:
        raise interrupted_exit() from None
    faith = report.faithfulness
    test_images = loaded.run_dir is not None and not images
    if test_images:
        update_metrics(loaded.run_dir, {"cam": {options.method: faith}})
    console.print(f"wrote {path}", highlight=False)
    console.print(
        f"faithfulness ({faith['metric']}, higher is better): [bold]{faith['value']:.4f}[/bold] "
        f"± {faith['std']:.4f} over {faith['n_images']} images"
        + (f"; stored in {eval_dir(loaded.run_dir) / 'metrics.json'}" if test_images else ""),
        highlight=False,
    )


# --- predict ---------------------------------------------------------------------------------


def predict_command(
    name: RunOrPhoto,
    images: Annotated[
        list[Path] | None, typer.Argument(metavar="IMAGES", help="Image files to classify.")
    ] = None,
    top_k: Annotated[int, typer.Option(help="Classes shown per image (at most all classes).")] = 3,
    model: CnnPhotoModel = None,
    pretrained: PhotoPretrained = "none",
    weights: PhotoWeights = None,
    checkpoint: Checkpoint = "best",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    runs_dir: RunsDir = Path("runs"),
    device: Device = "auto",
) -> None:
    """Classify image files with a trained run or ImageNet weights: top-k classes per image.

    With a run (RUN IMAGES...): the run's classes, images decoded as it was trained. With
    --pretrained imagenet or --weights FILE (IMAGES... only, no run): --model's ImageNet classes
    and probabilities, each photo prepared as the weights' own transforms prepare it.
    """
    import json

    from rich.table import Table

    from classify.checkpoint import load_classifier
    from classify.evaluation.predict import predict_files
    from classify.pretrained_model import load_imagenet_classifier
    from core.device import setup_device

    photos = photos_or_run(name, images, pretrained, weights, model)
    if photos is None:
        loaded = load_classifier(name, checkpoint, runs_dir, setup_device(device))
        results = predict_files(loaded, images or [], top_k)
        about = {"run": loaded.name, "checkpoint": loaded.which}
    else:
        loaded = load_imagenet_classifier(
            model or "resnet50", pretrained, weights, setup_device(device)
        )
        results = predict_files(loaded, photos, top_k)
        about = {"model": loaded.model_config.name, "weights": loaded.source}
    if as_json:
        typer.echo(json.dumps({**about, "predictions": results}, indent=2))
        return
    for result in results:
        console.print(f"[bold]{result['file']}[/bold]", highlight=False, soft_wrap=True)
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for rank, entry in enumerate(result["top"], start=1):
            table.add_row(str(rank), entry["class"], f"{100 * entry['probability']:.2f}%")
        console.print(table)


GRADCAM_EXAMPLES = """Examples:

cli gradcam resnet50 --cam-method gradcam++
cli gradcam resnet50 photos/a.jpg photos/b.jpg
cli gradcam photos/cat.jpg --model resnet50 --pretrained imagenet --cam-method scorecam
"""
PREDICT_EXAMPLES = """Examples:

cli predict resnet50 photos/a.jpg photos/b.jpg
cli predict photos/cat.jpg --model vit-b16 --pretrained imagenet --top-k 5
cli predict photos/cat.jpg --model resnet50 --weights resnet50.pth
"""


def register(app: typer.Typer) -> None:
    app.command("evaluate")(user_errors(evaluate_command))
    renamed = {"--method": "--cam-method", "--per-class": "--cam-per-class"}
    app.command("gradcam", cls=command_class(renamed=renamed), epilog=GRADCAM_EXAMPLES)(
        user_errors(one_process("gradcam")(gradcam_command))
    )
    app.command("predict", epilog=PREDICT_EXAMPLES)(
        user_errors(one_process("predict")(predict_command))
    )
