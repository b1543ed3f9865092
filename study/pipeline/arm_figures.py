"""The arms' own figures beside their table (:mod:`study.pipeline.arm_report`): every arm's
confusion matrix (summed over seeds) and Grad-CAM (Selvaraju et al. 2017) of the best arm other
than ``real`` against ``real`` on the same test images, each map set scored for faithfulness (ROAD,
Rong et al. 2022) as in the comparison report (:mod:`study.compare.cams`).

"Best" is chosen as the verdict chooses, by the table itself (its ``cam_choice``,
:func:`study.pipeline.arms.cam_choice`): by mean validation accuracy over seeds, ties to the arm
listed first; the test set never chooses. When ``real`` itself is the best arm, the figure shows the
runner-up, and says so, since real against itself explains nothing. This module reads the table as
plain data and imports no other module of the pipeline (the arms table imports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CONFUSION_FILE = "arms-confusion.png"
CAM_FILE = "arms-gradcam.png"


def summed_confusion(runs: Sequence[Any]) -> list[list[int]]:
    """The confusion matrix (rows: true class, columns: predicted) of an arm's runs
    (:class:`study.compare.runs.RunResult`, one per seed), summed over the seeds."""
    n = len(runs[0].class_names)
    counts = np.zeros((n, n), dtype=np.int64)
    for run in runs:
        np.add.at(counts, (run.predictions.true, run.predictions.predicted), 1)
    return counts.tolist()


def draw_arm_confusions(table: dict[str, Any], class_names: Sequence[str], out: Path) -> str:
    """One panel per arm (its ``confusion``, summed over seeds) in one PNG; its file name."""
    from classify.evaluation.figures import save_figure
    from study.report.figures import arm_confusions_figure

    matrices = {arm: row["confusion"] for arm, row in table["arms"].items()}
    seeds = max(len(row.get("accuracy") or []) for row in table["arms"].values())
    save_figure(arm_confusions_figure(matrices, class_names, seeds=seeds), out / CONFUSION_FILE)
    return CONFUSION_FILE


def draw_arm_cams(
    table: dict[str, Any],
    runs: dict[str, Sequence[Any]],
    out: Path,
    *,
    per_class: int,
    device: Any = None,
    method: str = "gradcam",
    seed: int = 0,
) -> dict[str, Any] | None:
    """Grad-CAM of the reference arm's (``real``) and the table's ``cam_choice``'s first-seed runs
    on the same ``per_class`` seeded test images per class: the figure (``CAM_FILE``) and its
    numbers for the table (None when ``per_class`` is 0 or there is no other arm)."""
    from classify.evaluation.figures import save_figure
    from study.compare.cams import cam_comparison, chosen_files, view_labels
    from study.report.figures import cam_comparison_figure

    chosen, reference = table.get("cam_choice"), table["reference"]
    if per_class <= 0 or chosen is None:
        return None
    arm, why = chosen["arm"], chosen["why"]
    real, other = runs[reference][0], runs[arm][0]
    files = [real.predictions.files[i] for i in chosen_files(real, per_class, seed)]
    result = cam_comparison([real, other], files, method=method, device=device, seed=seed)
    labels = view_labels(result, [f"{reference}: {real.name}", f"{arm}: {other.name}"])
    save_figure(cam_comparison_figure(result.rows, labels), out / CAM_FILE)
    faithfulness = {
        name: {**entry, "run": run.name}
        for name, entry, run in zip(
            (reference, arm), result.faithfulness, (real, other), strict=True
        )
    }
    return {
        "figure": CAM_FILE,
        "arm": arm,
        "why": why,
        "method": method,
        "files": files,
        "faithfulness": faithfulness,
    }
