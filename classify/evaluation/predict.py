"""Predicting single image files with a classifier: decode as its images were prepared (a run's
image size and resize mode, or ImageNet weights' own transforms: ``loaded.preprocess``), then
top-k classes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from classify.checkpoint import LoadedClassifier
from core.errors import UserError


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
    images = loaded.preprocess(paths)
    ranked = top_k(loaded.predict_proba(images), loaded.class_names, k)
    return [{"file": str(p), "top": top} for p, top in zip(paths, ranked, strict=True)]
