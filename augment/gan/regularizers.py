"""Discriminator regularisers for small data: LeCam and R1, as pure functions plus the running means
LeCam needs (checkpointed, so a resumed run regularises exactly as an uninterrupted one).

LeCam (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited Data",
https://arxiv.org/abs/2104.03310): the paper's term is
``R_LC = E[||D(x) - alpha_F||^2] + E[||D(G(z)) - alpha_R||^2]``, with ``alpha_R`` and ``alpha_F``
exponential moving averages (decay 0.99) of D's mean output on real and on generated images. The
authors' code (``lecam_reg`` in biggan_cifar/losses.py and ``lecamreg`` in
stylegan2/lecam_loss.py) squares only the part on the wrong side of the anchor,
``mean(relu(D(x) - alpha_F)^2) + mean(relu(alpha_R - D(G(z)))^2)``, and so do we. The averages
follow their StyleGAN2 version: zero-initialised and bias-corrected (``zero_debias=True``), updated
with the current batch before the term is computed, so there is no warm-up to choose (their BigGAN
version starts at 1000 and waits 1000 iterations instead). With several processes the batch means
are averaged over the ranks first, so every rank keeps the same anchors (those of the global batch).

R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
https://arxiv.org/abs/1801.04406): ``gamma / 2 * E[||grad_x D(x)||^2]`` on real images (here the
augmented ones D actually sees, as in StyleGAN2-ADA). Lazy regularisation (Karras et al. 2020,
StyleGAN2): applied every ``interval`` iterations with its weight multiplied by ``interval``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from core.distributed import is_active
from core.ranks import all_mean


class RunningMean:
    """A bias-corrected exponential moving average of a scalar (Adam's / TensorFlow's
    ``zero_debias``): after the first update it equals that value, later ones weigh in by
    ``1 - decay``."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.biased = 0.0
        self.updates = 0

    @property
    def value(self) -> float:
        if self.updates == 0:
            return 0.0
        return self.biased / (1.0 - self.decay**self.updates)

    def update(self, x: float) -> float:
        self.biased = self.decay * self.biased + (1.0 - self.decay) * x
        self.updates += 1
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"biased": self.biased, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.biased, self.updates = float(state["biased"]), int(state["updates"])


def lecam_penalty(
    d_real: torch.Tensor, d_fake: torch.Tensor, alpha_real: float, alpha_fake: float
) -> torch.Tensor:
    """``mean(relu(D(x) - alpha_F)^2) + mean(relu(alpha_R - D(G(z)))^2)`` (Tseng et al. 2021, as in
    their code): zero while D scores real images no higher than the fakes' running mean and fakes
    no lower than the reals' running mean; it grows as D pushes the two apart."""
    real_term = F.relu(d_real - alpha_fake).square().mean()
    fake_term = F.relu(alpha_real - d_fake).square().mean()
    return real_term + fake_term


class LecamAnchors:
    """The running means ``alpha_R`` and ``alpha_F`` of D's outputs on real and generated images."""

    def __init__(self, decay: float = 0.99) -> None:
        self.real, self.fake = RunningMean(decay), RunningMean(decay)

    def penalty(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """Update the anchors with this batch's mean outputs, then :func:`lecam_penalty`."""
        means = [d_real.detach().mean().item(), d_fake.detach().mean().item()]
        if is_active():
            means = all_mean(means)
        alpha_real, alpha_fake = self.real.update(means[0]), self.fake.update(means[1])
        return lecam_penalty(d_real, d_fake, alpha_real, alpha_fake)

    def state_dict(self) -> dict[str, Any]:
        return {"real": self.real.state_dict(), "fake": self.fake.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.real.load_state_dict(state["real"])
        self.fake.load_state_dict(state["fake"])


def r1_penalty(d_real: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """``E[||grad_x D(x)||^2]`` over the batch (Mescheder et al. 2018), differentiable (the caller
    scales it by ``gamma / 2``). ``real_inputs`` must require grad and ``d_real`` be computed from
    them; a D whose output does not depend on its input gets 0."""
    (grad,) = torch.autograd.grad(d_real.sum(), real_inputs, create_graph=True, allow_unused=True)
    if grad is None:
        return d_real.new_zeros(())
    return grad.float().square().flatten(1).sum(dim=1).mean()
