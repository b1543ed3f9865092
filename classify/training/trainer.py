"""Classifier training: ``train(TrainConfig) -> TrainResult``, the library behind ``cli train``.

The training split is decoded once into memory and split (stratified, seeded) into train and
validation; the test split is never read here. Each epoch draws its batch order and augmentation
from one generator seeded by (seed, epoch) (:mod:`classify.training.batches`), augments uint8 batches on the
training device (:mod:`classify.transforms`), and steps the optimizer and the per-batch schedule
(:mod:`classify.training.optim`). CUDA runs under autocast with a gradient scaler and channels_last; the CPU
runs fp32 on all its cores. After every epoch the validation set is scored in eval mode (no RNG
use), a line goes to ``history.jsonl``, ``last.pt`` is written and, when validation accuracy
improved, ``best.pt`` (see :mod:`classify.training.run` for the folder and checkpoint layout).

Ctrl-C finishes the current batch, writes ``last.pt`` with the position inside the epoch, and
raises :class:`TrainInterrupted`; ``train(cfg, resume=True)`` continues from there so that, on the
CPU, the final weights equal those of an uninterrupted run bit for bit.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from classify.models import ModelConfig, build_model
from classify.training.batches import epoch_batches, epoch_generator, num_batches
from classify.training.config import TrainConfig
from classify.training.optim import apply_schedule, build_optimizer, build_scheduler, current_lr
from classify.training.run import (
    PartialEpoch,
    RunState,
    check_checkpoint,
    check_train_config,
    checkpoint_dict,
    dataset_summary,
    images_sha256,
    model_config_of,
    resume_config,
    run_config_json,
    run_dir_of,
    state_from_checkpoint,
)
from classify.training.trainset import TrainingSet, build_training_set, evaluate, to_device
from classify.transforms import augment_batch
from core.data import scan_dataset, to_model_input, warn_skipped
from core.device import (
    autocast,
    configure_cpu_threads,
    make_grad_scaler,
    memory_format,
    resolve_device,
)
from core.errors import UserError
from core.interrupts import InterruptGuard, RunInterrupted
from core.io import (
    append_jsonl,
    is_inside,
    load_checkpoint,
    prepare_run_dir,
    read_json,
    read_jsonl,
    save_checkpoint,
    truncate_jsonl,
    write_json,
)
from core.progress import NullDisplay, make_display
from core.seeding import rng_state, seed_everything, set_rng_state

__all__ = [
    "TrainCallback",
    "TrainInterrupted",
    "TrainResult",
    "TrainingSet",
    "build_training_set",
    "evaluate",
    "train",
]


class TrainCallback:
    """Hooks called by :func:`train`; subclass and override what you need. Raising
    KeyboardInterrupt from a hook behaves like Ctrl-C at that point."""

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, logs: dict[str, float]) -> None:
        """After optimizer step ``batch`` (1-based) of ``epoch`` (1-based)."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """After the epoch's history line and checkpoints are written."""


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


