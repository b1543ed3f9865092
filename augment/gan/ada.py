"""Adaptive augmentation strength: the overfitting heuristic of ADA (Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data", https://arxiv.org/abs/2006.06676) driving the
probability with which DiffAugment applies each of its transforms.

ADA measures ``r_t = E[sign(D(x_real))]`` over the real images D saw in the last ``interval``
minibatches (0: D cannot tell its training images from fakes; 1: it is sure of every one, i.e.
it overfits) and every ``interval`` minibatches moves the augmentation probability ``p`` by
``sign(r_t - target) * batch * interval / (kimg * 1000)``, clamped to [0, 1]: p rises while D
overfits and falls once augmentation has stopped it. ADA's constants are target 0.6, interval 4
and ``kimg`` 500 (p can go from 0 to 1 in 500k images, about 2% of its multi-million-image runs).

Our runs are some 100x shorter (the quick preset shows D 96k images in all), so 500k images
would leave p below 0.2 for the whole run. The default here is ``kimg`` 20: p can cross [0, 1] in
20k images (625 iterations at batch 32), a fifth of a quick run, so it can follow D through the
run; every adjustment then moves p by 0.0064 at batch 32. Like ADA, p starts at 0. With several
processes the signs are summed over the ranks before each adjustment (as StyleGAN2-ADA does), so
every rank moves p alike, by the global batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from core.distributed import is_active
from core.ranks import all_sum


class AdaptiveAugment:
    """The augmentation probability ``p`` and the statistics that adjust it (see the module)."""

    def __init__(self, target: float, interval: int, kimg: float, batch_size: int) -> None:
        self.target, self.interval = target, interval
        self.speed = batch_size * interval / (kimg * 1000.0)  # change of p per adjustment
        self.p = 0.0
        self.r_t: float | None = None  # the last interval's r_t, for logging
        self.sign_sum, self.seen, self.batches = 0.0, 0, 0

    def observe(self, d_real: torch.Tensor) -> float:
        """Accumulate the signs of D's outputs on one real batch; return the batch's mean sign."""
        signs = torch.sign(d_real.detach().float())
        total = float(signs.sum().item())
        self.sign_sum += total
        self.seen += signs.numel()
        self.batches += 1
        return total / max(1, signs.numel())

    def adjust(self) -> bool:
        """After every ``interval`` observed batches: move p by the sign of ``r_t - target``,
        clamp it to [0, 1] and start a new interval. Returns whether it adjusted."""
        if self.batches < self.interval:
            return False
        sign_sum, seen = self.sign_sum, self.seen
        if is_active():  # every rank's signs
            sign_sum, seen = all_sum([sign_sum, seen])
        self.r_t = sign_sum / max(1, seen)
        step = math.copysign(self.speed, self.r_t - self.target) if self.r_t != self.target else 0.0
        self.p = min(1.0, max(0.0, self.p + step))
        self.sign_sum, self.seen, self.batches = 0.0, 0, 0
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "r_t": self.r_t, "sign_sum": self.sign_sum, "seen": self.seen,
                "batches": self.batches}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p, self.r_t = float(state["p"]), state["r_t"]
        self.sign_sum, self.seen = float(state["sign_sum"]), int(state["seen"])
        self.batches = int(state["batches"])
