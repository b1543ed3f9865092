"""``cli train-all``: the model variants with the same seed and budget, evaluated and ranked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from classify.training.config import TrainConfig
from classify.training.presets import CLASSIFIER_PRESETS
from classify.training.train_all import TrainAllOptions
from commands.common import user_errors
from commands.options import (
    Augment,
    BatchSize,
    CamMethod,
    CamPerClass,
    ClassifierPreset,
    Data,
    Device,
    Epochs,
    ImageSize,
    LearningRate,
    Models,
    Optimizer,
    Overwrite,
    PatchSize,
    Resume,
    RunsDir,
    Scheduler,
    TrainSeed,
    ValFraction,
    VitDepth,
    VitHeads,
    WeightDecay,
    Width,
    Workers,
    config_from,
    config_of,
)
from core.progress import console, err_console

_D = TrainConfig()
_O = TrainAllOptions()


def train_all_command(
    ctx: typer.Context,
    data: Data,
    models: Models = ",".join(_O.models),
    preset: ClassifierPreset = None,
    prefix: Annotated[str, typer.Option(help="Run names are <prefix><model>.")] = _O.prefix,
    runs_dir: RunsDir = Path(_D.runs_dir),
    epochs: Epochs = _D.epochs,
    batch_size: BatchSize = _D.batch_size,
    lr: LearningRate = _D.lr,
    optimizer: Optimizer = _D.optimizer,
    weight_decay: WeightDecay = _D.weight_decay,
    scheduler: Scheduler = _D.scheduler,
    image_size: ImageSize = _D.image_size,
    width: Width = _D.width,
    patch_size: PatchSize = _D.patch_size,
    vit_depth: VitDepth = _D.vit_depth,
    vit_heads: VitHeads = _D.vit_heads,
    augment: Augment = _D.augment,
    val_fraction: ValFraction = _D.val_fraction,
    seed: TrainSeed = _D.seed,
    device: Device = _D.device,
    workers: Workers = _D.workers,
    cam_method: CamMethod = _O.cam_method,
    cam_per_class: CamPerClass = _O.cam_per_class,
    resume: Resume = _O.resume,
    overwrite: Overwrite = _O.overwrite,
) -> None:
    """Train each model with the same data, seed and budget, evaluate each on the test set, and
    write RUNS_DIR/models.json naming the best by validation accuracy (ties: fewer parameters).
    --resume keeps finished runs and continues unfinished ones."""
    from rich.table import Table

    from classify.training.train_all import train_all
    from classify.training.trainer import TrainInterrupted

    base = config_from(TrainConfig, ctx, presets=CLASSIFIER_PRESETS, preset=preset)
    try:
        summary = train_all(base, config_of(TrainAllOptions, ctx))
    except TrainInterrupted as stop:
        err_console.print(f"[yellow]{stop.message}[/yellow]", highlight=False, soft_wrap=True)
        err_console.print("continue all with the same command plus --resume", highlight=False)
        raise typer.Exit(130) from None
    console.print(models_table(summary, Table))
    console.print(
        f"best by validation accuracy: [bold]{summary['best']}[/bold]; "
        f"table in {runs_dir / (prefix + 'models.json')}",
        highlight=False,
    )


def models_table(summary: dict, table_cls: type) -> object:
    table = table_cls(title="models trained with the same seed and budget")
    for column in ("run", "params", "val acc", "test acc", "macro-F1", "CAM faithf.", "s/epoch"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in summary["runs"]:
        cam = row["cam_faithfulness"]
        mark = " *" if row["run"] == summary["best"] else ""
        table.add_row(
            row["run"] + mark,
            f"{row['params'] / 1e6:.2f}M",
            f"{row['val_acc']:.2%}" if row["val_acc"] is not None else "-",
            f"{row['test_acc']:.2%}",
            f"{row['macro_f1']:.3f}",
            f"{cam:.3f}" if cam is not None else "-",
            f"{row['seconds_per_epoch']:.1f}",
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("train-all")(user_errors(train_all_command))
