"""``cli explain``: several runs' explanations of the same test images in one figure — each run's
Grad-CAM (or another CAM method) and, for a ViT, its attention rollout — with each map set's
faithfulness, so CNN and transformer explanations are compared by number as well as by eye.
:func:`explain_photos` does the same for photos with ImageNet models instead of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from classify.evaluation.figures import save_figure
from core.device import setup_device
from core.io import write_json
from core.progress import make_progress
from core.rundir import resolve_run_dir
from study.compare.cams import (
    CamComparison,
    assemble,
    cam_comparison,
    chosen_files,
    model_maps,
    view_labels,
)
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
        "faithfulness": _scores(comparison, labels, [r.name for r in results]),
    }
    write_json(target.with_suffix(".json"), summary)
    return summary


def explain_photos(images: list[str], options: ExplainOptions) -> dict[str, Any]:
    """The same figure and JSON for photos (no run, no dataset): each of ``options.models`` with
    ImageNet weights (:func:`classify.pretrained_model.load_imagenet_classifier`) explains its own
    top-1 ImageNet class; each column title carries its maps' faithfulness."""
    from classify.explain.cams import CamOptions
    from classify.explain.methods import FAITHFULNESS_METRICS
    from classify.pretrained_model import load_imagenet_classifier

    options.validate_photos(images)
    device = setup_device(options.device)
    files = [Path(p) for p in images]
    target = Path(options.out or Path("reports") / f"explain-{'-vs-'.join(options.models)}.png")
    cam = CamOptions(method=options.cam_method, seed=options.seed)
    weights = options.weights or (None,) * len(options.models)
    per_model, sources = [], []
    with make_progress(transient=True) as bar:
        task = bar.add_task(options.cam_method, total=len(files) * len(weights), info="photos")
        for model, file in zip(options.models, weights, strict=True):
            pretrained = options.pretrained if file is None else None
            loaded = load_imagenet_classifier(model, pretrained, file, device, progress=False)
            sources.append(loaded.source)
            per_model.append(
                model_maps(loaded, files, cam, options.rollout, lambda n: bar.advance(task, n))
            )
            del loaded
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    comparison = assemble(per_model, [str(f) for f in files], [None] * len(files), cam.method)
    labels = view_labels(comparison, list(options.models), f" ({options.cam_method})")
    scores = _scores(comparison, labels, list(options.models))
    metric = FAITHFULNESS_METRICS[cam.metric].label
    titled = [
        f"{label}: {cam.metric.upper()} {score.get('value', float('nan')):.3f}"
        for label, score in zip(labels, scores, strict=True)
    ]
    title = f"each model's map of its top-1 ImageNet class; faithfulness {metric}, higher is better"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_figure(cam_comparison_figure(comparison.rows, titled, title=title), target)
    summary = {
        "figure": str(target),
        "method": options.cam_method,
        "models": list(options.models),
        "weights": sources,
        "seed": options.seed,
        "files": [str(f) for f in files],
        "faithfulness": scores,
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


def _scores(comparison: CamComparison, labels: list[str], names: list[str]) -> list[dict[str, Any]]:
    """Each view's faithfulness: a CAM's, or a ViT rollout's (``names``: each run's or model's)."""
    scores = []
    for view, label in zip(comparison.views, labels, strict=True):
        entry = (
            comparison.faithfulness[view.run]
            if view.kind == "cam"
            else comparison.attention[view.run]
        )
        scores.append({"view": label, "run": names[view.run], **(entry or {})})
    return scores
