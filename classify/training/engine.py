"""One classifier run's model, optimizer, schedule and state, and one epoch of training.

Each epoch draws its batch order and augmentation from one generator seeded by (seed, epoch)
(:mod:`classify.training.batches`), augments uint8 batches on the training device
(:mod:`classify.classical`), mixes the model inputs when ``--augment`` names mixup or CutMix
(:mod:`classify.classical.mixing`: the loss then takes soft targets, and training accuracy counts
the dominant label), and steps the optimizer and the per-batch schedule
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

The recipes for synthetic images (:mod:`classify.training.synthetic_exposure`) plan each epoch's
batches; the steps themselves are :mod:`classify.training.optimizer_steps` (with
``--synthetic-batch``: both parts split by rank, each part's sum weighted by its global count), and
the finetune epochs after ``epochs`` train on the real images only at a constant learning rate, the
schedule paused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from classify.classical.spec import parse_augment
from classify.models import build_model
from classify.models.dual_bn import add_auxiliary_batchnorm, load_split_state
from classify.training.batches import num_batches
from classify.training.config import TrainConfig
from classify.training.freeze import BackboneFreeze, backbone_parameters
from classify.training.init_weights import WeightsInit
from classify.training.optim import apply_schedule, build_optimizer, build_scheduler, current_lr
from classify.training.optimizer_steps import Steps
from classify.training.run import (
    PartialEpoch,
    RunState,
    check_resumable,
    checkpoint_dict,
    model_config_of,
    state_from_checkpoint,
)
from classify.training.synthetic_exposure import (
    FINETUNE,
    MAIN,
    EpochPlan,
    Sizes,
    check_sizes,
    plan_epoch,
)
from classify.training.teacher import soft_targets_of
from classify.training.trainset import TrainingSet, evaluate
from core.ddp import data_parallel
from core.device import make_grad_scaler, memory_format
from core.distributed import is_active, is_main
from core.progress import TrainDisplay
from core.ranks import AgreedStop, make_guard
from core.rundir import RunDir, images_sha256
from core.seeding import rng_state, seed_everything, set_rng_state


class TrainCallback:
    """Hooks called by :func:`classify.training.trainer.train`; subclass and override what you
    need. Raising KeyboardInterrupt from a hook behaves like Ctrl-C at that point."""

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, logs: dict[str, float]) -> None:
        """After optimizer step ``batch`` (1-based) of ``epoch`` (1-based)."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """After the epoch's history line and checkpoints are written."""


