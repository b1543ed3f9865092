"""Exponential moving average of the generator's weights (as in Karras et al. 2018 and StudioGAN),
used for sampling and evaluation: it smooths the oscillation of adversarial training.

The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
num_updates rule of TensorFlow's ExponentialMovingAverage), so early, random weights are forgotten
quickly and a short run is not dominated by its initialisation. Buffers (BatchNorm running
statistics) are copied, not averaged; for sampling, :func:`standing_statistics` re-estimates them
for the averaged weights.
"""

from __future__ import annotations

from copy import deepcopy

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


@torch.no_grad()
def standing_statistics(
    generator: nn.Module, batches: int, batch_size: int, seed: int
) -> nn.Module:
    """A copy of ``generator`` (in eval mode) whose BatchNorm running statistics are re-estimated
    for its own weights: "standing statistics" (Brock et al. 2019, "Large Scale GAN Training for
    High Fidelity Natural Image Synthesis", Sec. 3.1 and Appendix C). The EMA generator's copied
    statistics belong to the raw G's weights, not to the averaged ones, so in eval mode its
    activations are normalised with the wrong mean and variance; here the copy runs ``batches``
    training-mode batches of ``batch_size`` (fake labels uniform over the classes, as in training;
    each model of a per-class generator its own class's batches) and keeps the plain average of
    their batch statistics. The noise comes from its own generator seeded by ``seed``, so the
    result is deterministic and the global RNG is untouched. ``batches`` 0 returns the generator
    itself, unchanged."""
    if batches <= 0:
        return generator
    sampler = deepcopy(generator)
    # A PerClassGenerator holds one model per class: each gets its own class's batches.
    parts = list(getattr(sampler, "generators", [sampler]))
    noise = torch.Generator().manual_seed(seed)
    device = next(sampler.parameters()).device
    for part in parts:
        norms = [m for m in part.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches
        part.train()
        for _ in range(batches):
            z = torch.randn(batch_size, part.z_size, generator=noise)
            y = torch.randint(part.num_classes, (batch_size,), generator=noise)
            part(z.to(device), y.to(device))
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
    return sampler.eval().requires_grad_(False)
