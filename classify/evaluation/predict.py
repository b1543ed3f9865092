"""Predicting single image files with a trained classifier: decode as the run was trained (image
size, resize mode), then top-k classes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from classify.checkpoint import LoadedClassifier
from core.data import decode_image
from core.errors import UserError


def load_image_files(
    paths: Sequence[str | Path], image_size: int, resize_mode: str
) -> torch.Tensor:
    """uint8 N x 3 x S x S from image files; UserError naming the first missing or unreadable one."""
    images = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UserError(f"{path}: image not found; check the path")
        try:
            images.append(decode_image(path, image_size, resize_mode))
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise UserError(f"{path}: unreadable image ({reason}); pass a PNG/JPEG file") from exc
    if not images:
        raise UserError("no images given; pass one or more image files")
    return torch.stack(images)


def top_k(
    probabilities: torch.Tensor, class_names: Sequence[str], k: int
) -> list[list[dict[str, Any]]]:
    """Per row, the ``k`` most probable classes (``k`` clamped to the number of classes)."""
    if k < 1:
        raise UserError(f"--top-k {k}: must be at least 1")
    k = min(k, len(class_names))
    values, indices = torch.topk(probabilities, k, dim=1)
    return [
        [
            {"class": class_names[i], "probability": float(p)}
            for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)
        ]
        for row_p, row_i in zip(values, indices, strict=True)
    ]


def predict_files(
    loaded: LoadedClassifier, paths: Sequence[str | Path], k: int = 3
) -> list[dict[str, Any]]:
    """``[{"file": path, "top": [{"class", "probability"}, ...]}, ...]`` for each image file."""
    images = load_image_files(paths, loaded.image_size, loaded.train_config.resize_mode)
    ranked = top_k(loaded.predict_proba(images), loaded.class_names, k)
    return [{"file": str(p), "top": top} for p, top in zip(paths, ranked, strict=True)]
