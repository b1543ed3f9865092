"""Helpers for the GAN tests: a toy dataset of solid colours, a stand-in FID extractor and small GAN
configurations."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augment.gan.config import GanConfig

COLOURS = {"blue": (20, 40, 230), "red": (230, 30, 30)}  # sorted order: blue = 0, red = 1


def make_colour_dataset(
    root: Path, train_per_class: int = 24, test_per_class: int = 6, size: int = 32, seed: int = 0
) -> Path:
    """ROOT/{train,test}/{blue,red}/NNN.png: solid colours with a little per-pixel noise."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for name, rgb in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.array(rgb)[None, None] + rng.integers(-12, 13, (size, size, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB").save(
                    folder / f"{i:03d}.png"
                )
    return root


def stand_in_extractor() -> object:
    """augment.fid's tiny random-conv extractor: FID plumbing without InceptionV3's cost."""
    from augment.fid import RandomConvExtractor

    return RandomConvExtractor()


def tiny_config(data: Path, runs: Path, **overrides: object) -> GanConfig:
    """A GAN small enough to train for a few dozen iterations in seconds on a CPU."""
    base = dict(data=str(data), runs_dir=str(runs), name="g", iterations=6, batch_size=8,
                ngf=8, ndf=8, z_size=16, embed_dim=8, eval_every=3, fid_samples=8,
                grid_columns=4, log_every=2, device="cpu",
                feature_extractor="random-conv")  # fmt: skip
    base.update(overrides)
    return GanConfig(**base)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread (OMP_NUM_THREADS makes train_gan keep it): tiny models gain nothing from
    two, and on a busy machine two OpenMP threads can be ten times slower than one."""
    saved_env, saved_threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved_env
        torch.set_num_threads(saved_threads)
