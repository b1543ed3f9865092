"""A classifier run's folder: config checks, resume rules, checkpoint contents, config.json.

Checkpoint layout (``runs/NAME/last.pt`` and ``best.pt``, format ``shoegan-classifier/1``): model and
training configs, class names, model/optimizer/scheduler/scaler states, completed epochs, best and
last validation accuracy, RNG states, library versions, and, when a run was interrupted mid-epoch,
``position``: where in that epoch it stopped (batch index, the epoch generator's state in
``rng["epoch_generator"]``, running sums), so ``--resume`` continues with the identical stream.
``last.pt`` is the newest state (possibly mid-epoch); ``best.pt`` is the end of the epoch with the
best validation accuracy (ties keep the earlier epoch).

Resuming uses the saved configuration. Only these may differ from it: the locating and runtime
settings in RUNTIME_FIELDS (where the data and the run live, device, decode threads; the decoded
training images are checked to be the same), and ``epochs``, which may be raised to extend a run.
An extended run recomputes its learning-rate schedule over the new total from the step it reached,
so it is not the same as a run started with the larger ``epochs``.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import platform
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from classify.models import ModelConfig, model_names
from classify.training.config import TRAIN_ON, TrainConfig
from classify.training.optim import OPTIMIZERS, SCHEDULES
from classify.transforms import AUGMENTATIONS
from core.data import RESIZE_MODES, ImageTensors
from core.errors import UserError
from core.io import load_checkpoint

CHECKPOINT_FORMAT = "shoegan-classifier/1"
RUNTIME_FIELDS = ("data", "name", "runs_dir", "device", "workers")


@dataclass
class PartialEpoch:
    """How far an interrupted epoch got (batches are 0-based; ``batch`` of them are done)."""

    epoch: int
    batch: int
    generator_state: torch.Tensor
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "train_seconds": self.train_seconds,
        }


@dataclass
class RunState:
    """Progress of a run between batches; everything here goes into the checkpoint."""

    completed: int = 0  # finished epochs
    best_val_acc: float = 0.0
    best_epoch: int = 0  # 0: no epoch finished yet
    val_acc: float | None = None
    partial: PartialEpoch | None = None


def run_dir_of(cfg: TrainConfig) -> Path:
    return Path(cfg.runs_dir) / cfg.name


def model_config_of(cfg: TrainConfig, num_classes: int) -> ModelConfig:
    return ModelConfig(
        name=cfg.model,
        num_classes=num_classes,
        image_size=cfg.image_size,
        width=cfg.width,
        cbam_pool_types=tuple(cfg.cbam_pool_types),
        patch_size=cfg.patch_size,
        vit_depth=cfg.vit_depth,
        vit_heads=cfg.vit_heads,
    )


def _choice(option: str, value: str, choices: Any) -> None:
    if value not in choices:
        raise UserError(f"{option} {value!r}: choose one of {', '.join(choices)}")


def check_train_config(cfg: TrainConfig) -> None:
    """One-line UserError for any setting no run can use (before anything is loaded or written)."""
    _choice("--model", cfg.model, model_names())
    _choice("--optimizer", cfg.optimizer, list(OPTIMIZERS))
    _choice("--scheduler", cfg.scheduler, list(SCHEDULES))
    _choice("--augment", cfg.augment, list(AUGMENTATIONS))
    _choice("--resize-mode", cfg.resize_mode, RESIZE_MODES)
    _choice("--train-on", cfg.train_on, list(TRAIN_ON))
    name = cfg.name
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(
            f"--name {name!r}: use a plain folder name (no slashes), e.g. resnet50-cbam"
        )
    checks = [
        (cfg.epochs >= 1, f"--epochs {cfg.epochs}: must be >= 1"),
        (cfg.batch_size >= 2, f"--batch-size {cfg.batch_size}: must be >= 2 (BatchNorm)"),
        (cfg.lr is None or cfg.lr > 0, f"--lr {cfg.lr}: must be > 0"),
        (0 <= cfg.momentum < 1, f"--momentum {cfg.momentum}: must be in [0, 1)"),
        (cfg.weight_decay >= 0, f"--weight-decay {cfg.weight_decay}: must be >= 0"),
        (cfg.warmup_epochs >= 0, f"--warmup-epochs {cfg.warmup_epochs}: must be >= 0"),
        (
            0 <= cfg.label_smoothing < 1,
            f"--label-smoothing {cfg.label_smoothing}: must be in [0, 1)",
        ),
        (0 <= cfg.val_fraction < 1, f"--val-fraction {cfg.val_fraction}: must be in [0, 1)"),
        (cfg.seed >= 0, f"--seed {cfg.seed}: must be >= 0"),
        (cfg.workers >= 0, f"--workers {cfg.workers}: must be >= 0"),
        (cfg.width > 0, f"--width {cfg.width}: must be > 0 (e.g. 0.25 or 1.0)"),
        (cfg.image_size >= 8, f"--image-size {cfg.image_size}: use at least 8 px"),
        (
            cfg.epoch_size is None or cfg.epoch_size >= 2,
            f"--epoch-size {cfg.epoch_size}: must be >= 2 images",
        ),
        (
            cfg.synthetic_ratio is None or cfg.synthetic_ratio >= 0,
            f"--synthetic-ratio {cfg.synthetic_ratio}: must be >= 0",
        ),
        (
            not cfg.nesterov or (cfg.optimizer == "sgd" and cfg.momentum > 0),
            "--nesterov: needs --optimizer sgd with --momentum > 0",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def resume_config(saved: TrainConfig, requested: TrainConfig, run_dir: Path) -> TrainConfig:
    """The configuration a resumed run continues with (see the module docstring for the rules)."""

    def value(cfg: TrainConfig, name: str) -> Any:
        return cfg.learning_rate if name == "lr" else getattr(cfg, name)  # --lr 0.1 == default

    differ = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in RUNTIME_FIELDS + ("epochs",)
        and value(saved, f.name) != value(requested, f.name)
    ]
    if differ:
        listing = ", ".join(
            f"{n} (saved {getattr(saved, n)!r}, given {getattr(requested, n)!r})" for n in differ
        )
        raise UserError(
            f"{run_dir}: --resume continues with the run's saved settings, but these differ: "
            f"{listing}; drop those options or start a new --name"
        )
    if requested.epochs < saved.epochs:
        raise UserError(
            f"--epochs {requested.epochs}: {run_dir} was started for {saved.epochs} epochs; "
            "a resumed run may only be extended (raise --epochs or drop it)"
        )
    runtime = {name: getattr(requested, name) for name in RUNTIME_FIELDS}
    return replace(saved, epochs=requested.epochs, **runtime)


def saved_train_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig stored in ``run_dir/last.pt`` (what ``--resume`` continues with)."""
    checkpoint = load_checkpoint(Path(run_dir) / "last.pt")
    return TrainConfig.from_dict(checkpoint["train_config"])


def versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
    }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def images_sha256(*sets: ImageTensors) -> str:
    """Fingerprint of decoded training images and labels (a resumed run must see the same ones)."""
    digest = hashlib.sha256()
    for tensors in sets:
        digest.update(tensors.images.contiguous().numpy().tobytes())
        digest.update(tensors.labels.numpy().tobytes())
    return digest.hexdigest()


def dataset_summary(
    root: Path, train: ImageTensors, val: ImageTensors, real_counts: list[int], fingerprint: str
) -> dict[str, Any]:
    """config.json's "dataset": the real images only (synthetic ones are under "synthetic")."""
    names = train.class_names
    return {
        "root": str(root),
        "n_train": sum(real_counts),
        "n_val": len(val),
        "train_class_counts": dict(zip(names, real_counts, strict=True)),
        "val_class_counts": dict(zip(names, val.class_counts(), strict=True)),
        "skipped": [{"path": p, "reason": r} for p, r in train.skipped],
        "train_images_sha256": fingerprint,
    }


def run_config_json(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    class_names: list[str],
    dataset: dict[str, Any],
    synthetic: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``config.json``; on resume ``previous`` keeps the creation time."""
    out = {
        "train": cfg.to_dict(),
        "model": model_cfg.to_dict(),
        "class_names": list(class_names),
        "dataset": dataset,
        "synthetic": synthetic,
        "versions": versions(),
        "created": now(),
    }
    if previous is not None:
        out["created"] = previous.get("created", out["created"])
        out["resumed"] = [*previous.get("resumed", []), now()]
    return out


def checkpoint_dict(
    *,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    class_names: list[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    state: RunState,
    rng: dict[str, Any],
    data_fingerprint: str,
    steps_per_epoch: int,
) -> dict[str, Any]:
    """Everything to rebuild the model from the file alone and to resume exactly."""
    partial = state.partial
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": model_cfg.to_dict(),
        "train_config": cfg.to_dict(),
        "class_names": list(class_names),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": state.completed,
        "best_val_acc": state.best_val_acc,
        "best_epoch": state.best_epoch,
        "val_acc": state.val_acc,
        "position": partial.to_dict() if partial else None,
        "rng": {**rng, "epoch_generator": partial.generator_state if partial else None},
        "data": {"train_images_sha256": data_fingerprint, "steps_per_epoch": steps_per_epoch},
        "versions": versions(),
    }


def state_from_checkpoint(checkpoint: dict[str, Any]) -> RunState:
    position = checkpoint.get("position")
    partial = None
    if position is not None:
        partial = PartialEpoch(generator_state=checkpoint["rng"]["epoch_generator"], **position)
    return RunState(
        completed=int(checkpoint["epoch"]),
        best_val_acc=float(checkpoint["best_val_acc"]),
        best_epoch=int(checkpoint["best_epoch"]),
        val_acc=checkpoint.get("val_acc"),
        partial=partial,
    )


def check_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: not a classifier checkpoint of this toolkit (format "
            f"{checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT!r})"
        )
