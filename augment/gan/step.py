"""One training iteration of one G/D pair: a discriminator step, then a generator step.

The generated batch is made once per iteration: D learns from it detached, then G is updated
through the freshly stepped D (as in the PyTorch DCGAN example). DiffAugment (Zhao et al. 2020)
transforms real and fake images in both steps, every transform on every image, or with
``ada_target`` each with the adaptive probability p of :mod:`augment.gan.ada`. D's loss is the
adversarial loss plus, when enabled, the LeCam term and the (lazy) R1 penalty of
:mod:`augment.gan.regularizers`; the logged ``d_loss`` is the adversarial part alone, the
regularisers are logged as ``lecam_loss`` and ``r1_loss`` (the terms as added to D's loss; R1's
is 0 on the iterations a lazy interval skips). The EMA generator follows G after the step. Every
random draw comes from the one CPU ``torch.Generator`` passed in, in a fixed order.

With several processes G and D are DistributedDataParallel modules (:mod:`core.ddp`); each rank
draws ``batch`` (its share of the global batch) images, noise and augmentations from its own
generator; the G step runs D's inner module (D's parameters are frozen there, so DDP has nothing
to reduce), and the EMA follows G's inner module (identical on every rank).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from augment.gan.ada import AdaptiveAugment
from augment.gan.config import GanConfig
from augment.gan.diffaugment import diff_augment
from augment.gan.ema import ema_decay_at, ema_update
from augment.gan.losses import GanLoss
from augment.gan.regularizers import LecamAnchors, r1_penalty
from augment.gan.run import Meter
from core.data import to_model_input
from core.ddp import unwrap
from core.device import autocast

Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GanPair:
    """One G/D pair trained together, its optimizers, the images it learns from, and the state of
    its regularisers (None when off)."""

    generator: nn.Module
    discriminator: nn.Module
    ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    images: torch.Tensor  # uint8 N x 3 x S x S on the device
    labels: torch.Tensor  # labels as this pair's models see them (all 0 for a per-class model)
    num_classes: int
    lecam: LecamAnchors | None = None
    ada: AdaptiveAugment | None = None

    def regularizer_state(self) -> dict[str, Any]:
        return {
            "lecam": None if self.lecam is None else self.lecam.state_dict(),
            "ada": None if self.ada is None else self.ada.state_dict(),
        }

    def load_regularizer_state(self, state: dict[str, Any]) -> None:
        if self.lecam is not None:
            self.lecam.load_state_dict(state["lecam"])
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])


def stat_keys(cfg: GanConfig) -> tuple[str, ...]:
    """The statistics one iteration reports under ``cfg`` (the base four, plus the enabled
    regularisers' and ADA's)."""
    extra = [("lecam_loss",) if cfg.lecam_weight > 0 else (),
             ("r1_loss",) if cfg.r1_gamma > 0 else (),
             ("augment_p", "d_real_sign") if cfg.ada_enabled else ()]  # fmt: skip
    return Meter.KEYS + tuple(key for keys in extra for key in keys)


def regularizers_for(cfg: GanConfig) -> dict[str, Any]:
    """A fresh pair's ``lecam`` and ``ada`` (None where ``cfg`` turns them off)."""
    lecam = LecamAnchors(cfg.lecam_decay) if cfg.lecam_weight > 0 else None
    ada = None
    if cfg.ada_enabled:
        assert cfg.ada_target is not None
        ada = AdaptiveAugment(cfg.ada_target, cfg.ada_interval, cfg.ada_kimg, cfg.batch_size)
    return {"lecam": lecam, "ada": ada}


