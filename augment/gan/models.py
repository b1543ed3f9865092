"""The class-conditional DCGAN and its per-class (unconditional) ensemble.

Generator and discriminator follow the DCGAN rules of Radford et al. 2016 ("Unsupervised
Representation Learning with Deep Convolutional GANs", https://arxiv.org/abs/1511.06434): strided
(transposed) convolutions and no pooling, BatchNorm in G, LeakyReLU(0.2) in D, tanh output, weights
drawn from N(0, 0.02). Conditioning: G reads the noise concatenated with a learned class embedding
(``g_conditioning="concat"``) or, with "cbn", through class-conditional BatchNorm
(:mod:`augment.gan.cbn`); D ends in the projection head of Miyato & Koyama 2018 ("cGANs with
Projection Discriminator", https://arxiv.org/abs/1802.05637): ``out = linear(h) + <embed(y), h>``
on sum-pooled features.
Spectral normalisation (Miyato et al. 2018) is optional in D; with it D drops BatchNorm, as SN-DCGAN
does. A model built with ``num_classes=1`` is an unconditional DCGAN (no embedding, no projection).

``PerClassGenerator`` holds one such unconditional generator per class (the reading of Frid-Adar et
al. 2018, "GAN-based synthetic medical image augmentation") behind the same ``z_size``,
``num_classes``, ``forward(z, y)`` interface as the conditional generator, so sampling, synthesis
and torch-fidelity treat both kinds alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn
from torch.nn.utils import spectral_norm as apply_spectral_norm

from augment.gan.cbn import CbnGenerator

IMAGE_SIZES = (32, 64, 128)
MAX_WIDTH_MULT = 8  # caps channels at 8 x ngf/ndf, as the 64 px DCGAN does, also at 128 px


class GanArchitecture(Protocol):
    """The fields of :class:`augment.gan.config.GanConfig` that shape the networks."""

    image_size: int
    z_size: int
    embed_dim: int
    g_conditioning: str
    ngf: int
    ndf: int
    spectral_norm: bool
    minibatch_std: bool
    per_class_models: bool


def check_image_size(image_size: int) -> int:
    """Number of 2x up/down-sampling stages between 4x4 and ``image_size``."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size {image_size}: the DCGAN supports {IMAGE_SIZES}")
    return int(math.log2(image_size)) - 2


def generator_widths(image_size: int, ngf: int) -> list[int]:
    """G's channels from 4x4 up: ngf * 2**(stages-1), ..., ngf (capped at MAX_WIDTH_MULT * ngf)."""
    stages = check_image_size(image_size)
    return [ngf * min(MAX_WIDTH_MULT, 2 ** (stages - 1 - i)) for i in range(stages)]


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) for conv/linear/embedding weights, N(1, 0.02) for BatchNorm scales (Radford et al.)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (N x z_size) and labels y (N,) -> images N x 3 x S x S in [-1, 1]."""

    def __init__(
        self,
        num_classes: int,
        image_size: int = 32,
        z_size: int = 128,
        ngf: int = 32,
        embed_dim: int = 128,
    ) -> None:
        super().__init__()
        widths = generator_widths(image_size, ngf)
        self.z_size = z_size
        self.num_classes = num_classes
        self.image_size = image_size
        conditional = num_classes > 1
        self.embed = nn.Embedding(num_classes, embed_dim) if conditional else None
        in_dim = z_size + (embed_dim if conditional else 0)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional generator needs class labels y")
            z = torch.cat([z, self.embed(y.long())], dim=1)
        return self.net(z[:, :, None, None])


class MinibatchStd(nn.Module):
    """Append one channel holding the batch's mean feature standard deviation (Karras et al. 2018,
    "Progressive Growing of GANs"): a batch of near-identical fakes gets a telltale value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.float().var(dim=0, unbiased=False).add(1e-8).sqrt().mean().to(x.dtype)
        return torch.cat([x, std.expand(x.size(0), 1, x.size(2), x.size(3))], dim=1)


