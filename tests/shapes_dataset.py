"""A tiny, easily separable image dataset for training tests: coloured shapes on grey noise."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = {"circle": (220, 40, 40), "square": (40, 200, 60), "triangle": (50, 70, 230)}


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    noise = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(noise, mode="RGB")
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    box = (cx - r, cy - r, cx + r, cy + r)
    colour = SHAPES[kind]
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def make_shapes_dataset(
    root: Path, train_per_class: int = 12, test_per_class: int = 4, size: int = 32, seed: int = 0
) -> Path:
    """Write ROOT/{train,test}/<shape>/NNN.png and return ROOT."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for kind in SHAPES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_shape(kind, size, rng).save(folder / f"{i:03d}.png")
    return root


def tree_digest(root: Path) -> str:
    """Hash of every path and file content below ``root`` (to prove nothing was written there)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
