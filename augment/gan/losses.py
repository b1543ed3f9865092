"""Adversarial losses on raw discriminator logits, selected by name.

- ``hinge``: Lim & Ye 2017 / Miyato et al. 2018: D minimises relu(1 - D(x)) + relu(1 + D(G(z))),
  G minimises -D(G(z)).
- ``bce``: the non-saturating loss of Goodfellow et al. 2014 as used by DCGAN: D is a logistic
  classifier of real vs fake, G maximises log D(G(z)) (softplus form for numerical stability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


class GanLoss(Protocol):
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class HingeLoss:
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


@dataclass(frozen=True)
class NonSaturatingLoss:
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        # -log sigmoid(r) - log(1 - sigmoid(f)) == softplus(-r) + softplus(f)
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()


LOSSES: dict[str, GanLoss] = {"hinge": HingeLoss(), "bce": NonSaturatingLoss()}
