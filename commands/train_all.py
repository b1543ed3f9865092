"""``cli train-all``: the model variants with the same seed and budget, evaluated and ranked."""

from __future__ import annotations

from pathlib import Path

import typer

from classify.training.config import AUGMENTS, OPTIMIZERS, SCHEDULERS
from classify.training.presets import CLASSIFIER_PRESETS
from classify.training.train_all import TrainAllOptions
from commands.common import user_errors
from core.progress import console, err_console

_O = TrainAllOptions()
_PRESET_HELP = "; ".join(
    f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items())
    for name, values in CLASSIFIER_PRESETS.items()
)


def train_all_command(
    data: Path = typer.Option(..., help="Dataset folder with train/<class>/ and test/<class>/."),
    models: str = typer.Option(",".join(_O.models), help="Comma-separated registry keys."),
    preset: str | None = typer.Option(
        None, help=f"Training preset ({_PRESET_HELP}); explicit options override it."
    ),
    prefix: str = typer.Option(_O.prefix, help="Run names are <prefix><model>."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding the runs."),
    epochs: int | None = typer.Option(None, help="Epochs (default: preset, else 30)."),
    batch_size: int | None = typer.Option(None, help="Images per step."),
    lr: float | None = typer.Option(None, help="Peak learning rate (default by optimizer)."),
    optimizer: str | None = typer.Option(None, help=" | ".join(OPTIMIZERS)),
    weight_decay: float | None = typer.Option(None, help="Weight decay (not on BN/bias)."),
    scheduler: str | None = typer.Option(None, help=" | ".join(SCHEDULERS)),
    image_size: int | None = typer.Option(None, help="Square image size (px)."),
    width: float | None = typer.Option(
        None, help="Channel multiplier (depth kept; ViT: embedding width)."
    ),
    patch_size: int | None = typer.Option(None, help="ViT patch size (0: an 8 x 8 token grid)."),
    vit_depth: int | None = typer.Option(None, help="ViT blocks (0: the named size's)."),
    vit_heads: int | None = typer.Option(None, help="ViT heads (0: the named size's)."),
    augment: str | None = typer.Option(None, help=" | ".join(AUGMENTS)),
    val_fraction: float | None = typer.Option(None, help="Stratified validation share of train/."),
    seed: int | None = typer.Option(None, help="Seed shared by every model."),
    device: str | None = typer.Option(None, help="auto | cpu | cuda."),
    workers: int | None = typer.Option(None, help="Threads decoding images."),
    cam_method: str = typer.Option(_O.cam_method, help="CAM method for the faithfulness column."),
    cam_per_class: int = typer.Option(
        _O.cam_per_class, help="Test images per class for the CAM grid and score (0: skip)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Keep finished runs, continue unfinished ones."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing runs."),
) -> None:
    """Train each model with the same data, seed and budget, evaluate each on the test set, and
    write RUNS_DIR/models.json naming the best by validation accuracy (ties: fewer parameters)."""
    from rich.table import Table

    from classify.models import model_names
    from classify.training.config import TrainConfig
    from classify.training.presets import apply_preset
    from classify.training.train_all import train_all
    from classify.training.trainer import TrainInterrupted
    from core.errors import UserError

    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = [m for m in chosen if m not in model_names()]
    if unknown or not chosen:
        raise UserError(f"--models {models}: unknown {unknown}; choose from {model_names()}")
    explicit = {
        "data": str(data), "runs_dir": str(runs_dir), "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay, "scheduler": scheduler,
        "image_size": image_size, "width": width, "augment": augment,
        "patch_size": patch_size, "vit_depth": vit_depth, "vit_heads": vit_heads,
        "val_fraction": val_fraction, "seed": seed, "device": device, "workers": workers,
    }  # fmt: skip
    base = apply_preset(TrainConfig(), preset, explicit)
    options = TrainAllOptions(chosen, prefix, cam_method, cam_per_class, resume, overwrite)
    try:
        summary = train_all(base, options)
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
