"""``cli gradcam``: maps, their faithfulness and the grid picture for a run's test images (or given
image files), written into ``RUN/eval/``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.checkpoint import LoadedClassifier
from classify.evaluation.figures import CamTile, cam_grid
from classify.explain.cams import CamOptions, check_options, class_targets, compute_cams
from classify.explain.faithfulness import cam_faithfulness
from classify.explain.overlays import cam_tiles
from classify.explain.selection import test_images_per_class


@dataclass
class CamReport:
    """What ``cli gradcam`` produced."""

    path: Path
    cams: np.ndarray
    probabilities: torch.Tensor
    targets: list[int]
    faithfulness: dict[str, Any]
    tiles: list[list[CamTile]] = field(default_factory=list)


def render_cams(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    labels: Sequence[int] | None,
    rows: Sequence[Sequence[int]],
    row_labels: Sequence[str] | None,
    out: Path,
    options: CamOptions = CamOptions(),
    names: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    label_predicted: bool = False,
) -> CamReport:
    """Compute maps and faithfulness for ``images_uint8`` and write the grid: ``rows`` lists the
    image indices of each grid row; ``label_predicted``: each row is labelled with its first
    image's predicted class (photos, one per row) instead of ``row_labels``."""
    check_options(options)
    probs = loaded.predict_proba(images_uint8)
    if label_predicted:
        top = probs.argmax(dim=1).tolist()
        row_labels = [loaded.class_names[top[row[0]]] if row else "" for row in rows]
    targets = class_targets(probs, labels, options.target)
    cams = compute_cams(loaded, images_uint8, targets, options, progress)
    faith = cam_faithfulness(
        loaded, images_uint8, labels, options.method, options=options, cams=cams
    )
    tiles = cam_tiles(loaded.class_names, images_uint8, cams, probs, labels, rows, names)
    smooth = "".join(
        [
            ", aug-smooth" if options.aug_smooth else "",
            ", eigen-smooth" if options.eigen_smooth else "",
        ]
    )
    title = (
        f"{loaded.name}: {options.method}{smooth} on {loaded.model_config.name} "
        f"({loaded.source}), map of the {options.target} class\n"
        f"faithfulness {faith['metric']} = {faith['value']:.3f} "
        f"over {faith['n_images']} images (higher is better)"
    )
    cam_grid(tiles, out, row_labels=row_labels, title=title)
    return CamReport(out, cams, probs, targets, faith, tiles)


def gradcam_run(
    loaded: LoadedClassifier,
    options: CamOptions = CamOptions(),
    per_class: int = 4,
    *,
    workers: int = 0,
    data: str | Path | None = None,
    out: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> CamReport:
    """The grid of ``per_class`` test images per class to ``RUN/eval/gradcam_<method>.png`` and
    the faithfulness score into ``RUN/eval/metrics.json`` (under "cam" -> method)."""
    from core.evaldir import eval_dir, update_metrics

    batch, labels, rows, row_labels, names = test_images_per_class(
        loaded, per_class, options.seed, workers, data
    )
    path = out or eval_dir(loaded.run_dir) / f"gradcam_{options.method}.png"
    report = render_cams(
        loaded, batch, labels, rows, row_labels, path, options, names, progress=progress
    )
    update_metrics(loaded.run_dir, {"cam": {options.method: report.faithfulness}})
    return report
