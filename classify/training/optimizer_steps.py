"""The optimizer steps of a classifier run: one batch's augmentation, forward, loss and update.

:class:`Steps` is the base of :class:`classify.training.engine.Trainer`, which holds the model,
optimizer and data these read.

- :meth:`Steps.train_step`: one batch of indices into the training tensors (mixed real and
  synthetic images, or real only), augmented from the epoch generator; with ``--synthetic-weight``
  W != 1 the synthetic samples' CE is weighted by W (mean over the batch).
- :meth:`Steps.split_step` (``--synthetic-batch``): the real part augmented from the epoch
  generator first, then the synthetic part from its own generator, each mixed within itself; one
  forward pass over ``cat(real, synthetic)``; loss ``mean CE(real) + W * mean CE(synthetic)``
  (:func:`classify.training.synthetic_exposure.two_part_loss`).

Under torchrun each rank trains on its contiguous part of every global batch part
(:func:`core.ranks.batch_part`) with its loss weighted so that DDP's average over the ranks is the
global loss, and one all-reduce per step sums the statistics and carries the Ctrl-C votes.
Finetune epochs (``phase`` FINETUNE) take hard labels and leave the learning-rate schedule alone.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from classify.classical.apply import train_inputs
from classify.classical.mixing import target_labels
from classify.classical.spec import AugmentSpec
from classify.models.dual_bn import auxiliary_split
from classify.training.config import TrainConfig
from classify.training.synthetic_exposure import MAIN, two_part_loss, weighted_mean
from classify.training.trainset import TrainingSet, to_device
from core.device import autocast, memory_format
from core.distributed import world_size as ranks
from core.ranks import AgreedStop, all_sum, batch_part


class Steps:
    """Training steps over the attributes a Trainer sets."""

    cfg: TrainConfig
    data: TrainingSet
    device: torch.device
    augment: AugmentSpec
    class_names: list[str]
    soft_targets: Tensor | None  # --synthetic-labels teacher: targets of every training image
    phase: str
    model: nn.Module
    net: nn.Module  # ``model``, or its DDP wrapper
    criterion: nn.Module
    sample_criterion: nn.Module  # reduction="none"
    sum_criterion: nn.Module  # reduction="sum"
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Any
    distributed: bool
    guard: Any

    def inputs(self, idx: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The augmented (and mixed) images ``idx`` and their targets: class indices, or class
        probabilities after a mix or with a teacher (main epochs only)."""
        device, table = self.device, self.data.train.labels
        if self.soft_targets is not None and self.phase == MAIN:
            table = self.soft_targets
        x = to_device(self.data.train.images[idx], device)
        y = to_device(table[idx], device)
        return train_inputs(
            x,
            y,
            self.augment,
            hflip=self.cfg.hflip,
            num_classes=len(self.class_names),
            generator=generator,
        )

    def train_step(self, idx: Tensor, generator: torch.Generator) -> tuple[float, int]:
        """One optimizer step on the images ``idx``; returns (summed loss, correct predictions)."""
        device, n = self.device, len(idx)
        x, target = self.inputs(idx, generator)
        if self.distributed:  # this rank's part of the global batch, augmented as one process does
            part = batch_part(n)
            x, target, idx = x[part], target[part], idx[part]
        x = x.contiguous(memory_format=memory_format(device))
        with autocast(device):
            logits = self.net(x)
            if self.cfg.synthetic_weight != 1 and self.phase == MAIN:  # mixed batches: per sample
                per_sample = self.sample_criterion(logits.float(), target)
                weight = self.cfg.synthetic_weight
                loss = weighted_mean(per_sample, idx, self.data.n_real, weight)
            else:
                loss = self.criterion(logits.float(), target)
        # DDP averages over ranks: weighting by the share makes it the global batch's mean.
        self._optimize(loss * (len(x) * ranks() / n) if self.distributed else loss)
        correct = (logits.argmax(1) == target_labels(target)).sum()
        if not self.distributed:
            return loss.item() * n, int(correct.item())
        loss_sum, correct_sum = self._reduce([loss.item() * len(x), correct.item()])
        return loss_sum, round(correct_sum)

    def split_step(
        self, real: Tensor, synthetic: Tensor, generator: torch.Generator, stream: torch.Generator
    ) -> tuple[float, int, float]:
        """One ``--synthetic-batch`` step: the real images ``real`` augmented from ``generator``
        (first), the synthetic ones from ``stream``, one forward pass over both (the synthetic
        rows through the auxiliary BatchNorms with ``--synthetic-bn separate``). Returns the real
        part's (CE sum, correct) and the synthetic part's CE sum."""
        device = self.device
        x_real, t_real = self.inputs(real, generator)
        x_syn, t_syn = self.inputs(synthetic, stream)
        if self.distributed:  # each part split as one global batch is
            part, other = batch_part(len(real)), batch_part(len(synthetic))
            x_real, t_real, x_syn, t_syn = x_real[part], t_real[part], x_syn[other], t_syn[other]
        x = torch.cat([x_real, x_syn]).contiguous(memory_format=memory_format(device))
        separate = self.cfg.synthetic_bn == "separate"
        split = auxiliary_split(self.model, len(x_real)) if separate else contextlib.nullcontext()
        with split, autocast(device):
            logits = self.net(x)
            loss, real_sum, syn_sum = two_part_loss(
                self.sum_criterion,
                logits.float(),
                t_real,
                t_syn,
                real_total=len(real),
                synthetic_total=len(synthetic),
                weight=self.cfg.synthetic_weight,
            )
        self._optimize(loss * ranks() if self.distributed else loss)  # DDP averages over ranks
        correct = (logits[: len(x_real)].argmax(1) == target_labels(t_real)).sum()
        sums = [real_sum.item(), correct.item(), syn_sum.item()]
        loss_sum, correct_sum, syn_loss_sum = self._reduce(sums) if self.distributed else sums
        return loss_sum, round(correct_sum), syn_loss_sum

    def _optimize(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.phase == MAIN:
            self.scheduler.step()

    def _reduce(self, values: list[float]) -> list[float]:
        """Sums over the ranks of ``values``, carrying the Ctrl-C votes in the same all-reduce."""
        assert isinstance(self.guard, AgreedStop)
        *sums, votes = all_sum([*values, self.guard.flag()])
        self.guard.agree(votes)
        return sums
