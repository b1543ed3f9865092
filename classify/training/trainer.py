"""Classifier training: ``train(TrainConfig) -> TrainResult``, the library behind ``cli train``.

The training split is decoded once into memory and split (stratified, seeded) into train and
validation; the test split is never read here. The run folder goes through the lifecycle of
:mod:`core.rundir` (refusals before any data is read, creation once it has loaded, history
truncation and config stamps on resume); the epochs themselves are :mod:`classify.training.engine`.
CUDA runs under autocast with a gradient scaler and channels_last; the CPU runs fp32 on all its
cores. See :mod:`classify.training.run` for what the folder and the checkpoints hold.

Ctrl-C finishes the current batch, writes ``last.pt`` with the position inside the epoch, and
raises :class:`TrainInterrupted`; ``train(cfg, resume=True)`` continues from there so that, on the
CPU, the final weights equal those of an uninterrupted run bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classify.models import ModelConfig
from classify.training.config import TrainConfig
from classify.training.engine import TrainCallback, Trainer
from classify.training.run import (
    check_checkpoint,
    dataset_summary,
    resume_config,
    run_config_json,
)
from classify.training.trainset import build_training_set
from core.data import scan_dataset, warn_skipped
from core.device import setup_device
from core.interrupts import RunInterrupted
from core.progress import TrainDisplay
from core.resume import open_run
from core.rundir import stop_notice

COMMAND = "train"  # the CLI command an interrupted run is resumed with


class TrainInterrupted(RunInterrupted):
    """Training stopped by Ctrl-C after saving ``last.pt``; ``message`` says how to resume."""


@dataclass
class TrainResult:
    run_dir: Path
    best_val_acc: float | None  # None when there is no validation split
    best_epoch: int
    epochs: int  # completed epochs
    seconds_per_epoch: float  # mean over history.jsonl
    final_val_acc: float | None
    class_names: list[str]
    model_config: ModelConfig
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[TrainCallback] | None = None,
) -> TrainResult:
    """Train a classifier into ``cfg.runs_dir/cfg.name`` (see the module docstring).

    ``resume``: continue the run from its ``last.pt`` with its saved configuration; ``cfg`` may only
    differ in the runtime fields and a raised ``epochs`` (:func:`classify.training.run.resume_config`).
    ``overwrite``: replace an existing run of that name. Raises :class:`UserError` for bad input or
    a refused action and :class:`TrainInterrupted` (a KeyboardInterrupt) after Ctrl-C.
    """
    run, checkpoint, cfg = open_run(
        cfg,
        resume=resume,
        overwrite=overwrite,
        check=check_checkpoint,
        reconcile=lambda saved, requested, path, _: resume_config(
            saved, requested, path
        ).validate(),
    )
    device = setup_device(cfg.device, cudnn_benchmark=True)  # fixed input size
    index = scan_dataset(Path(cfg.data))
    display = TrainDisplay(progress)
    with display:
        data = build_training_set(cfg, index, display.task("decode train", len(index.train)))
    warn_skipped(data.train)
    run.begin(resume=resume, overwrite=overwrite, dataset_root=index.root)

    trainer = Trainer(cfg, data, device, run, callbacks or [])
    if checkpoint is not None:
        trainer.restore(checkpoint)
        run.truncate_history(trainer.state.completed, key="epoch")
    dataset = dataset_summary(
        index.root, data.train, data.val, data.real_train_counts, trainer.fingerprint
    )
    content = run_config_json(cfg, trainer.model_cfg, trainer.class_names, dataset, data.synthetic)
    run.write_config(content, resume=resume)
    _train_epochs(trainer, display)
    return _result(trainer)


def _train_epochs(trainer: Trainer, display: TrainDisplay) -> None:
    state, cfg = trainer.state, trainer.cfg
    first = state.partial.epoch if state.partial is not None else state.completed + 1
    trainer.guard.on_deferred = lambda: display.notice(stop_notice("batch"))
    try:
        with trainer.guard, display:
            display.start_run(cfg.name, cfg.epochs, trainer.steps_per_epoch, first)
            for epoch in range(first, cfg.epochs + 1):
                record = trainer.run_epoch(epoch, display)
                display.end_epoch(record)
                for callback in trainer.callbacks:
                    callback.on_epoch_end(record)
    except KeyboardInterrupt:
        raise _interrupted(trainer) from None


def _interrupted(trainer: Trainer) -> TrainInterrupted:
    """Save the consistent state reached (if any) and say how to continue."""
    state, run = trainer.state, trainer.run
    saved_now = None
    partial = state.partial
    if not trainer.guard.dirty and partial is not None and partial.batch > 0:
        trainer.save_last()
        saved_now = (
            f"the run as it was in epoch {partial.epoch}, after batch {partial.batch}/"
            f"{trainer.steps_per_epoch}"
        )
    held = (
        f"the run as it was after epoch {state.completed}"
        if state.completed
        else "the state it last saved"
    )
    message, saved = run.stop_report(COMMAND, saved_now=saved_now, held=held)
    return TrainInterrupted(message, run.path, saved=saved)


def _result(trainer: Trainer) -> TrainResult:
    history = trainer.run.history()
    seconds = [r["seconds"] for r in history]
    has_val = len(trainer.data.val) > 0
    state = trainer.state
    return TrainResult(
        run_dir=trainer.run.path,
        best_val_acc=state.best_val_acc if has_val else None,
        best_epoch=state.best_epoch,
        epochs=state.completed,
        seconds_per_epoch=sum(seconds) / len(seconds) if seconds else 0.0,
        final_val_acc=state.val_acc,
        class_names=trainer.class_names,
        model_config=trainer.model_cfg,
        history=history,
    )