class Trainer(Steps):
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
        init: WeightsInit | None = None,
    ) -> None:
        self.cfg, self.data, self.device, self.run = cfg, data, device, run
        init = init or WeightsInit()
        self.callbacks = list(callbacks)
        self.class_names = data.train.class_names
        self.augment = parse_augment(cfg.augment)
        self.model_cfg = init.model_config(model_config_of(cfg, len(self.class_names)))
        self.sizes = Sizes.of(cfg, data.n_real, data.n_synthetic)
        check_sizes(cfg, self.sizes)
        self.epoch_size = self.sizes.epoch_size
        self.steps_per_epoch = num_batches(self.epoch_size, cfg.batch_size)
        self.fingerprint = images_sha256(data.train, data.val)
        # Before the seed (the teacher draws nothing, and the student initialises as without).
        self.soft_targets, self.teacher = soft_targets_of(cfg, data, device)
        seed_everything(cfg.seed)  # model initialisation
        model = build_model(self.model_cfg)
        self.init_info = init.apply(model, self.class_names, data.val)  # draws nothing
        if cfg.synthetic_bn == "separate":
            add_auxiliary_batchnorm(model)  # draws nothing either: copies of the initialised BN
        self.model = model.to(device, memory_format=memory_format(device))
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = make_grad_scaler(device)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        smoothing = cfg.label_smoothing
        self.sample_criterion = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none")
        self.sum_criterion = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="sum")
        self.phase = MAIN
        self.state = RunState()
        self.distributed = is_active()
        self.net = data_parallel(self.model, device, sync_bn=sync_bn)  # self.model in one process
        # After DDP's SyncBatchNorm swap, so the frozen BatchNorm modules are the ones that run.
        gates = cfg.init_from is None  # torchvision weights hold no gates: they train throughout
        frozen = backbone_parameters(self.model, keep_gates_trainable=gates)
        self.freeze = BackboneFreeze(
            self.model, frozen, cfg.freeze_backbone_epochs, self.distributed
        )
        self.freeze.attach(self.optimizer)
        self.guard = make_guard()

    def steps_in(self, epoch: int) -> int:
        """Optimizer steps in ``epoch`` (a finetune epoch draws the real images only)."""
        if epoch <= self.cfg.epochs:
            return self.steps_per_epoch
        return num_batches(self.sizes.real_epoch_size, self.cfg.batch_size)

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {"init": self.init_info} | checkpoint_dict(
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
            teacher_digest=self.teacher.digest if self.teacher is not None else None,
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
            teacher_digest=self.teacher.digest if self.teacher is not None else None,
        )
        load_split_state(self.model, checkpoint["model"], checkpoint.get("aux_bn"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        apply_schedule(self.scheduler)  # the new total when --epochs was raised
        if checkpoint.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        self.state = state_from_checkpoint(checkpoint)
        self.init_info = checkpoint.get("init") or self.init_info

    def save(self, *which: str) -> None:
        """Write the checkpoint to ``which`` (``last``, ``best``): rank 0's job."""
        if is_main():
            self.run.save(self.checkpoint(), *which)

    def save_last(self) -> None:
        self.save("last")

    # -- one epoch --------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> tuple[EpochPlan, PartialEpoch]:
        plan = plan_epoch(self.cfg, self.sizes, epoch)
        self.phase = plan.phase
        if plan.phase == FINETUNE:  # constant; the schedule (and its step count) pauses
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.finetune_learning_rate
        partial = self.state.partial
        stream = plan.synthetic_generator
        if partial is not None and partial.epoch == epoch:
            plan.generator.set_state(partial.generator_state)
            if stream is not None:
                stream.set_state(partial.synthetic_generator_state)
        else:
            state = stream.get_state() if stream is not None else None
            partial = PartialEpoch(epoch, 0, plan.generator.get_state(), **_synthetic(state))
        self.state.partial = partial
        return plan, partial

    def run_epoch(self, epoch: int, display: TrainDisplay) -> dict[str, Any]:
        plan, partial = self.start_epoch(epoch)
        batches, generator, stream = plan.batches, plan.generator, plan.synthetic_generator
        display.start_epoch(epoch, self.cfg.total_epochs, len(batches), partial.batch)
        self.net.train()
        self.freeze.start_epoch(epoch)  # --freeze-backbone-epochs: the backbone frozen or not
        for b in range(partial.batch, len(batches)):
            start = time.perf_counter()
            with self.guard.critical():
                syn_loss, syn_seen = 0.0, 0
                if plan.synthetic is None or stream is None:
                    loss_sum, correct = self.train_step(batches[b], generator)
                else:
                    loss_sum, correct, syn_loss = self.split_step(
                        batches[b], plan.synthetic[b], generator, stream
                    )
                    syn_seen = len(plan.synthetic[b])
                # Replace, never mutate: a half-updated position must not be saved.
                partial = PartialEpoch(
                    epoch,
                    b + 1,
                    generator.get_state(),
                    partial.loss_sum + loss_sum,
                    partial.correct + correct,
                    partial.seen + len(batches[b]),
                    partial.train_seconds + time.perf_counter() - start,
                    **_synthetic(
                        stream.get_state() if stream is not None else None,
                        partial.synthetic_loss_sum + syn_loss,
                        partial.synthetic_seen + syn_seen,
                    ),
                )
                self.state.partial = partial
            if isinstance(self.guard, AgreedStop) and self.guard.stop:
                raise KeyboardInterrupt  # every rank, after the same step
            logs = {
                "loss": partial.loss_sum / partial.seen,
                "acc": partial.correct / partial.seen,
                "images_per_second": _images(partial) / max(partial.train_seconds, 1e-9),
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
            "images_per_second": _images(partial) / max(partial.train_seconds, 1e-9),
        }
        if self.cfg.synthetic_batch:  # train_loss / train_acc: the real part's
            seen = partial.synthetic_seen
            record["train_synthetic_loss"] = partial.synthetic_loss_sum / seen if seen else None
        if self.cfg.finetune_real_epochs:
            record["phase"] = FINETUNE if epoch > self.cfg.epochs else MAIN
        with self.guard.critical():
            state = self.state
            # One rule for every run and every arm of a study: the best epoch by validation
            # accuracy over all its epochs (ties keep the earlier epoch); without a validation
            # split the latest epoch counts as best. With --finetune-real-epochs the candidates
            # are the main and the finetune epochs alike, so a recipe with a finetune phase is
            # chosen from the same kind of candidate set as one without.
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


def _synthetic(state: Tensor | None, loss_sum: float = 0.0, seen: int = 0) -> dict[str, Any]:
    """PartialEpoch's fields of the synthetic part (``--synthetic-batch``)."""
    return {
        "synthetic_generator_state": state,
        "synthetic_loss_sum": loss_sum,
        "synthetic_seen": seen,
    }


def _images(partial: PartialEpoch) -> int:
    """Images the epoch has trained on so far, both parts."""
    return partial.seen + partial.synthetic_seen
