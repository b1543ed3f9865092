"""Mini-batches drawn from in-memory tensors, with one seeded random stream per epoch.

An epoch's order and augmentation come from one CPU ``torch.Generator`` seeded from (seed, epoch):
first the permutation, then each batch's augmentation parameters in turn. A run resumed at any
batch restores that generator's state and continues the identical stream, and epochs do not depend
on how many random numbers earlier epochs consumed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for ``epoch`` (1-based); SeedSequence decorrelates neighbouring seeds."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def num_batches(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def epoch_batches(
    n: int, batch_size: int, generator: torch.Generator, epoch_size: int | None = None
) -> list[Tensor]:
    """A random permutation of ``range(n)`` cut into ``ceil(n / batch_size)`` near-equal batches;
    with ``epoch_size``, only the permutation's first ``epoch_size`` indices (a fresh random subset
    each epoch, so equal step budgets can be set for sets of different sizes).

    Near-equal rather than full batches plus a remainder: no image is dropped, and no step sees a
    tiny last batch (BatchNorm cannot train on a batch of one, and a batch of a few gives noisy
    statistics with a full learning-rate step). Batches hold at most ``batch_size`` images.
    """
    order = torch.randperm(n, generator=generator)
    if epoch_size is not None:
        order = order[:epoch_size]
    return list(torch.tensor_split(order, num_batches(len(order), batch_size)))


def ordered_batches(n: int, batch_size: int) -> list[Tensor]:
    """``range(n)`` in order, in chunks of ``batch_size`` (evaluation)."""
    return list(torch.arange(n).split(batch_size))
