"""Grad-CAM of two runs on the *same* test images, and each map set's faithfulness.

Both models see the same seeded choice of test files (``classify.gradcam.select_per_class``, so the
images are the ones ``cli gradcam`` would show with that seed), each decoded at its own run's image
size and resize mode. Each model's map explains its own predicted class. Faithfulness (ROAD, Rong et
al. 2022, via :func:`classify.gradcam.cam_faithfulness`) is scored on those same images for both,
which makes the two numbers paired but, with a few images per class, noisy: the report says how many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.errors import UserError
from study.compare import RunResult


@dataclass
class CamRow:
    """One test image: the picture, each model's overlay, and what each model said."""

    image: np.ndarray  # H x W x 3 uint8 (upscaled)
    overlays: list[np.ndarray]  # one per model, H' x W' x 3 uint8
    true: str
    predicted: list[str]
    confidence: list[float]  # probability of each model's predicted class
    name: str


@dataclass
class CamComparison:
    rows: list[CamRow]
    files: list[str]  # test files (relative to the dataset root), in row order
    faithfulness: list[dict[str, Any]]  # cam_faithfulness entry per model
    method: str


def _dataset_root(run: RunResult) -> Path:
    root = run.dataset_root
    if root is None or not root.is_dir():
        raise UserError(
            f"{run.run_dir}/eval/metrics.json: dataset folder {root} not found; "
            "re-evaluate the run with `cli evaluate RUN --data DIR`"
        )
    return root


def chosen_files(run: RunResult, per_class: int, seed: int) -> list[int]:
    """Row indices into ``run``'s predictions: ``per_class`` seeded images of each class."""
    from classify.gradcam import select_per_class

    labels = run.predictions.true.tolist()
    return [
        i for row in select_per_class(labels, len(run.class_names), per_class, seed) for i in row
    ]


def cam_comparison(
    runs: Sequence[RunResult],
    files: Sequence[str],
    *,
    method: str = "gradcam",
    which: str = "best",
    device: Any = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> CamComparison:
    """Maps and faithfulness of each run's model on the test ``files`` (paths relative to each
    run's dataset root; the runs were checked to share them)."""
    from classify.checkpoint import load_classifier
    from classify.gradcam import CamOptions, cam_faithfulness, class_targets, compute_cams, overlay
    from classify.predict import load_image_files

    options = CamOptions(method=method, seed=seed)
    reference = runs[0].predictions
    index = reference.by_file()
    true = [reference.class_names[int(reference.true[index[f]])] for f in files]
    images_shown: list[np.ndarray] = []
    per_model: list[tuple[list[np.ndarray], list[str], list[float]]] = []
    faithfulness = []
    for k, run in enumerate(runs):
        loaded = load_classifier(run.run_dir.name, which, run.run_dir.parent, device)
        root = _dataset_root(run)
        images = load_image_files(
            [root / f for f in files], loaded.image_size, loaded.train_config.resize_mode
        )
        probs = loaded.predict_proba(images)
        targets = class_targets(probs, None, options.target)
        cams = compute_cams(loaded, images, targets, options, progress)
        faithfulness.append(
            cam_faithfulness(loaded, images, None, method, options=options, cams=cams)
        )
        overlays, predicted, confidence = [], [], []
        for i in range(images.shape[0]):
            big, blended = overlay(images[i], cams[i])
            if k == 0:
                images_shown.append(big)
            overlays.append(blended)
            predicted.append(loaded.class_names[targets[i]])
            confidence.append(float(probs[i, targets[i]]))
        per_model.append((overlays, predicted, confidence))
        del loaded
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    rows = [
        CamRow(
            image=images_shown[i],
            overlays=[m[0][i] for m in per_model],
            true=true[i],
            predicted=[m[1][i] for m in per_model],
            confidence=[m[2][i] for m in per_model],
            name=Path(files[i]).name,
        )
        for i in range(len(files))
    ]
    return CamComparison(rows, list(files), faithfulness, method)