class Discriminator(nn.Module):
    """Images N x 3 x S x S in [-1, 1] and labels y -> one logit per image (> 0 means "real")."""

    def __init__(
        self,
        num_classes: int,
        image_size: int = 32,
        ndf: int = 32,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
    ) -> None:
        super().__init__()
        stages = check_image_size(image_size)
        self.num_classes = num_classes
        sn = apply_spectral_norm if spectral_norm else (lambda m: m)
        widths = [ndf * min(MAX_WIDTH_MULT, 2**i) for i in range(stages)]
        # No normalisation on the first layer (Radford et al.); BatchNorm after the others unless SN.
        layers: list[nn.Module] = [sn(nn.Conv2d(3, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers.append(sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=spectral_norm)))
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
        self.net = nn.Sequential(*layers)  # -> N x widths[-1] x 4 x 4
        # Optional minibatch standard deviation (Karras et al. 2018): D sees how varied the batch
        # is, which lets it punish a generator that collapses onto few modes.
        self.mbstd = (
            nn.Sequential(
                MinibatchStd(),
                sn(nn.Conv2d(widths[-1] + 1, widths[-1], 3, 1, 1)),
                nn.LeakyReLU(0.2, True),
            )
            if minibatch_std
            else nn.Identity()
        )
        self.linear = sn(nn.Linear(widths[-1], 1))
        self.embed = sn(nn.Embedding(num_classes, widths[-1])) if num_classes > 1 else None
        dcgan_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.mbstd(self.net(x)).sum(dim=(2, 3))  # sum pooling, as in projection D
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs class labels y")
            out = out + (self.embed(y.long()) * h).sum(dim=1)
        return out


class PerClassGenerator(nn.Module):
    """One unconditional generator per class behind the conditional interface ``forward(z, y)``.

    Sample ``i`` comes from ``generators[y[i]]`` fed ``z[i]``; in eval mode an image depends only on
    its own noise and class, as with the conditional generator.
    """

    def __init__(self, generators: list[Generator]) -> None:
        super().__init__()
        self.generators = nn.ModuleList(generators)
        self.z_size = generators[0].z_size
        self.num_classes = len(generators)
        self.image_size = generators[0].image_size

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.long()
        out = z.new_empty(z.size(0), 3, self.image_size, self.image_size)
        for label in torch.unique(y).tolist():
            mask = y == label
            out[mask] = self.generators[label](z[mask])
        return out


class PerClassDiscriminator(nn.Module):
    """The discriminators matching :class:`PerClassGenerator` (trained pairwise, never jointly)."""

    def __init__(self, discriminators: list[Discriminator]) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(discriminators)
        self.num_classes = len(discriminators)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.long()
        out = x.new_empty(x.size(0))
        for label in torch.unique(y).tolist():
            mask = y == label
            out[mask] = self.discriminators[label](x[mask])
        return out


def concat_generator(cfg: GanArchitecture, num_classes: int) -> Generator:
    """The DCGAN generator reading a class embedding concatenated to the noise."""
    return Generator(num_classes, cfg.image_size, cfg.z_size, cfg.ngf, cfg.embed_dim)


def cbn_generator(cfg: GanArchitecture, num_classes: int) -> nn.Module:
    """The DCGAN generator conditioned by class-dependent BatchNorm gains and biases."""
    generator = CbnGenerator(num_classes, generator_widths(cfg.image_size, cfg.ngf), cfg.z_size)
    dcgan_init(generator)
    generator.reset_norms()  # dcgan_init drew the gain/bias embeddings from N(0, 0.02)
    return generator


# g_conditioning -> builder (augment.gan.config.G_CONDITIONINGS mirrors the keys).
GENERATORS: dict[str, Callable[[GanArchitecture, int], nn.Module]] = {
    "concat": concat_generator,
    "cbn": cbn_generator,
}


def build_generator(cfg: GanArchitecture, num_classes: int) -> nn.Module:
    """The conditional generator, or with ``cfg.per_class_models`` one unconditional one per class."""
    make = GENERATORS[cfg.g_conditioning]
    if cfg.per_class_models:
        return PerClassGenerator([make(cfg, 1) for _ in range(num_classes)])
    return make(cfg, num_classes)


def build_discriminator(cfg: GanArchitecture, num_classes: int) -> nn.Module:
    def one(n: int) -> Discriminator:
        return Discriminator(n, cfg.image_size, cfg.ndf, cfg.spectral_norm, cfg.minibatch_std)

    if cfg.per_class_models:
        return PerClassDiscriminator([one(1) for _ in range(num_classes)])
    return one(num_classes)
