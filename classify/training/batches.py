"""Mini-batches drawn from in-memory tensors, with one seeded random stream per epoch.

An epoch's order and augmentation come from one CPU ``torch.Generator`` seeded from (seed, epoch):
first the permutation, then each batch's augmentation parameters in turn. A run resumed at any
batch restores that generator's state and continues the identical stream, and epochs do not depend
on how many random numbers earlier epochs consumed.

With ``--synthetic-batch`` the synthetic part of each step has a stream of its own, seeded from
(seed, epoch, SYNTHETIC_STREAM) (:func:`synthetic_generator`): first the synthetic permutation
(:func:`cycled_batches`), then each step's synthetic augmentation. The real part keeps the epoch
generator to itself, so its batches and their augmentation are the real-only run's draw for draw.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

SYNTHETIC_STREAM = 1  # the third SeedSequence word of the synthetic part's generator


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for ``epoch`` (1-based); SeedSequence decorrelates neighbouring seeds."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def synthetic_generator(seed: int, epoch: int) -> torch.Generator:
    """The synthetic part's generator for ``epoch``: independent of :func:`epoch_generator`'s."""
    words = [seed, epoch, SYNTHETIC_STREAM]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]
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


def cycled_batches(n: int, size: int, steps: int, generator: torch.Generator) -> list[Tensor]:
    """``steps`` batches of ``size`` indices from one random permutation of ``range(n)``, read in
    order and started over from its beginning when it runs out (so each image comes once before
    any comes twice; ``size`` <= ``n`` keeps a batch free of repeats)."""
    order = torch.randperm(n, generator=generator)
    return [order[torch.arange(s * size, (s + 1) * size) % n] for s in range(steps)]


def ordered_batches(n: int, batch_size: int) -> list[Tensor]:
    """``range(n)`` in order, in chunks of ``batch_size`` (evaluation)."""
    return list(torch.arange(n).split(batch_size))
