"""Grad-CAM of two or more runs on the *same* test images, and each map set's faithfulness.

A Vision Transformer run adds a second view beside its Grad-CAM: its attention rollout (Abnar &
Zuidema 2020, :mod:`classify.explain.vit_attention`), scored with the same faithfulness metric, so CNN
and transformer explanations are compared by number as well as by eye.

Both models see the same seeded choice of test files (``classify.explain.selection.select_per_class``, so the
images are the ones ``cli gradcam`` would show with that seed), each decoded at its own run's image
size and resize mode. Each model's map explains its own predicted class. Faithfulness (ROAD, Rong et
al. 2022, via :func:`classify.explain.faithfulness.cam_faithfulness`) is scored on those same images for both,
which makes the two numbers paired but, with a few images per class, noisy: the report says how many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.errors import UserError
from study.compare.runs import RunResult

if TYPE_CHECKING:
    from classify.explain.cams import CamOptions


@dataclass
class CamRow:
    """One test image: the picture, each view's overlay, and what that view's model said."""

    image: np.ndarray  # H x W x 3 uint8 (upscaled)
    overlays: list[np.ndarray]  # one per view, H' x W' x 3 uint8
    true: str | None  # None: unknown (a photo given by path)
    predicted: list[str]  # per view (a model's views repeat its prediction)
    confidence: list[float]  # probability of the view's model's predicted class
    name: str


@dataclass(frozen=True)
class CamView:
    """One column of the figure: a run (by index) and which map of it (``cam`` or ``rollout``)."""

    run: int
    kind: str


@dataclass
class CamComparison:
    rows: list[CamRow]
    files: list[str]  # test files (relative to the dataset root), in row order
    faithfulness: list[dict[str, Any]]  # cam_faithfulness entry per run
    method: str
    views: list[CamView] = field(default_factory=list)
    attention: list[dict[str, Any] | None] = field(default_factory=list)  # rollout entry per run


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
    from classify.explain.selection import select_per_class

    labels = run.predictions.true.tolist()
    return [
        i for row in select_per_class(labels, len(run.class_names), per_class, seed) for i in row
    ]


@dataclass
class ModelMaps:
    """One model's part of a comparison: a column per view, and the faithfulness entries."""

    columns: list[
        tuple[str, list[np.ndarray], list[str], list[float]]
    ]  # kind, overlays, pred, conf
    shown: list[np.ndarray]  # the test images, upscaled as in the CAM overlays
    faithfulness: dict[str, Any]
    attention: dict[str, Any] | None  # the rollout's faithfulness (ViT runs only)


def cam_comparison(
    runs: Sequence[RunResult],
    files: Sequence[str],
    *,
    method: str = "gradcam",
    which: str = "best",
    device: Any = None,
    seed: int = 0,
    rollout: bool = True,
    progress: Callable[[int], None] | None = None,
) -> CamComparison:
    """Maps and faithfulness of each run's model on the test ``files`` (paths relative to each
    run's dataset root; the runs were checked to share them). ViT runs also get their attention
    rollout when ``rollout``."""
    from classify.explain.cams import CamOptions

    options = CamOptions(method=method, seed=seed)
    reference = runs[0].predictions
    index = reference.by_file()
    true = [reference.class_names[int(reference.true[index[f]])] for f in files]
    per_run: list[ModelMaps] = []
    for run in runs:
        per_run.append(_run_maps(run, files, which, device, options, rollout, progress))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return assemble(per_run, files, true, method)


def assemble(
    per_run: Sequence[ModelMaps], files: Sequence[str], true: Sequence[str | None], method: str
) -> CamComparison:
    """The comparison of the models' maps ``per_run`` on ``files`` (true classes ``true``, None
    where unknown): one row per file, one column per view."""
    columns = [c for r in per_run for c in r.columns]
    views = [CamView(k, c[0]) for k, r in enumerate(per_run) for c in r.columns]
    rows = [
        CamRow(
            image=per_run[0].shown[i],
            overlays=[c[1][i] for c in columns],
            true=true[i],
            predicted=[c[2][i] for c in columns],
            confidence=[c[3][i] for c in columns],
            name=Path(files[i]).name,
        )
        for i in range(len(files))
    ]
    faithfulness = [r.faithfulness for r in per_run]
    return CamComparison(
        rows, list(files), faithfulness, method, views, [r.attention for r in per_run]
    )


def _run_maps(
    run: RunResult,
    files: Sequence[str],
    which: str,
    device: Any,
    options: CamOptions,
    rollout: bool,
    progress: Callable[[int], None] | None,
) -> ModelMaps:
    """Load ``run``'s model, explain its predicted class on ``files`` and overlay each map."""
    from classify.checkpoint import load_classifier

    loaded = load_classifier(run.run_dir.name, which, run.run_dir.parent, device)
    root = _dataset_root(run)
    return model_maps(loaded, [root / f for f in files], options, rollout, progress)


def model_maps(
    loaded: Any,
    files: Sequence[str | Path],
    options: CamOptions,
    rollout: bool,
    progress: Callable[[int], None] | None = None,
) -> ModelMaps:
    """``loaded``'s maps of its predicted class on image ``files`` (decoded by
    ``loaded.preprocess``), their faithfulness, and each map overlaid on its image."""
    from classify.explain.cams import class_targets, compute_cams
    from classify.explain.faithfulness import cam_faithfulness
    from classify.explain.overlays import overlay

    images = loaded.preprocess(files)
    probs = loaded.predict_proba(images)
    targets = class_targets(probs, None, options.target)
    cams = compute_cams(loaded, images, targets, options, progress)
    faithfulness = cam_faithfulness(
        loaded, images, None, options.method, options=options, cams=cams
    )
    maps = {"cam": cams}
    entry = None
    if rollout and _has_attention(loaded):
        maps["rollout"], entry = _rollout(loaded, images, options.seed)
    predicted = [loaded.class_names[t] for t in targets]
    confidence = [float(probs[i, t]) for i, t in enumerate(targets)]
    shown: list[np.ndarray] = []
    columns = []
    for kind, kind_maps in maps.items():
        overlays = []
        for i in range(images.shape[0]):
            big, blended = overlay(images[i], kind_maps[i])
            if kind == "cam":
                shown.append(big)
            overlays.append(blended)
        columns.append((kind, overlays, predicted, confidence))
    return ModelMaps(columns, shown, faithfulness, entry)


def _has_attention(loaded: Any) -> bool:
    from classify.explain.vit_attention import attention_modules

    return bool(attention_modules(loaded.model))


def _rollout(loaded: Any, images: torch.Tensor, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The ViT's attention rollout maps of ``images`` and their faithfulness entry."""
    from classify.explain.attention_run import (
        AttentionOptions,
        compute_attention,
        view_faithfulness,
        view_maps,
    )

    options = AttentionOptions(rollout=True, seed=seed)
    maps = compute_attention(loaded, images, options.batch_size)
    views = view_maps(maps, options, loaded.image_size)
    rollout = {"rollout": views["rollout"]}
    return views["rollout"], view_faithfulness(loaded, images, maps, rollout, options)["rollout"]


def view_labels(comparison: CamComparison, names: Sequence[str], cam_suffix: str = "") -> list[str]:
    """Column titles: ``names[run]`` plus ``cam_suffix`` for a CAM view, plus " (attention
    rollout)" for a ViT's rollout view."""
    return [
        names[v.run] + (" (attention rollout)" if v.kind == "rollout" else cam_suffix)
        for v in comparison.views
    ]
