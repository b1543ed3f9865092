"""``cli train-all``: the model variants with the same seed and budget, evaluated and ranked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from classify.training.config import TrainConfig
from classify.training.presets import CLASSIFIER_PRESETS
from classify.training.train_all import TrainAllOptions
from commands import options as opt
from commands.command import command_class
from commands.common import exit_on_interrupt, user_errors
from commands.configs import config_from, config_of, given
from core.distributed import DistConfig
from core.progress import console

_D = TrainConfig()
_O = TrainAllOptions()
_DIST = DistConfig()


def train_all_command(
    ctx: typer.Context,
    data: opt.Data = Path(_D.data),
    models: opt.Models = ",".join(_O.models),
    preset: opt.ClassifierPreset = opt.PRESET,
    prefix: Annotated[
        str, typer.Option(metavar="<text>", help="Run names are <prefix><model>.")
    ] = _O.prefix,
    runs_dir: opt.RunsDir = Path(_D.runs_dir),
    epochs: opt.Epochs = _D.epochs,
    batch_size: opt.BatchSize = _D.batch_size,
    lr: opt.LearningRate = _D.lr,
    optimizer: opt.Optimizer = _D.optimizer,
    weight_decay: opt.WeightDecay = _D.weight_decay,
    scheduler: opt.Scheduler = _D.scheduler,
    image_size: opt.ImageSize = _D.image_size,
    width: opt.Width = _D.width,
    patch_size: opt.PatchSize = _D.patch_size,
    vit_depth: opt.VitDepth = _D.vit_depth,
    vit_heads: opt.VitHeads = _D.vit_heads,
    augment: opt.Augment = _D.augment,
    pretrained: opt.Pretrained = _D.pretrained,
    weights: opt.InitWeightsFile = None,
    freeze_backbone_epochs: opt.FreezeBackboneEpochs = _D.freeze_backbone_epochs,
    val_fraction: opt.ValFraction = _D.val_fraction,
    split_seed: opt.SplitSeed = _D.split_seed,
    seed: opt.TrainSeed = _D.seed,
    device: opt.Device = _D.device,
    workers: opt.Workers = _D.workers,
    cam_method: opt.CamMethod = _O.cam_method,
    cam_per_class: opt.CamPerClass = _O.cam_per_class,
    resume: opt.Resume = _O.resume,
    overwrite: opt.Overwrite = _O.overwrite,
    nproc: opt.Nproc = _DIST.nproc,
    sync_bn: opt.SyncBn = _DIST.sync_bn,
    dist_timeout: opt.DistTimeout = _DIST.dist_timeout,
) -> None:
    """Train several models with the same data, seed and budget, and rank them.

    Each is evaluated on the test set and its CAM scored; RUNS_DIR/models.json names the best by
    validation accuracy (ties: fewer parameters). --resume keeps finished runs and continues
    unfinished ones.

    --pretrained imagenet (or --weights FILE) starts every model from ImageNet weights, at their
    width and crop size unless --width / --image-size are given; --freeze-backbone-epochs K trains
    the heads alone first.

    Several processes (`torchrun --nproc-per-node N cli.py train-all ...`, or --nproc N): each
    run as `cli train`.
    """
    from rich.table import Table

    from classify.training.init_weights import with_source_defaults
    from classify.training.train_all import train_all
    from commands.launch import launch_workers
    from core.distributed import is_main

    dist = config_of(DistConfig, ctx).validate()
    if launch_workers(ctx, dist.nproc):
        return  # rank 0 of the workers printed the table
    base = config_from(TrainConfig, ctx, presets=CLASSIFIER_PRESETS, preset=preset)
    base = with_source_defaults(base, set(given(ctx)))
    summary = exit_on_interrupt(
        lambda: train_all(base, config_of(TrainAllOptions, ctx), dist),
        hint="continue all with the same command plus --resume",
    )
    if not is_main():
        return
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
    app.command("train-all", cls=command_class(presets=CLASSIFIER_PRESETS))(
        user_errors(train_all_command)
    )
