"""Drawing images from a trained generator: seeded noise, labelled sample grids, loading a GAN run.

Determinism: noise is drawn on the CPU from a ``torch.Generator`` seeded per class (so class ``c``'s
images do not depend on how many images other classes get) and the generator runs in eval mode
(BatchNorm uses its running statistics, so an image depends only on its own noise and class).

``truncation`` t (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis", https://arxiv.org/abs/1809.11096): noise components with |z| > t are drawn again, from
the same generator, until none is left: images move towards the modes of the generator,
trading variety for fidelity. Without it the noise is plain N(0, 1), drawn exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augment.gan.config import GanConfig
from augment.gan.ema import standing_statistics
from augment.gan.models import build_generator
from core.data import to_uint8
from core.errors import UserError
from core.io import load_checkpoint
from core.rundir import checkpoint_path

CHECKPOINT_FORMAT = "shoegan-gan/1"
STANDING_SEED_OFFSET = 104_729  # the standing statistics' noise differs from every other draw


def sampler(generator: nn.Module, cfg: GanConfig) -> nn.Module:
    """The generator that draws a run's images: ``generator`` (the EMA generator) with standing
    BatchNorm statistics when ``cfg.standing_stats`` asks for them (:func:`augment.gan.ema.
    standing_statistics`, seeded by the run's seed), else ``generator`` itself."""
    return standing_statistics(
        generator, cfg.standing_stats, cfg.batch_size, cfg.seed + STANDING_SEED_OFFSET
    )


def class_generator(seed: int, class_index: int) -> torch.Generator:
    """An independent, reproducible noise stream for (seed, class)."""
    state = np.random.SeedSequence([seed, class_index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def draw_noise(
    n: int, z_size: int, noise: torch.Generator, truncation: float | None = None
) -> torch.Tensor:
    """``n`` x ``z_size`` standard normal noise from ``noise``; with ``truncation`` t, every
    component with |z| > t is resampled (from the same generator, in order) until |z| <= t."""
    z = torch.randn(n, z_size, generator=noise)
    if truncation is None:
        return z
    outside = z.abs() > truncation
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=noise)
        outside = z.abs() > truncation
    return z


@torch.no_grad()
def generate_images(
    generator: nn.Module,
    labels: torch.Tensor,
    noise: torch.Generator,
    *,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
    truncation: float | None = None,
) -> torch.Tensor:
    """Images (uint8 N x 3 x S x S on the CPU) for ``labels``, noise drawn from ``noise`` in order
    (truncated at ``truncation``, see the module)."""
    was_training = generator.training
    generator.eval()
    out = []
    try:
        for start in range(0, labels.numel(), batch_size):
            y = labels[start : start + batch_size]
            z = draw_noise(y.numel(), generator.z_size, noise, truncation)
            out.append(to_uint8(generator(z.to(device), y.to(device))).cpu())
    finally:
        generator.train(was_training)
    if not out:
        size = generator.image_size
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.cat(out)


def class_images(
    generator: nn.Module,
    class_index: int,
    count: int,
    noise: torch.Generator,
    *,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
    truncation: float | None = None,
) -> torch.Tensor:
    labels = torch.full((count,), class_index, dtype=torch.long)
    return generate_images(
        generator, labels, noise, batch_size=batch_size, device=device, truncation=truncation
    )


def sample_grid(
    generator: nn.Module,
    class_names: list[str],
    *,
    columns: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    title: str = "",
    min_tile: int = 64,
) -> Any:
    """A PIL image: one row per class of ``columns`` samples (fixed noise for a given seed), tiles
    upscaled (nearest) to at least ``min_tile`` px, class names on the left, ``title`` on top."""
    from PIL import Image, ImageDraw

    rows = [
        class_images(generator, c, columns, class_generator(seed, c), device=device)
        for c in range(len(class_names))
    ]
    size = rows[0].shape[-1]
    scale = max(1, -(-min_tile // size))
    tile, pad = size * scale, 2
    font = _font(14)
    label_width = 12 + max(_text_width(font, name) for name in class_names)
    top = 24 if title else pad
    width = label_width + columns * (tile + pad) + pad
    height = top + len(class_names) * (tile + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad + 4, 4), title, fill=(0, 0, 0), font=font)
    for r, (name, images) in enumerate(zip(class_names, rows, strict=True)):
        y0 = top + r * (tile + pad)
        draw.text((6, y0 + tile // 2 - 8), name, fill=(0, 0, 0), font=font)
        for c, image in enumerate(images):
            pil = Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB")
            canvas.paste(
                pil.resize((tile, tile), Image.NEAREST), (label_width + c * (tile + pad), y0)
            )
    return canvas


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


@dataclass
class LoadedGan:
    """A trained GAN run, ready to sample: ``generator`` is the EMA generator in eval mode (with
    standing statistics where the run's configuration asks for them, see :func:`sampler`)."""

    generator: nn.Module
    config: GanConfig
    class_names: list[str]
    run_dir: Path
    checkpoint_path: Path
    iteration: int
    device: torch.device


def resolve_gan_run(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A run name under ``runs_dir`` or a path to a run folder."""
    candidates = [Path(runs_dir) / str(run), Path(run)]
    for candidate in candidates:
        if (candidate / "last.pt").is_file() or (candidate / "best.pt").is_file():
            return candidate
    raise UserError(
        f"{candidates[0]}: no GAN run there (no best.pt/last.pt); train one with `cli gan-train "
        f"--name {Path(str(run)).name}` or pass --runs-dir"
    )


def load_gan(
    run: str | Path,
    which: str = "best",
    runs_dir: str | Path = "runs",
    device: torch.device | str = "cpu",
    standing_stats: int | None = None,
) -> LoadedGan:
    """Rebuild the EMA generator of a GAN run from its checkpoint alone (``which``: best, last or
    a .pt file, see :func:`core.rundir.checkpoint_path`); ``standing_stats`` overrides the run's
    own setting (``config.standing_stats`` of the result is the one used)."""
    run_dir = resolve_gan_run(run, runs_dir)
    path = checkpoint_path(run_dir, which)
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a GAN checkpoint (format {state.get('format')!r})")
    config = GanConfig.from_dict(state["config"])
    if standing_stats is not None:
        config = config.with_overrides(standing_stats=standing_stats)
    class_names = list(state["class_names"])
    generator = build_generator(config, len(class_names))
    generator.load_state_dict(state["G_ema"])
    generator.to(device).eval().requires_grad_(False)
    return LoadedGan(
        sampler(generator, config),
        config,
        class_names,
        run_dir,
        path,
        int(state["iteration"]),
        torch.device(device),
    )
