"""One classifier run's model, optimizer, schedule and state, and one epoch of training.

Each epoch draws its batch order and augmentation from one generator seeded by (seed, epoch)
(:mod:`classify.training.batches`), augments uint8 batches on the training device
(:mod:`classify.transforms`), mixes the model inputs when ``--augment`` names mixup or CutMix
(:mod:`classify.mixing`: the loss then takes soft targets, and training accuracy counts the
dominant label), and steps the optimizer and the per-batch schedule
(:mod:`classify.training.optim`), under autocast with a gradient scaler on CUDA. After every epoch
the validation set is scored in eval mode (no RNG use), a line goes to ``history.jsonl``, and
``last.pt`` (and ``best.pt`` when validation accuracy improved) are written. Every optimizer step
runs inside the interrupt guard's critical section, so a checkpoint never holds half a step.

With several processes (:mod:`core.distributed`) the model is wrapped in DistributedDataParallel
with SyncBatchNorm (:mod:`core.ddp`). Every rank draws the same permutation, the same global
batches and the same augmentation of each whole global batch (the one-process draws) and trains on
its contiguous part of it (:func:`core.ranks.batch_part`); its loss is weighted by its share,
so DDP's gradient average is the gradient of the global batch's mean loss, as in one process. One
all-reduce per step sums the loss and accuracy counts and carries the Ctrl-C votes
(:class:`core.ranks.AgreedStop`); validation is sharded by batch; rank 0 writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from classify.augment_spec import parse_augment
from classify.mixing import target_labels
from classify.models import build_model
from classify.training.batches import epoch_batches, epoch_generator, num_batches
from classify.training.config import TrainConfig
from classify.training.optim import apply_schedule, build_optimizer, build_scheduler, current_lr
from classify.training.run import (
    PartialEpoch,
    RunState,
    check_resumable,
    checkpoint_dict,
    model_config_of,
    state_from_checkpoint,
)
from classify.training.trainset import TrainingSet, evaluate, to_device
from classify.transforms import train_inputs
from core.ddp import data_parallel
from core.device import autocast, make_grad_scaler, memory_format
from core.distributed import is_active, is_main
from core.distributed import world_size as ranks
from core.progress import TrainDisplay
from core.ranks import AgreedStop, all_sum, batch_part, make_guard
from core.rundir import RunDir, images_sha256
from core.seeding import rng_state, seed_everything, set_rng_state


class TrainCallback:
    """Hooks called by :func:`classify.training.trainer.train`; subclass and override what you
    need. Raising KeyboardInterrupt from a hook behaves like Ctrl-C at that point."""

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, logs: dict[str, float]) -> None:
        """After optimizer step ``batch`` (1-based) of ``epoch`` (1-based)."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """After the epoch's history line and checkpoints are written."""


class Trainer:
    """One run's model, optimizer, schedule and state; :func:`~classify.training.trainer.train`
    drives it."""

    def __init__(
        self,
        cfg: TrainConfig,
        data: TrainingSet,
        device: torch.device,
        run: RunDir,
        callbacks: Sequence[TrainCallback],
        sync_bn: bool = True,
    ) -> None:
        self.cfg, self.data, self.device, self.run = cfg, data, device, run
        self.callbacks = list(callbacks)
        self.class_names = data.train.class_names
        self.augment = parse_augment(cfg.augment)
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
        self.distributed = is_active()
        self.net = data_parallel(self.model, device, sync_bn=sync_bn)  # self.model in one process
        self.guard = make_guard()

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
        check_resumable(
            checkpoint,
            self.run.last,
            data=self.cfg.data,
            class_names=self.class_names,
            steps_per_epoch=self.steps_per_epoch,
            fingerprint=self.fingerprint,
        )
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        apply_schedule(self.scheduler)  # the new total when --epochs was raised
        if checkpoint.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        self.state = state_from_checkpoint(checkpoint)

    def save(self, *which: str) -> None:
        """Write the checkpoint to ``which`` (``last``, ``best``): rank 0's job."""
        if is_main():
            self.run.save(self.checkpoint(), *which)

    def save_last(self) -> None:
        self.save("last")

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
        x, target = train_inputs(  # target: y, or class probabilities after a mix
            x,
            y,
            self.augment,
            hflip=cfg.hflip,
            num_classes=len(self.class_names),
            generator=generator,
        )
        if self.distributed:  # this rank's part of the global batch, augmented as one process does
            part = batch_part(len(idx))
            x, target = x[part], target[part]
        x = x.contiguous(memory_format=memory_format(device))
        with autocast(device):
            logits = self.net(x)
            loss = self.criterion(logits.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages over ranks: weighting by the share makes it the global batch's mean.
        weighted = loss * (len(x) * ranks() / len(idx)) if self.distributed else loss
        self.scaler.scale(weighted).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        correct = (logits.argmax(1) == target_labels(target)).sum()
        if not self.distributed:
            return loss.item() * len(idx), int(correct.item())
        assert isinstance(self.guard, AgreedStop)
        loss_sum, correct_sum, votes = all_sum(
            [loss.item() * len(x), correct.item(), self.guard.flag()]
        )
        self.guard.agree(votes)
        return loss_sum, round(correct_sum)

    def run_epoch(self, epoch: int, display: TrainDisplay) -> dict[str, Any]:
        batches, generator, partial = self.start_epoch(epoch)
        display.start_epoch(epoch, self.cfg.epochs, len(batches), partial.batch)
        self.net.train()
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
            if isinstance(self.guard, AgreedStop) and self.guard.stop:
                raise KeyboardInterrupt  # every rank, after the same step
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
            self.save(*(("best", "last") if improved else ("last",)))
            self.run.append_history(record)
        return record
