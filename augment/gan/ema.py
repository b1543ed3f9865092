"""Exponential moving average of the generator's weights (as in Karras et al. 2018 and StudioGAN),
used for sampling and evaluation: it smooths the oscillation of adversarial training.

The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
num_updates rule of TensorFlow's ExponentialMovingAverage), so early, random weights are forgotten
quickly and a short run is not dominated by its initialisation. Buffers (BatchNorm running
statistics) are copied, not averaged.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(updates: int, decay: float) -> float:
    """The decay used for update number ``updates`` (0-based)."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; copy buffers."""
    for ema_p, p in zip(ema_model.parameters(), model.parameters(), strict=True):
        ema_p.lerp_(p.detach(), 1.0 - decay)
    for ema_b, b in zip(ema_model.buffers(), model.buffers(), strict=True):
        ema_b.copy_(b)