class Trainer:
    """One run's model, optimizer, schedule and state; :func:`train` drives it."""

    def __init__(
        self,
        cfg: TrainConfig,
        data: TrainingSet,
        device: torch.device,
        run_dir: Path,
        callbacks: Sequence[TrainCallback],
    ) -> None:
        self.cfg, self.data, self.device, self.run_dir = cfg, data, device, run_dir
        self.callbacks = list(callbacks)
        self.class_names = data.train.class_names
        self.model_cfg = model_config_of(cfg, len(self.class_names))
        self.epoch_size = min(cfg.epoch_size or len(data.train), len(data.train))
        self.steps_per_epoch = num_batches(self.epoch_size, cfg.batch_size)
        self.fingerprint = images_sha256(data.train, data.val)
        seed_everything(cfg.seed)  # model initialisation
        self.model = build_model(self.model_cfg).to(device, memory_format=memory_format(device))
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = make_grad_scaler(device)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.state = RunState()
        self.guard = InterruptGuard()

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return checkpoint_dict(
            cfg=self.cfg,
            model_cfg=self.model_cfg,
            class_names=self.class_names,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            state=self.state,
            rng=rng_state(),
            data_fingerprint=self.fingerprint,
            steps_per_epoch=self.steps_per_epoch,
        )

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Load a checkpoint's states (the config was already reconciled by resume_config)."""
        path = self.run_dir / "last.pt"
        if checkpoint["class_names"] != self.class_names:
            raise UserError(
                f"{path}: trained on classes {checkpoint['class_names']}, but {self.cfg.data} has "
                f"{self.class_names}; resume with the run's own dataset"
            )
        data = checkpoint.get("data", {})
        if data.get("steps_per_epoch") != self.steps_per_epoch:
            raise UserError(
                f"{path}: the training split now gives {self.steps_per_epoch} batches per epoch, "
                f"the run had {data.get('steps_per_epoch')}; resume with the run's own dataset"
            )
        if data.get("train_images_sha256") != self.fingerprint:
            warnings.warn(
                f"{self.cfg.data}: decoded training images differ from those the run started with; "
                "the resumed run will not match an uninterrupted one exactly",
                stacklevel=3,
            )
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        apply_schedule(self.scheduler)  # the new total when --epochs was raised
        if checkpoint.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        self.state = state_from_checkpoint(checkpoint)

    def save_last(self) -> None:
        save_checkpoint(self.run_dir / "last.pt", self.checkpoint())

    # -- one epoch --------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> tuple[list[Tensor], torch.Generator, PartialEpoch]:
        generator = epoch_generator(self.cfg.seed, epoch)
        batches = epoch_batches(
            len(self.data.train), self.cfg.batch_size, generator, self.epoch_size
        )
        partial = self.state.partial
        if partial is not None and partial.epoch == epoch:
            generator.set_state(partial.generator_state)
        else:
            partial = PartialEpoch(epoch, 0, generator.get_state())
        self.state.partial = partial
        return batches, generator, partial

    def train_step(self, idx: Tensor, generator: torch.Generator) -> tuple[float, int]:
        """One optimizer step on the images ``idx``; returns (summed loss, correct predictions)."""
        cfg, device = self.cfg, self.device
        x = to_device(self.data.train.images[idx], device)
        y = to_device(self.data.train.labels[idx], device)
        x = augment_batch(x, cfg.augment, hflip=cfg.hflip, generator=generator)
        x = to_model_input(x).contiguous(memory_format=memory_format(device))
        with autocast(device):
            logits = self.model(x)
            loss = self.criterion(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item() * len(idx), int((logits.argmax(1) == y).sum().item())

    def run_epoch(self, epoch: int, display: NullDisplay) -> dict[str, Any]:
        batches, generator, partial = self.start_epoch(epoch)
        display.start_epoch(epoch, self.cfg.epochs, len(batches), partial.batch)
        self.model.train()
        for b in range(partial.batch, len(batches)):
            start = time.perf_counter()
            with self.guard.critical():
                loss_sum, correct = self.train_step(batches[b], generator)
                # Replace, never mutate: a half-updated position must not be saved.
                partial = PartialEpoch(
                    epoch,
                    b + 1,
                    generator.get_state(),
                    partial.loss_sum + loss_sum,
                    partial.correct + correct,
                    partial.seen + len(batches[b]),
                    partial.train_seconds + time.perf_counter() - start,
                )
                self.state.partial = partial
            logs = {
                "loss": partial.loss_sum / partial.seen,
                "acc": partial.correct / partial.seen,
                "images_per_second": partial.seen / max(partial.train_seconds, 1e-9),
                "lr": current_lr(self.optimizer),
            }
            display.batch(logs)
            for callback in self.callbacks:
                callback.on_batch_end(epoch, b + 1, len(batches), logs)
        return self.finish_epoch(epoch, partial)

    def finish_epoch(self, epoch: int, partial: PartialEpoch) -> dict[str, Any]:
        start = time.perf_counter()
        val_loss: float | None = None
        val_acc: float | None = None
        if len(self.data.val):
            val_loss, val_acc = evaluate(
                self.model, self.data.val, self.device, self.cfg.batch_size
            )
        record = {
            "epoch": epoch,
            "train_loss": partial.loss_sum / partial.seen,
            "train_acc": partial.correct / partial.seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": current_lr(self.optimizer),
            "seconds": partial.train_seconds + time.perf_counter() - start,
            "images_per_second": partial.seen / max(partial.train_seconds, 1e-9),
        }
        with self.guard.critical():
            state = self.state
            # Best by validation accuracy, ties keep the earlier epoch; without a validation split
            # the latest epoch counts as best.
            improved = state.best_epoch == 0 or val_acc is None or val_acc > state.best_val_acc
            state.completed, state.val_acc, state.partial = epoch, val_acc, None
            if improved:
                state.best_epoch, state.best_val_acc = (
                    epoch,
                    val_acc if val_acc is not None else 0.0,
                )
                save_checkpoint(self.run_dir / "best.pt", self.checkpoint())
            self.save_last()
            append_jsonl(self.run_dir / "history.jsonl", record)
        return record


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
    cfg, checkpoint = _reconcile(cfg, resume=resume, overwrite=overwrite)
    run_dir = run_dir_of(cfg)
    device = _setup_device(cfg.device)
    index = scan_dataset(Path(cfg.data))
    display = make_display(progress)
    with display:
        data = build_training_set(cfg, index, display.decode_task(len(index.train)))
    warn_skipped(data.train)
    if not resume:  # only now, so a bad dataset leaves no folder behind (nor deletes a run)
        prepare_run_dir(run_dir, resume=False, overwrite=overwrite)

    trainer = Trainer(cfg, data, device, run_dir, callbacks or [])
    if checkpoint is not None:
        trainer.restore(checkpoint)
        truncate_jsonl(run_dir / "history.jsonl", trainer.state.completed)
    _write_run_config(trainer, index.root, resume=resume)
    _train_epochs(trainer, display)
    return _result(trainer)


def _reconcile(
    cfg: TrainConfig, *, resume: bool, overwrite: bool
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Check the settings and the run name; on resume, load last.pt and merge the configs."""
    check_train_config(cfg)
    run_dir = run_dir_of(cfg)
    checkpoint = None
    if resume:
        prepare_run_dir(run_dir, resume=True, overwrite=overwrite)  # checks only
        checkpoint = load_checkpoint(run_dir / "last.pt")
        check_checkpoint(checkpoint, run_dir / "last.pt")
        cfg = resume_config(TrainConfig.from_dict(checkpoint["train_config"]), cfg, run_dir)
    elif not overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
        prepare_run_dir(run_dir, resume=False, overwrite=False)  # refuses: the name is taken
    if is_inside(run_dir, Path(cfg.data)):
        raise UserError(
            f"--runs-dir {cfg.runs_dir}: lies inside the dataset {cfg.data}; "
            "runs are never written into a dataset folder"
        )
    return cfg, checkpoint


def _setup_device(name: str) -> torch.device:
    device = resolve_device(name)
    if device.type == "cpu":
        configure_cpu_threads()
    else:
        torch.backends.cudnn.benchmark = (
            True  # fixed input size: cuDNN may pick its fastest kernels
        )
    return device


def _write_run_config(trainer: Trainer, root: Path, *, resume: bool) -> None:
    data = trainer.data
    dataset = dataset_summary(
        root, data.train, data.val, data.real_train_counts, trainer.fingerprint
    )
    path = trainer.run_dir / "config.json"
    previous = read_json(path) if resume and path.is_file() else None
    config = run_config_json(
        trainer.cfg, trainer.model_cfg, trainer.class_names, dataset, data.synthetic, previous
    )
    write_json(path, config)


def _train_epochs(trainer: Trainer, display: NullDisplay) -> None:
    state, cfg = trainer.state, trainer.cfg
    first = state.partial.epoch if state.partial is not None else state.completed + 1
    trainer.guard.on_deferred = lambda: display.notice(
        "stopping after this batch to save the run (Ctrl-C again: stop at once, without saving)"
    )
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
    state, cfg, run_dir = trainer.state, trainer.cfg, trainer.run_dir
    resume_cmd = f"cli train --name {cfg.name} --runs-dir {cfg.runs_dir} --resume"
    saved = False
    if not trainer.guard.dirty and state.partial is not None and state.partial.batch > 0:
        trainer.save_last()
        saved = True
        where = (
            f"in epoch {state.partial.epoch}, after batch {state.partial.batch}/"
            f"{trainer.steps_per_epoch}"
        )
    elif (run_dir / "last.pt").is_file():
        where = f"after epoch {state.completed}" if state.completed else "it last saved"
    else:
        return TrainInterrupted(
            f"interrupted before any state was saved; start {run_dir} again with "
            f"`cli train ... --name {cfg.name} --overwrite`",
            run_dir,
            saved=False,
        )
    return TrainInterrupted(
        f"interrupted: saved the run as it was {where} in {run_dir / 'last.pt'}; "
        f"continue with `{resume_cmd}`",
        run_dir,
        saved=saved,
    )


def _result(trainer: Trainer) -> TrainResult:
    history = read_jsonl(trainer.run_dir / "history.jsonl")
    seconds = [r["seconds"] for r in history]
    has_val = len(trainer.data.val) > 0
    state = trainer.state
    return TrainResult(
        run_dir=trainer.run_dir,
        best_val_acc=state.best_val_acc if has_val else None,
        best_epoch=state.best_epoch,
        epochs=state.completed,
        seconds_per_epoch=sum(seconds) / len(seconds) if seconds else 0.0,
        final_val_acc=state.val_acc,
        class_names=trainer.class_names,
        model_config=trainer.model_cfg,
        history=history,
    )
