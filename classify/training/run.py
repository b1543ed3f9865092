"""What a classifier run stores: resume rules, checkpoint contents, config.json (the folder's
lifecycle itself is :mod:`core.rundir`, shared with the GAN).

Checkpoint layout (``runs/NAME/last.pt`` and ``best.pt``, format ``shoegan-classifier/1``): model and
training configs (``model_config``, ``config``; older runs: ``train_config``), class names,
model/optimizer/scheduler/scaler states, completed epochs, best and last validation accuracy, RNG states, library versions, and, when a run was interrupted mid-epoch,
``position``: where in that epoch it stopped (batch index, the epoch generator's state in
``rng["epoch_generator"]`` and, with ``--synthetic-batch``, the synthetic part's in
``rng["synthetic_generator"]``, running sums), so ``--resume`` continues with the identical stream.
With ``--synthetic-bn separate`` the auxiliary BatchNorms' entries are under ``aux_bn``, apart
from ``model``, which stays a plain model's state dict; a teacher's soft targets are not stored,
only their hash (``data.teacher_targets_sha256``), as they are recomputed on resume.
``last.pt`` is the newest state (possibly mid-epoch); ``best.pt`` is the end of the epoch with the
best validation accuracy (ties keep the earlier epoch).

Resuming uses the saved configuration. Only these may differ from it: the locating and runtime
settings in RUNTIME_FIELDS (where the data and the run live, device, decode threads; the decoded
training images are checked to be the same), and ``epochs``, which may be raised to extend a run.
An extended run recomputes its learning-rate schedule over the new total from the step it reached,
so it is not the same as a run started with the larger ``epochs``. A run with
``--finetune-real-epochs`` can be extended only while it is still in its main epochs (the
finetune epochs then follow the new total); once a finetune epoch has begun, a raised ``epochs``
is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from classify.checkpoint import CHECKPOINT_FORMAT
from classify.models import ModelConfig
from classify.models.dual_bn import split_state
from classify.training.config import TrainConfig
from core.data import ImageTensors
from core.errors import UserError
from core.resume import refuse_changed, saved_config
from core.rundir import CONFIG_KEY, versions

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
    synthetic_generator_state: torch.Tensor | None = None  # --synthetic-batch's own stream
    synthetic_loss_sum: float = 0.0  # --synthetic-batch: the synthetic part's CE sum
    synthetic_seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "train_seconds": self.train_seconds,
            "synthetic_loss_sum": self.synthetic_loss_sum,
            "synthetic_seen": self.synthetic_seen,
        }


@dataclass
class RunState:
    """Progress of a run between batches; everything here goes into the checkpoint."""

    completed: int = 0  # finished epochs
    best_val_acc: float = 0.0
    best_epoch: int = 0  # 0: no epoch finished yet
    val_acc: float | None = None
    partial: PartialEpoch | None = None


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


def resume_config(saved: TrainConfig, requested: TrainConfig, run_dir: Path) -> TrainConfig:
    """The configuration a resumed run continues with (see the module docstring for the rules)."""

    def value(cfg: TrainConfig, name: str) -> Any:
        return cfg.resolved(name)  # --lr 2e-3 == the AdamW default

    names = [f.name for f in fields(TrainConfig) if f.name not in RUNTIME_FIELDS + ("epochs",)]
    refuse_changed(saved, requested, names, run_dir, value)
    if requested.epochs < saved.epochs:
        raise UserError(
            f"--epochs {requested.epochs}: {run_dir} was started for {saved.epochs} epochs; "
            "a resumed run may only be extended (raise --epochs or drop it)"
        )
    runtime = {name: getattr(requested, name) for name in RUNTIME_FIELDS}
    return replace(saved, epochs=requested.epochs, **runtime)


def check_extension(
    saved: TrainConfig, requested: TrainConfig, checkpoint: dict[str, Any], run_dir: Path
) -> None:
    """Refuse to raise ``epochs`` of a run whose finetune phase has begun (its finetune epochs
    would become main ones)."""
    if requested.epochs <= saved.epochs or not saved.finetune_real_epochs:
        return
    position = checkpoint.get("position")
    reached = position["epoch"] if position else int(checkpoint["epoch"])
    if reached > saved.epochs:
        raise UserError(
            f"--epochs {requested.epochs}: {run_dir} is past its {saved.epochs} main epochs, in "
            "its --finetune-real-epochs phase, and cannot be extended; drop --epochs or start a "
            "new --name"
        )


def reconcile(
    saved: TrainConfig, requested: TrainConfig, run_dir: Path, checkpoint: dict[str, Any]
) -> TrainConfig:
    """The checked configuration a resumed run continues with."""
    check_extension(saved, requested, checkpoint, run_dir)
    return resume_config(saved, requested, run_dir).validate()


def saved_train_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig stored in ``run_dir/last.pt`` (what ``--resume`` continues with)."""
    return TrainConfig.from_dict(saved_config(run_dir))


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
    exposure: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The content of ``config.json`` (:meth:`core.rundir.RunDir.write_config` stamps it);
    ``exposure``: the images shown over the schedule
    (:func:`classify.training.synthetic_exposure.presentations`)."""
    return {
        "train": cfg.to_dict(),
        "model": model_cfg.to_dict(),
        "class_names": list(class_names),
        "dataset": dataset,
        "synthetic": synthetic,
        **(exposure or {}),
    }


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
    teacher_digest: str | None = None,
) -> dict[str, Any]:
    """Everything to rebuild the model from the file alone and to resume exactly."""
    partial = state.partial
    weights, aux = split_state(model)
    data = {"train_images_sha256": data_fingerprint, "steps_per_epoch": steps_per_epoch}
    if teacher_digest is not None:
        data["teacher_targets_sha256"] = teacher_digest
    rng = {**rng, "epoch_generator": partial.generator_state if partial else None}
    if partial is not None and partial.synthetic_generator_state is not None:
        rng["synthetic_generator"] = partial.synthetic_generator_state
    out = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model_cfg.to_dict(),
        CONFIG_KEY: cfg.to_dict(),
        "class_names": list(class_names),
        "model": {k: v.detach().cpu() for k, v in weights.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": state.completed,
        "best_val_acc": state.best_val_acc,
        "best_epoch": state.best_epoch,
        "val_acc": state.val_acc,
        "position": partial.to_dict() if partial else None,
        "rng": rng,
        "data": data,
        "versions": versions(),
    }
    if aux:
        out["aux_bn"] = {k: v.detach().cpu() for k, v in aux.items()}
    return out


def state_from_checkpoint(checkpoint: dict[str, Any]) -> RunState:
    position = checkpoint.get("position")
    partial = None
    if position is not None:
        rng = checkpoint["rng"]
        partial = PartialEpoch(
            generator_state=rng["epoch_generator"],
            synthetic_generator_state=rng.get("synthetic_generator"),
            **position,
        )
    return RunState(
        completed=int(checkpoint["epoch"]),
        best_val_acc=float(checkpoint["best_val_acc"]),
        best_epoch=int(checkpoint["best_epoch"]),
        val_acc=checkpoint.get("val_acc"),
        partial=partial,
    )


def check_resumable(
    checkpoint: dict[str, Any],
    path: Path,
    *,
    data: str,
    class_names: list[str],
    steps_per_epoch: int,
    fingerprint: str,
    teacher_digest: str | None = None,
) -> None:
    """Refuse to resume ``checkpoint`` (``path``) on other classes or another number of batches
    per epoch; warn when the decoded images or a teacher's targets differ (the run then cannot
    match exactly)."""
    if checkpoint["class_names"] != class_names:
        raise UserError(
            f"{path}: trained on classes {checkpoint['class_names']}, but {data} has "
            f"{class_names}; resume with the run's own dataset"
        )
    saved = checkpoint.get("data", {})
    if saved.get("steps_per_epoch") != steps_per_epoch:
        raise UserError(
            f"{path}: the training split now gives {steps_per_epoch} batches per epoch, "
            f"the run had {saved.get('steps_per_epoch')}; resume with the run's own dataset"
        )
    if saved.get("train_images_sha256") != fingerprint:
        warnings.warn(
            f"{data}: decoded training images differ from those the run started with; "
            "the resumed run will not match an uninterrupted one exactly",
            stacklevel=4,
        )
    if saved.get("teacher_targets_sha256") != teacher_digest:
        warnings.warn(
            f"{path}: the teacher's soft targets differ from those the run started with (was the "
            "teacher retrained?); the resumed run will not match an uninterrupted one exactly",
            stacklevel=4,
        )


def check_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: not a classifier checkpoint of this toolkit (format "
            f"{checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT!r})"
        )
