"""How synthetic images enter a classifier's steps: batches, losses and exposure per recipe.

Each epoch's real and synthetic batches, their losses, and the real and synthetic images a run
shows. The recipes below are chosen by ``TrainConfig``'s synthetic fields (the study names
combinations of them: :mod:`study.pipeline.recipes`).

- ``--synthetic-batch 0`` (default): the synthetic images join the real ones in one training set
  and batches are drawn from both ("mixed batches"); with ``--epoch-size n_real`` the steps are
  fixed and the synthetic images dilute the real ones.
- ``--synthetic-batch B``: real exposure held fixed (He et al. 2023, "Is synthetic data from
  generative models ready for image recognition?", ICLR): every step takes a full real batch exactly
  as the real-only baseline does (the same permutation, the same number of steps per epoch, the
  same augmentation: the epoch generator is the real part's alone) plus B synthetic images from a
  per-epoch permutation of the synthetic pool, cycled when it runs out, drawn from a generator of
  their own (:func:`classify.training.batches.synthetic_generator`). Order of draws: epoch
  generator: real permutation, then per step the real batch's augmentation (and mix); synthetic
  generator: synthetic permutation, then per step the synthetic batch's augmentation (and mix). A
  step is one forward pass over ``cat(real, synthetic)``; its loss is
  ``mean CE(real) + W * mean CE(synthetic)`` (:func:`two_part_loss`), and mixup/CutMix mix within
  each part. Training loss and accuracy in the history are the real part's;
  ``train_synthetic_loss`` is the synthetic part's mean CE (before the weight).
- ``--synthetic-weight W``: the synthetic part's weight; with mixed batches per sample (synthetic
  samples' CE times W, real ones times 1, mean over the batch: :func:`weighted_mean`; a mixed
  sample takes the weight of the image it was mixed into).
- ``--synthetic-labels teacher``: soft targets from a real-trained run (:mod:`.teacher`).
- ``--synthetic-bn separate``: auxiliary BatchNorm for the synthetic part
  (:mod:`classify.models.dual_bn`).
- ``--finetune-real-epochs K``: after the main epochs, K epochs on the real images only at the
  constant ``--finetune-lr`` (Hennicke et al. 2024, "Mind the Gap Between Synthetic and Real:
  Utilizing Transfer Learning to Probe the Boundaries of Stable Diffusion Generated Data"), the
  learning-rate schedule paused. Each such epoch draws its real batches from the epoch generator
  of its own number (epochs + 1 ...), as a main epoch would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from classify.training.batches import (
    cycled_batches,
    epoch_batches,
    epoch_generator,
    num_batches,
    synthetic_generator,
)
from classify.training.config import TrainConfig
from core.errors import UserError

MAIN, FINETUNE = "main", "finetune"


@dataclass
class EpochPlan:
    """One epoch's batches (indices into the training tensors) and the generators they draw
    their augmentation from."""

    epoch: int
    phase: str  # MAIN or FINETUNE
    batches: list[Tensor]  # mixed batches, or the real part of each step
    generator: torch.Generator
    synthetic: list[Tensor] | None = None  # --synthetic-batch: each step's synthetic part
    synthetic_generator: torch.Generator | None = None


@dataclass(frozen=True)
class Sizes:
    """How many images a run has and draws per epoch."""

    n_real: int  # real images at the start of the training tensors
    n_synthetic: int  # synthetic images after them
    epoch_size: int  # images per main epoch (the real ones with --synthetic-batch)
    real_epoch_size: int  # real images per real-only (finetune) epoch

    @classmethod
    def of(cls, cfg: TrainConfig, n_real: int, n_synthetic: int) -> Sizes:
        total = n_real + n_synthetic
        real = min(cfg.epoch_size or n_real, n_real)
        main = real if cfg.synthetic_batch else min(cfg.epoch_size or total, total)
        return cls(n_real, n_synthetic, main, real)


def plan_epoch(cfg: TrainConfig, sizes: Sizes, epoch: int) -> EpochPlan:
    """The batches of ``epoch`` (1-based; past ``cfg.epochs``: a finetune epoch)."""
    generator = epoch_generator(cfg.seed, epoch)
    phase = FINETUNE if epoch > cfg.epochs else MAIN
    if phase == MAIN and not cfg.synthetic_batch:
        total = sizes.n_real + sizes.n_synthetic
        batches = epoch_batches(total, cfg.batch_size, generator, sizes.epoch_size)
        return EpochPlan(epoch, phase, batches, generator)
    real = epoch_batches(sizes.n_real, cfg.batch_size, generator, sizes.real_epoch_size)
    if phase == FINETUNE:
        return EpochPlan(epoch, phase, real, generator)
    stream = synthetic_generator(cfg.seed, epoch)
    cycled = cycled_batches(sizes.n_synthetic, cfg.synthetic_batch, len(real), stream)
    synthetic = [sizes.n_real + b for b in cycled]
    return EpochPlan(epoch, phase, real, generator, synthetic, stream)


def check_sizes(cfg: TrainConfig, sizes: Sizes) -> None:
    """Refuse a synthetic batch larger than the synthetic pool (it would repeat images)."""
    if cfg.synthetic_batch > sizes.n_synthetic:
        raise UserError(
            f"--synthetic-batch {cfg.synthetic_batch}: the synthetic set has "
            f"{sizes.n_synthetic} images; use at most {sizes.n_synthetic}"
        )


def check_ranks(cfg: TrainConfig, world: int, sync_bn: bool) -> None:
    """What several processes cannot split: B must divide by the ranks; the auxiliary BatchNorm
    needs local statistics (SyncBatchNorm would replace it)."""
    if world <= 1:
        return
    batch = cfg.synthetic_batch
    if batch % world:
        raise UserError(
            f"--synthetic-batch {batch}: split across {world} processes, it must divide by "
            f"{world}; use {batch - batch % world or world} or {batch - batch % world + world}"
        )
    if cfg.synthetic_bn == "separate" and sync_bn:
        raise UserError(
            "--synthetic-bn separate: SyncBatchNorm would replace the auxiliary BatchNorm; "
            "add --local-bn"
        )
    if cfg.synthetic_bn == "separate" and batch // world < 2:
        raise UserError(
            f"--synthetic-batch {batch}: {batch // world} synthetic image(s) per process, too "
            f"few for the auxiliary BatchNorm; use at least {2 * world}"
        )
    if cfg.synthetic_bn == "separate" and cfg.finetune_real_epochs:
        raise UserError(
            "--synthetic-bn separate with --finetune-real-epochs: not supported with several "
            "processes (the auxiliary BatchNorm gets no gradient then); train in one process"
        )


def weighted_mean(per_sample: Tensor, idx: Tensor, n_real: int, weight: float) -> Tensor:
    """The mean over a mixed batch of ``per_sample`` losses of the images ``idx`` (this rank's),
    the synthetic ones (``idx >= n_real``) weighted by ``weight``, the real ones by 1."""
    weights = torch.where(idx >= n_real, weight, 1.0).to(per_sample.device, per_sample.dtype)
    return (per_sample * weights).sum() / len(per_sample)


def two_part_loss(
    criterion_sum: nn.Module,
    logits: Tensor,
    real_target: Tensor,
    synthetic_target: Tensor,
    *,
    real_total: int,
    synthetic_total: int,
    weight: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """``logits`` of ``cat(real, synthetic)`` rows (this rank's parts of the global batch):
    (loss, real CE sum, synthetic CE sum), loss = real sum / ``real_total`` + ``weight`` *
    synthetic sum / ``synthetic_total``. With the global counts, the ranks' losses add up to the
    global batch's (DDP averages: scale by the number of ranks)."""
    n = len(real_target)
    real = criterion_sum(logits[:n], real_target)
    synthetic = criterion_sum(logits[n:], synthetic_target)
    return real / real_total + weight * synthetic / synthetic_total, real, synthetic


def presentations(cfg: TrainConfig, sizes: Sizes) -> dict[str, int]:
    """Real and synthetic images shown over the whole schedule, and the optimizer steps (mixed
    batches: counted from the epochs' permutations themselves)."""
    main_steps = num_batches(sizes.epoch_size, cfg.batch_size)
    finetune_steps = num_batches(sizes.real_epoch_size, cfg.batch_size)
    total = sizes.n_real + sizes.n_synthetic
    if cfg.synthetic_batch:
        real = cfg.epochs * sizes.real_epoch_size
        synthetic = cfg.epochs * main_steps * cfg.synthetic_batch
    elif sizes.epoch_size == total or not sizes.n_real or not sizes.n_synthetic:
        real = cfg.epochs * sizes.epoch_size * sizes.n_real // total
        synthetic = cfg.epochs * sizes.epoch_size - real
    else:  # a random subset each epoch: replay the permutations (the first draw of each epoch)
        real = 0
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(total, generator=epoch_generator(cfg.seed, epoch))
            real += int((order[: sizes.epoch_size] < sizes.n_real).sum())
        synthetic = cfg.epochs * sizes.epoch_size - real
    return {
        "real_presentations": real + cfg.finetune_real_epochs * sizes.real_epoch_size,
        "synthetic_presentations": synthetic,
        "optimizer_steps": cfg.epochs * main_steps + cfg.finetune_real_epochs * finetune_steps,
    }


def recipe_summary(cfg: TrainConfig, teacher: dict[str, Any] | None) -> dict[str, Any]:
    """config.json's ``synthetic.recipe``."""
    return {
        "batch": cfg.synthetic_batch,
        "mode": "fixed-real-exposure" if cfg.synthetic_batch else "mixed-batches",
        "weight": cfg.synthetic_weight,
        "labels": cfg.synthetic_labels,
        "teacher": teacher,
        "temperature": cfg.temperature if teacher is not None else None,
        "bn": cfg.synthetic_bn,
        "finetune_real_epochs": cfg.finetune_real_epochs,
        "finetune_lr": cfg.finetune_learning_rate if cfg.finetune_real_epochs else None,
    }
