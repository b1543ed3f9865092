"""``cli train``: train one classifier into ``runs/NAME/`` (options mirror TrainConfig)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import typer

from classify.training.config import AUGMENTS, DEFAULT_LR, OPTIMIZERS, SCHEDULERS, TrainConfig
from commands.common import user_errors
from core.progress import console, err_console

_D = TrainConfig()


def _choices(values: tuple[str, ...]) -> str:
    return " | ".join(values)


def train_command(
    ctx: typer.Context,
    preset: str | None = typer.Option(
        None,
        help="Training preset (quick | full, as in train-all); options given explicitly override "
        "it.",
    ),
    model: str = typer.Option(
        _D.model,
        help="Model registry key: resnet50 | resnet50-se | resnet50-cbam | vit-tiny | vit-small "
        "(`cli models`).",
    ),
    data: Path = typer.Option(
        Path(_D.data), help="Dataset folder with train/<class>/ and test/<class>/."
    ),
    name: str = typer.Option(_D.name, help="Run name: the run is written to RUNS_DIR/NAME/."),
    runs_dir: Path = typer.Option(Path(_D.runs_dir), help="Folder holding the runs."),
    epochs: int = typer.Option(
        _D.epochs, help="Epochs to train (with --resume: may be raised to extend)."
    ),
    batch_size: int = typer.Option(
        _D.batch_size, help="Images per step (an epoch's batches are near-equal)."
    ),
    lr: float | None = typer.Option(
        _D.lr,
        help="Peak learning rate (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ").",
        show_default=False,
    ),
    optimizer: str = typer.Option(_D.optimizer, help=_choices(OPTIMIZERS)),
    momentum: float = typer.Option(_D.momentum, help="SGD momentum."),
    nesterov: bool = typer.Option(
        _D.nesterov, "--nesterov/--no-nesterov", help="Nesterov momentum (SGD)."
    ),
    weight_decay: float = typer.Option(
        _D.weight_decay, help="Weight decay on conv/linear weights (never on BatchNorm or biases)."
    ),
    scheduler: str = typer.Option(
        _D.scheduler, help=f"{_choices(SCHEDULERS)}; stepped every batch."
    ),
    warmup_epochs: float = typer.Option(
        _D.warmup_epochs, help="Linear warm-up of the cosine schedule (at most 1/4 of the run)."
    ),
    label_smoothing: float = typer.Option(
        _D.label_smoothing, help="Label smoothing of the training loss."
    ),
    image_size: int = typer.Option(
        _D.image_size, help="Images are resized to this square size (px)."
    ),
    width: float = typer.Option(
        _D.width,
        help="Channel multiplier (depth kept); e.g. 0.25 for CPU. ViT: scales the embedding width.",
    ),
    patch_size: int = typer.Option(
        _D.patch_size, help="ViT patch size in px (0: image size / 8, an 8 x 8 token grid)."
    ),
    vit_depth: int = typer.Option(_D.vit_depth, help="ViT blocks (0: the named size's)."),
    vit_heads: int = typer.Option(_D.vit_heads, help="ViT attention heads (0: the named size's)."),
    cbam_pool_types: str = typer.Option(
        ",".join(_D.cbam_pool_types),
        help="CBAM channel-gate pools, comma-separated: avg,max,lp,lse.",
    ),
    resize_mode: str = typer.Option(
        _D.resize_mode, help="crop | squash | pad (how images become square)."
    ),
    augment: str = typer.Option(_D.augment, help=f"Train-time augmentation: {_choices(AUGMENTS)}."),
    hflip: bool = typer.Option(_D.hflip, "--hflip/--no-hflip", help="Random horizontal flips."),
    val_fraction: float = typer.Option(
        _D.val_fraction, help="Stratified validation share of train/."
    ),
    seed: int = typer.Option(
        _D.seed, help="Seed of the split, the initialisation, order and augmentation."
    ),
    device: str = typer.Option(_D.device, help="auto | cpu | cuda (auto: CUDA when present)."),
    workers: int = typer.Option(_D.workers, help="Threads decoding images (0: inline)."),
    strict: bool = typer.Option(
        _D.strict, "--strict", help="Unreadable images are an error, not skipped."
    ),
    synthetic: Path | None = typer.Option(
        None,
        help="A `cli synthesize` folder (<class>/*.png + manifest.json) added to the training "
        "split; validation and test stay real.",
    ),
    synthetic_ratio: float | None = typer.Option(
        None, help="Synthetic images per real training image of each class (default: all)."
    ),
    train_on: str = typer.Option(
        _D.train_on, help="real (+ --synthetic) | synthetic (synthetic only: what `cli cas` does)."
    ),
    epoch_size: int | None = typer.Option(
        None,
        help="Images drawn per epoch (default: the whole training set); set it to the real set's "
        "size to give an augmented run its baseline's number of optimizer steps.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue RUNS_DIR/NAME from its last.pt."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run of that name."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a classifier on a folder-per-class dataset into RUNS_DIR/NAME/ (config.json,
    history.jsonl, last.pt, best.pt by validation accuracy). Ctrl-C saves and tells how to resume.

    --resume continues with the run's saved settings and refuses options that differ from them,
    except --data, --device, --workers and --epochs (raise it to extend the run; the learning-rate
    schedule is then recomputed over the new total).
    """
    from classify.training.run import saved_train_config
    from classify.training.trainer import TrainInterrupted, train
    from core.io import prepare_run_dir

    values: dict[str, Any] = {
        "model": model, "data": str(data), "name": name, "runs_dir": str(runs_dir),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
        "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
        "scheduler": scheduler, "warmup_epochs": warmup_epochs,
        "label_smoothing": label_smoothing, "image_size": image_size, "width": width,
        "patch_size": patch_size, "vit_depth": vit_depth, "vit_heads": vit_heads,
        "cbam_pool_types": tuple(p.strip() for p in cbam_pool_types.split(",") if p.strip()),
        "resize_mode": resize_mode, "augment": augment, "hflip": hflip,
        "val_fraction": val_fraction, "seed": seed, "device": device, "workers": workers,
        "strict": strict, "synthetic": str(synthetic) if synthetic else None,
        "synthetic_ratio": synthetic_ratio, "train_on": train_on, "epoch_size": epoch_size,
    }  # fmt: skip
    if resume:
        run_dir = runs_dir / name
        prepare_run_dir(run_dir, resume=True, overwrite=overwrite)  # checks only
        given = {k: v for k, v in values.items() if _given(ctx, k)}
        given.update(name=name, runs_dir=str(runs_dir))
        cfg = replace(saved_train_config(run_dir), **given)
    else:
        known = {f.name for f in fields(TrainConfig)}
        cfg = TrainConfig(**{k: v for k, v in values.items() if k in known})
        if preset:
            from classify.training.presets import apply_preset

            explicit = {k: v for k, v in values.items() if _given(ctx, k)}
            cfg = apply_preset(cfg, preset, explicit)
    try:
        result = train(cfg, resume=resume, overwrite=overwrite, progress=progress)
    except TrainInterrupted as stop:
        err_console.print(f"[yellow]{stop.message}[/yellow]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    best = (
        f"best val acc {result.best_val_acc:.2%} (epoch {result.best_epoch})"
        if result.best_val_acc is not None
        else "no validation split (best.pt = last epoch)"
    )
    console.print(
        f"{result.run_dir}: {result.epochs} epochs, {best}, "
        f"{result.seconds_per_epoch:.1f} s/epoch; next: `cli evaluate {name} --runs-dir {runs_dir}`",
        highlight=False,
        soft_wrap=True,
    )


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was set on the command line (or by environment), not defaulted."""
    source = ctx.get_parameter_source(name)
    # Compared by name: Typer may bring its own copy of click's ParameterSource enum.
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def register(app: typer.Typer) -> None:
    app.command("train")(user_errors(train_command))
