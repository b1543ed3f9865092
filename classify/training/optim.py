"""Optimizers and per-step learning-rate schedules for classifier training.

Weight decay applies to conv and linear weights only: BatchNorm scales/shifts and biases (every
parameter with fewer than 2 dimensions) are exempt. Decaying a BatchNorm scale does not regularise
the function (the following normalisation undoes it) but does shrink the effective learning rate,
and biases have too few degrees of freedom to overfit ("no bias decay", He et al. 2019, "Bag of
Tricks for Image Classification with Convolutional Neural Networks", sec. 3.1).

Schedules are pure functions ``factor(step, total_steps, warmup_steps)`` scaling the base learning
rate, stepped once per batch through ``LambdaLR``. Because the function is a closure, a scheduler's
state dict holds only its step count, so a run extended to more epochs rebuilds its schedule over
the new total and re-applies it at the saved step (see :func:`apply_schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import SGD, Adam, AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from classify.training.config import TrainConfig

Schedule = Callable[[int, int, int], float]

ONECYCLE_PCT_START = 0.3  # torch.optim.lr_scheduler.OneCycleLR defaults
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights of rank >= 2 with ``weight_decay``; BatchNorm/LayerNorm parameters,
    biases and the names a model lists in ``no_weight_decay()`` (timm's convention: a ViT's
    position embedding and class token) without."""
    skip = getattr(model, "no_weight_decay", None)
    excluded = set(skip()) if callable(skip) else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 and name not in excluded else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# The optimizers by --optimizer name (keys: classify.names.OPTIMIZERS).
OPTIMIZER_BUILDERS: dict[str, Callable[[list[dict[str, Any]], TrainConfig], Optimizer]] = {
    "sgd": lambda groups, cfg: SGD(
        groups, lr=cfg.learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov
    ),
    "adam": lambda groups, cfg: Adam(groups, lr=cfg.learning_rate),
    "adamw": lambda groups, cfg: AdamW(groups, lr=cfg.learning_rate),
}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> Optimizer:
    return OPTIMIZER_BUILDERS[cfg.optimizer](parameter_groups(model, cfg.decay), cfg)


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))) / 2


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero (Loshchilov & Hutter 2017,
    SGDR, without restarts)."""
    if step < warmup:
        return (step + 1) / warmup
    return _cosine(1.0, 0.0, (step - warmup) / max(1, total - warmup))


def onecycle_factor(step: int, total: int, warmup: int) -> float:
    """The 1cycle shape (Smith & Topin 2017) as torch's OneCycleLR draws it with cosine annealing:
    from lr/25 up to lr over the first 30% of steps, then down to lr/(25 * 1e4). Momentum is not
    cycled. ``warmup`` is unused: the cycle has its own."""
    up = max(1, round(ONECYCLE_PCT_START * total) - 1)
    low = 1 / ONECYCLE_DIV_FACTOR
    if step <= up:
        return _cosine(low, 1.0, step / up)
    return _cosine(1.0, low / ONECYCLE_FINAL_DIV_FACTOR, (step - up) / max(1, total - 1 - up))


def constant_factor(step: int, total: int, warmup: int) -> float:
    return 1.0


# The schedules by --scheduler name (keys: classify.names.SCHEDULERS).
SCHEDULES: dict[str, Schedule] = {
    "cosine": cosine_factor,
    "onecycle": onecycle_factor,
    "none": constant_factor,
}


def warmup_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Warm-up length in steps, at most a quarter of the run."""
    total = cfg.epochs * steps_per_epoch
    return min(round(cfg.warmup_epochs * steps_per_epoch), total // 4)


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """A per-batch scheduler for ``cfg.scheduler`` over ``cfg.epochs * steps_per_epoch`` steps."""
    total = cfg.epochs * steps_per_epoch
    warmup = warmup_steps(cfg, steps_per_epoch)
    schedule = SCHEDULES[cfg.scheduler]

    def factor(step: int) -> float:
        return schedule(step, total, warmup)

    return LambdaLR(optimizer, factor)


def apply_schedule(scheduler: LambdaLR) -> None:
    """Set every group's learning rate to the schedule's value at the scheduler's current step.

    Called after loading a checkpoint: for an unchanged run it rewrites the value the optimizer
    already holds (bit for bit, as LambdaLR computes it the same way); for an extended run it moves
    the learning rate onto the new, longer schedule.
    """
    step = scheduler.last_epoch
    for group, base_lr, fn in zip(
        scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        group["lr"] = base_lr * fn(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
