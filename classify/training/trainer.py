"""Classifier training: ``train(TrainConfig) -> TrainResult``, the library behind ``cli train``.

The training split is decoded once into memory and split (stratified, seeded) into train and
validation; the test split is never read here. The run folder goes through the lifecycle of
:mod:`core.rundir` (refusals before any data is read, creation once it has loaded, history
truncation and config stamps on resume); the epochs themselves are
:mod:`classify.training.engine`, the recipes for synthetic images (a synthetic batch on top of
full real batches, loss weight, a teacher's soft targets, auxiliary BatchNorm, real-only finetune
epochs after ``epochs``) :mod:`classify.training.synthetic_exposure`. Initial weights
(``--pretrained``, ``--weights``, ``--init-from``) are read before any image is decoded
(:mod:`classify.training.init_weights`); ``--freeze-backbone-epochs`` is
:mod:`classify.training.freeze`.
CUDA runs under autocast with a gradient scaler and channels_last; the CPU runs fp32 on all its
cores. See :mod:`classify.training.run` for what the folder and the checkpoints hold.

Ctrl-C finishes the current batch, writes ``last.pt`` with the position inside the epoch, and
raises :class:`TrainInterrupted`; ``train(cfg, resume=True)`` continues from there so that, on the
CPU, the final weights equal those of an uninterrupted run bit for bit.

Under torchrun with several processes (``WORLD_SIZE`` > 1) every rank calls ``train``: they join
the process group first; rank 0 alone opens the run folder (refusals, the run's lock, the
checkpoint to resume) and shares what it found (:func:`core.distributed.on_main`); each rank
decodes the data itself (the same images on every rank, checked); ``--batch-size`` is the global
batch and must divide by the number of ranks; rank 0 writes everything. A checkpoint is the same
file as a one-process run's, so a run resumes on any number of processes. A rank that dies makes
the others stop with a one-line error (:func:`core.distributed.peer_errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from classify.models import ModelConfig
from classify.training.config import TrainConfig
from classify.training.engine import TrainCallback, Trainer
from classify.training.init_weights import WeightsInit, load_source
from classify.training.run import (
    check_checkpoint,
    dataset_summary,
    reconcile,
    run_config_json,
)
from classify.training.synthetic_exposure import check_ranks, presentations, recipe_summary
from classify.training.trainset import build_training_set
from core.data import scan_dataset, warn_skipped
from core.device import setup_device
from core.distributed import (
    DistConfig,
    check_batch_split,
    distributed_summary,
    peer_errors,
    same_on_every_rank,
    world_size,
)
from core.interrupts import RunInterrupted
from core.progress import TrainDisplay
from core.ranks import barrier
from core.resume import join_and_open, open_run
from core.rundir import RunDir, stop_notice
from core.split import SPLIT_FILE

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
    dist: DistConfig | None = None,
) -> TrainResult:
    """Train a classifier into ``cfg.runs_dir/cfg.name`` (see the module docstring).

    ``resume``: continue the run from its ``last.pt`` with its saved configuration; ``cfg`` may only
    differ in the runtime fields and a raised ``epochs`` (:func:`classify.training.run.resume_config`).
    ``overwrite``: replace an existing run of that name. Raises :class:`UserError` for bad input or
    a refused action and :class:`TrainInterrupted` (a KeyboardInterrupt) after Ctrl-C.
    ``dist``: how several processes train (ignored in one process).
    """
    dist = (dist or DistConfig()).validate()
    opener = lambda: _open(cfg, resume, overwrite, dist)  # noqa: E731
    device, (run, checkpoint, cfg) = join_and_open(cfg.device, dist, opener)
    try:
        with peer_errors(f"the run stopped; continue with `{run.resume_command(COMMAND)}`"):
            return _train(
                cfg, run, checkpoint, device, resume, overwrite, progress, callbacks, dist
            )
    finally:
        run.unlock()


def _open(
    cfg: TrainConfig, resume: bool, overwrite: bool, dist: DistConfig
) -> tuple[RunDir, dict[str, Any] | None, TrainConfig]:
    """Refusals, the configuration to continue with, the run's lock (rank 0 alone)."""
    run, checkpoint, cfg = open_run(
        cfg,
        resume=resume,
        overwrite=overwrite,
        check=check_checkpoint,
        reconcile=reconcile,
    )
    check_batch_split(cfg.batch_size, sync_bn=dist.sync_bn)
    check_ranks(cfg, world_size(), dist.sync_bn)
    run.lock(world_size())
    return run, checkpoint, cfg


