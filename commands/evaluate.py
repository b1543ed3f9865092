"""``cli evaluate``, ``cli gradcam`` and ``cli predict``: a trained classifier run on its test set,
its class activation maps (with a faithfulness number), and on single image files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from classify.explain.methods import CAM_METHODS, CAM_TARGETS, FAITHFULNESS_METRICS
from commands.common import user_errors
from core.progress import console, err_console

# Typer shows and validates choices from an Enum; build them from the registries (one source).
MethodChoice = Enum("MethodChoice", [(k, k) for k in CAM_METHODS], type=str)  # type: ignore[misc]
MetricChoice = Enum("MetricChoice", [(k, k) for k in FAITHFULNESS_METRICS], type=str)  # type: ignore[misc]
TargetChoice = Enum("TargetChoice", [(k, k) for k in CAM_TARGETS], type=str)  # type: ignore[misc]

RUN_HELP = "Run name under --runs-dir, or a path to a run folder."
CHECKPOINT_HELP = "Which checkpoint: best (highest val accuracy) or last (or a path to a .pt file)."
METRIC_HELP = "Faithfulness metric, higher is better for both. " + " | ".join(
    f"{k}: {m.description}" for k, m in FAITHFULNESS_METRICS.items()
)


def _device(name: str) -> Any:
    from core.device import configure_cpu_threads, resolve_device

    device = resolve_device(name)
    if device.type == "cpu":
        configure_cpu_threads()
    return device


def _interrupted() -> typer.Exit:
    err_console.print(
        "[yellow]interrupted[/yellow]: nothing half-written (files are replaced "
        "atomically); run the command again",
        highlight=False,
    )
    return typer.Exit(130)


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
    name: str = typer.Argument(..., help=RUN_HELP),
    checkpoint: str = typer.Option("best", "--checkpoint", help=CHECKPOINT_HELP),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: int = typer.Option(0, "--workers", help="Threads decoding test images (0: inline)."),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset folder, when it moved since training (default: the run's)."
    ),
) -> None:
    """Evaluate a trained run on its test split and write RUN/eval/.

    Writes metrics.json (accuracy, macro-F1, per-class precision/recall/F1, test loss),
    confusion.png/.json, curves.png and predictions.csv, and prints the per-class metrics."""
    from classify.checkpoint import load_classifier
    from classify.evaluation.evaluate import eval_dir, evaluate_loaded
    from core.errors import UserError

    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    try:
        loaded = load_classifier(name, checkpoint, runs_dir, _device(device))
        metrics = evaluate_loaded(loaded, batch_size=batch_size, workers=workers, data=data)
    except KeyboardInterrupt:
        raise _interrupted() from None
    print_metrics(metrics, eval_dir(loaded.run_dir))


# --- gradcam ---------------------------------------------------------------------------------


def gradcam_command(
    name: str = typer.Argument(..., help=RUN_HELP),
    images: list[Path] | None = typer.Argument(
        None,
        help="Image files to explain (true label unknown, shown as '?'); default: "
        "--per-class test images.",
    ),
    method: MethodChoice = typer.Option(  # type: ignore[valid-type]
        "gradcam",
        "--method",
        help="CAM method. scorecam runs one forward pass per channel of the target layer (2,048 "
        "for ResNet-50) per image: fine on a GPU, ~20 s per 64 px image on a CPU.",
    ),
    aug_smooth: bool = typer.Option(
        False, "--aug-smooth", help="Average maps over flips and brightness changes (~6x slower)."
    ),
    eigen_smooth: bool = typer.Option(
        False, "--eigen-smooth", help="Keep the first principal component (less noisy maps)."
    ),
    per_class: int = typer.Option(4, "--per-class", help="Seeded-random test images per class."),
    checkpoint: str = typer.Option("best", "--checkpoint", help=CHECKPOINT_HELP),
    target: TargetChoice = typer.Option(  # type: ignore[valid-type]
        "predicted", "--target", help="Explain the predicted class or the true class."
    ),
    metric: MetricChoice = typer.Option("road", "--metric", help=METRIC_HELP),  # type: ignore[valid-type]
    out: Path | None = typer.Option(
        None, "--out", help="Output PNG (default: RUN/eval/gradcam_<method>.png)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the test-image choice and ROAD's noise."),
    batch_size: int = typer.Option(
        16, "--batch-size", help="Images per CAM pass (scorecam: masked copies per forward pass)."
    ),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: int = typer.Option(0, "--workers", help="Threads decoding images (0: inline)."),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset folder, when it moved since training (default: the run's)."
    ),
) -> None:
    """Class activation maps as a grid PNG, with a faithfulness score.

    Rows are classes (--per-class K seeded-random test images each) or the given image files.
    The faithfulness score (higher is better) is printed and, for test images, stored in
    RUN/eval/metrics.json under "cam" -> METHOD."""
    from classify.checkpoint import load_classifier
    from classify.evaluation.evaluate import eval_dir, update_metrics
    from classify.explain.gradcam import (
        CamOptions,
        check_options,
        render_cams,
        test_images_per_class,
    )
    from core.progress import make_progress

    options = CamOptions(
        method=method.value,
        target=target.value,
        aug_smooth=aug_smooth,
        eigen_smooth=eigen_smooth,
        batch_size=batch_size,
        metric=metric.value,
        seed=seed,
    )
    check_options(options)
    try:
        loaded = load_classifier(name, checkpoint, runs_dir, _device(device))
        if images:
            batch, labels, rows, row_labels, names = _image_files(loaded, images)
        else:
            batch, labels, rows, row_labels, names = test_images_per_class(
                loaded, per_class, seed, workers, data
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
            )
    except KeyboardInterrupt:
        raise _interrupted() from None
    faith = report.faithfulness
    if not images:
        update_metrics(loaded.run_dir, {"cam": {options.method: faith}})
    console.print(f"wrote {path}", highlight=False)
    console.print(
        f"faithfulness ({faith['metric']}, higher is better): [bold]{faith['value']:.4f}[/bold] "
        f"± {faith['std']:.4f} over {faith['n_images']} images"
        + ("" if images else f"; stored in {eval_dir(loaded.run_dir) / 'metrics.json'}"),
        highlight=False,
    )


def _image_files(loaded: Any, images: list[Path]) -> tuple:
    from classify.evaluation.predict import load_image_files

    batch = load_image_files(images, loaded.image_size, loaded.train_config.resize_mode)
    rows = [[i] for i in range(len(images))]
    # No row labels: each image's file name is printed under it.
    return batch, None, rows, None, [p.name for p in images]


# --- predict ---------------------------------------------------------------------------------


def predict_command(
    name: str = typer.Argument(..., help=RUN_HELP),
    images: list[Path] = typer.Argument(..., help="Image files to classify."),
    top_k: int = typer.Option(3, "--top-k", help="Classes shown per image (at most all classes)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help=CHECKPOINT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the runs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Classify image files with a trained run: top-k classes and probabilities per image."""
    import json

    from rich.table import Table

    from classify.checkpoint import load_classifier
    from classify.evaluation.predict import predict_files

    loaded = load_classifier(name, checkpoint, runs_dir, _device(device))
    results = predict_files(loaded, images, top_k)
    if as_json:
        typer.echo(
            json.dumps(
                {"run": loaded.name, "checkpoint": loaded.which, "predictions": results}, indent=2
            )
        )
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


def register(app: typer.Typer) -> None:
    app.command("evaluate")(user_errors(evaluate_command))
    app.command("gradcam")(user_errors(gradcam_command))
    app.command("predict")(user_errors(predict_command))
