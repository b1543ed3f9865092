"""``cli explain``: several runs' explanations of the same test images in one figure — each run's
Grad-CAM (or another CAM method) and, for a ViT, its attention rollout — with each map set's
faithfulness, so CNN and transformer explanations are compared by number as well as by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from classify.evaluation.figures import save_figure
from core.device import setup_device
from core.io import write_json
from core.progress import make_progress
from core.rundir import resolve_run_dir
from study.compare.cams import CamComparison, cam_comparison, chosen_files, view_labels
from study.compare.job import check_out, evaluate_if_needed
from study.compare.runs import RunResult, check_pairable, load_run
from study.explain_config import ExplainOptions
from study.report.figures import cam_comparison_figure


def explain(runs: list[str], options: ExplainOptions) -> dict[str, Any]:
    """Write the figure and ``explain.json`` next to it; return the JSON content."""
    options.validate(runs)
    device = setup_device(options.device)
    dirs = [resolve_run_dir(r, options.runs_dir) for r in runs]
    evaluate_if_needed(dirs, options.checkpoint, device)
    results = [load_run(d) for d in dirs]
    for other in results[1:]:
        check_pairable(results[0], other)
    default = Path("reports") / f"explain-{'-vs-'.join(d.name for d in dirs)}.png"
    target = Path(options.out) if options.out else default
    check_out(target.parent, results)
    rows = chosen_files(results[0], options.cam_per_class, options.seed)
    files = [results[0].predictions.files[i] for i in rows]
    comparison = _compare(results, files, options, device)
    labels = view_labels(comparison, [r.name for r in results], f" ({options.cam_method})")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_figure(cam_comparison_figure(comparison.rows, labels), target)
    summary = {
        "figure": str(target),
        "method": options.cam_method,
        "checkpoint": options.checkpoint,
        "seed": options.seed,
        "files": files,
        "faithfulness": _scores(comparison, labels, results),
    }
    write_json(target.with_suffix(".json"), summary)
    return summary


def _compare(
    results: list[RunResult], files: list[str], options: ExplainOptions, device: torch.device
) -> CamComparison:
    with make_progress(transient=True) as bar:
        task = bar.add_task(
            options.cam_method, total=len(results) * len(files), info=f"{len(results)} runs"
        )
        return cam_comparison(
            results,
            files,
            method=options.cam_method,
            which=options.checkpoint,
            device=device,
            seed=options.seed,
            rollout=options.rollout,
            progress=lambda n: bar.advance(task, n),
        )


def _scores(
    comparison: CamComparison, labels: list[str], results: list[RunResult]
) -> list[dict[str, Any]]:
    """Each view's faithfulness: a CAM's, or a ViT rollout's."""
    scores = []
    for view, label in zip(comparison.views, labels, strict=True):
        entry = (
            comparison.faithfulness[view.run]
            if view.kind == "cam"
            else comparison.attention[view.run]
        )
        scores.append({"view": label, "run": results[view.run].name, **(entry or {})})
    return scores