def _train(
    cfg: TrainConfig,
    run: RunDir,
    checkpoint: dict[str, Any] | None,
    device: torch.device | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    callbacks: Sequence[TrainCallback] | None,
    dist: DistConfig,
) -> TrainResult:
    device = device or setup_device(cfg.device, cudnn_benchmark=True)  # fixed input size
    if checkpoint is None:  # a fresh run reads its initial weights first: a bad file fails fast
        init = WeightsInit(source=load_source(cfg, progress=progress)).check(cfg)
    else:
        init = WeightsInit(saved=checkpoint.get("model_config", {}))
    index = scan_dataset(Path(cfg.data))
    display = TrainDisplay(progress)
    with display:
        data = build_training_set(cfg, index, display.task("decode train", len(index.train)))
    warn_skipped(data.train)
    run.begin(resume=resume, overwrite=overwrite, dataset_root=index.root)

    trainer = Trainer(cfg, data, device, run, callbacks or [], sync_bn=dist.sync_bn, init=init)
    same_on_every_rank(trainer.fingerprint, "decoded training images")
    smallest = trainer.epoch_size // trainer.steps_per_epoch
    if cfg.finetune_real_epochs:
        smallest = min(smallest, trainer.sizes.real_epoch_size // trainer.steps_in(cfg.epochs + 1))
    check_batch_split(cfg.batch_size, sync_bn=dist.sync_bn, smallest=smallest)
    if checkpoint is not None:
        trainer.restore(checkpoint)
        run.truncate_history(trainer.state.completed, key="epoch")
    dataset = dataset_summary(
        index.root, data.train, data.val, data.real_train_counts, trainer.fingerprint
    )
    dataset["split"] = data.split.summary()
    run.write_file(SPLIT_FILE, data.split.to_bytes())
    synthetic = data.synthetic
    if synthetic is not None:
        teacher = trainer.teacher.info if trainer.teacher is not None else None
        synthetic = {**synthetic, "recipe": recipe_summary(cfg, teacher)}
    exposure = presentations(cfg, trainer.sizes)
    content = run_config_json(
        cfg, trainer.model_cfg, trainer.class_names, dataset, synthetic, exposure
    )
    content["init"] = trainer.init_info or None  # where the initial weights came from
    run.write_config({**content, **distributed_summary(cfg.batch_size, dist)}, resume=resume)
    _train_epochs(trainer, display)
    barrier()  # every rank returns once rank 0's files are complete (the next step reads them)
    return _result(trainer)


def _train_epochs(trainer: Trainer, display: TrainDisplay) -> None:
    state, cfg = trainer.state, trainer.cfg
    first = state.partial.epoch if state.partial is not None else state.completed + 1
    trainer.guard.on_deferred = lambda: display.notice(stop_notice("batch"))
    try:
        with trainer.guard, display:
            display.start_run(cfg.name, cfg.total_epochs, trainer.steps_per_epoch, first)
            for epoch in range(first, cfg.total_epochs + 1):
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
            f"{trainer.steps_in(partial.epoch)}"
        )
    if trainer.distributed:  # the others wait for rank 0's checkpoint (torchrun ends all at once)
        with contextlib.suppress(RuntimeError):
            barrier()
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