class PairStep:
    """``step(pair, iteration) -> statistics``: one iteration of one pair (see the module)."""

    def __init__(
        self,
        cfg: GanConfig,
        loss: GanLoss,
        noise: torch.Generator,
        device: torch.device,
        batch: int | None = None,
    ) -> None:
        self.cfg, self.loss, self.noise, self.device = cfg, loss, noise, device
        self.batch = cfg.batch_size if batch is None else batch  # this rank's share

    def __call__(self, pair: GanPair, iteration: int) -> dict[str, float]:
        cfg, device, noise = self.cfg, self.device, self.noise
        batch = self.batch
        index = torch.randint(len(pair.images), (batch,), generator=noise).to(device)
        z = torch.randn(batch, cfg.z_size, generator=noise).to(device)
        y_fake = torch.randint(pair.num_classes, (batch,), generator=noise).to(device)
        real, y_real = to_model_input(pair.images[index]), pair.labels[index]
        p = None if pair.ada is None else pair.ada.p

        def augment(x: torch.Tensor) -> torch.Tensor:
            return diff_augment(x, cfg.diffaugment, noise, p)

        with autocast(device):
            fake = pair.generator(z, y_fake)
        stats = self._d_step(pair, augment, (real, y_real), (fake.detach(), y_fake), iteration)
        stats["g_loss"] = self._g_step(pair, augment, fake, y_fake)
        ema_update(pair.ema, unwrap(pair.generator), ema_decay_at(iteration, cfg.ema_decay))
        if pair.ada is not None and p is not None:
            stats["augment_p"] = p
            pair.ada.adjust()
        return stats

    def _d_step(
        self,
        pair: GanPair,
        augment: Augment,
        real_batch: tuple[torch.Tensor, torch.Tensor],
        fake_batch: tuple[torch.Tensor, torch.Tensor],
        iteration: int,
    ) -> dict[str, float]:
        """D's step on real and detached fake images; returns D's statistics."""
        cfg, (real, y_real), (fake, y_fake) = self.cfg, real_batch, fake_batch
        r1_now = cfg.r1_gamma > 0 and iteration % cfg.r1_interval == 0
        extra: dict[str, float] = {}
        pair.discriminator.requires_grad_(True)
        with autocast(self.device):
            real_in = augment(real)
            if r1_now:
                real_in = real_in.detach().requires_grad_(True)
            d_real = pair.discriminator(real_in, y_real).float()
            d_fake = pair.discriminator(augment(fake), y_fake).float()
            loss_adv = self.loss.d_loss(d_real, d_fake)
            loss_d = loss_adv
            if pair.lecam is not None:
                lecam = cfg.lecam_weight * pair.lecam.penalty(d_real, d_fake)
                loss_d, extra["lecam_loss"] = loss_d + lecam, lecam.item()
            if cfg.r1_gamma > 0:
                r1 = 0.0
                if r1_now:  # lazy: the weight times the interval, every interval-th iteration
                    r1_term = cfg.r1_gamma / 2 * cfg.r1_interval * r1_penalty(d_real, real_in)
                    loss_d, r1 = loss_d + r1_term, r1_term.item()
                extra["r1_loss"] = r1
        pair.opt_d.zero_grad(set_to_none=True)
        pair.scaler_d.scale(loss_d).backward()
        pair.scaler_d.step(pair.opt_d)
        pair.scaler_d.update()
        if pair.ada is not None:
            extra["d_real_sign"] = pair.ada.observe(d_real)
        return {
            "d_loss": loss_adv.item(),
            "d_real_acc": (d_real > 0).float().mean().item(),
            "d_fake_acc": (d_fake < 0).float().mean().item(),
            **extra,
        }

    def _g_step(
        self, pair: GanPair, augment: Augment, fake: torch.Tensor, y_fake: torch.Tensor
    ) -> float:
        """G's step through the updated D (its parameters frozen: no wasted gradients)."""
        discriminator = unwrap(pair.discriminator)  # frozen: no gradients for DDP to reduce
        discriminator.requires_grad_(False)
        with autocast(self.device):
            loss_g = self.loss.g_loss(discriminator(augment(fake), y_fake).float())
        pair.opt_g.zero_grad(set_to_none=True)
        pair.scaler_g.scale(loss_g).backward()
        pair.scaler_g.step(pair.opt_g)
        pair.scaler_g.update()
        discriminator.requires_grad_(True)
        return loss_g.item()
