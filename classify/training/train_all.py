"""Train several registered models with the same data, seed and budget; evaluate each on the test
set, score its Grad-CAM faithfulness, and name the best by validation accuracy.

The test set never chooses: the best model is the one with the highest best-epoch validation
accuracy, ties going to the cheaper model (fewer parameters). ``runs/models.json`` records the
table and the choice.

Under torchrun with several processes every rank trains and evaluates (both are shared out); rank 0
alone decides what is left to do, scores the CAMs and writes ``models.json``, and the others
follow (:func:`core.distributed.on_main`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from classify.training.config import TrainConfig
from core.distributed import DistConfig, is_main, on_main
from core.evaldir import evaluation_current, read_metrics
from core.io import read_jsonl, write_json
from core.rundir import training_complete

MODELS_JSON = "models.json"


@dataclass(frozen=True)
class TrainAllOptions:
    models: tuple[str, ...] = ("resnet50", "resnet50-se", "resnet50-cbam", "vit-tiny")
    prefix: str = ""  # run names are <prefix><model>
    cam_method: str = "gradcam"
    cam_per_class: int = 4
    resume: bool = False  # finished runs are kept, unfinished ones continued
    overwrite: bool = False


def run_name(prefix: str, model: str) -> str:
    return f"{prefix}{model}"


def train_evaluate(
    cfg: TrainConfig,
    *,
    resume: bool,
    overwrite: bool,
    cam_method: str,
    cam_per_class: int,
    dist: DistConfig | None = None,
) -> dict[str, Any]:
    """Train (or finish) one run, evaluate it, score its CAM; return its row for the table."""
    from classify.checkpoint import load_classifier
    from classify.evaluation.evaluate import evaluate_run
    from classify.explain.cams import CamOptions
    from classify.explain.gradcam_run import gradcam_run
    from classify.models.profile import count_parameters
    from classify.training.trainer import train

    run_dir = Path(cfg.runs_dir) / cfg.name
    if not on_main(lambda: resume and training_complete(run_dir, cfg.total_epochs)):
        partial = on_main(lambda: resume and (run_dir / "last.pt").is_file())
        train(cfg, resume=partial, overwrite=overwrite and not partial, dist=dist)
    if not on_main(lambda: evaluation_current(run_dir)):
        evaluate_run(run_dir, "best", show_progress=True, device=cfg.device)

    def row() -> dict[str, Any]:  # rank 0's (it writes eval/); the others wait for it
        metrics = read_metrics(run_dir)
        if cam_per_class > 0 and cam_method not in metrics.get("cam", {}):
            loaded = load_classifier(run_dir, "best", device=cfg.device)
            gradcam_run(loaded, CamOptions(method=cam_method), cam_per_class)
            metrics = read_metrics(run_dir)
        loaded = load_classifier(run_dir, "best", device="cpu")
        history = read_jsonl(run_dir / "history.jsonl")
        cam = metrics.get("cam", {}).get(cam_method, {})
        return {
            "run": cfg.name,
            "model": cfg.model,
            "params": count_parameters(loaded.model),
            "val_acc": loaded.val_acc,
            "best_epoch": loaded.best_epoch,
            "test_acc": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "cam_faithfulness": cam.get("value"),
            "cam_metric": cam.get("metric"),
            "seconds_per_epoch": sum(r["seconds"] for r in history) / max(1, len(history)),
        }

    return on_main(row)


def pick_best(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Highest validation accuracy; ties to fewer parameters (then registry order)."""
    return min(rows, key=lambda r: (-(r["val_acc"] or 0.0), r["params"]))


def train_all(
    base: TrainConfig, options: TrainAllOptions, dist: DistConfig | None = None
) -> dict[str, Any]:
    """Train every model of ``options.models`` from ``base`` and write ``runs/models.json``;
    ``dist``: how several processes train (ignored in one process)."""
    rows = []
    for model in options.models:
        cfg = replace(base, model=model, name=run_name(options.prefix, model))
        rows.append(
            train_evaluate(
                cfg,
                resume=options.resume,
                overwrite=options.overwrite,
                cam_method=options.cam_method,
                cam_per_class=options.cam_per_class,
                dist=dist,
            )
        )
    best = pick_best(rows)
    summary = {
        "best": best["run"],
        "best_model": best["model"],
        "criterion": "best-epoch validation accuracy; ties to fewer parameters",
        "data": base.data,
        "seed": base.seed,
        "config": {**base.to_dict(), "model": None, "name": None},
        "runs": rows,
    }
    if is_main():
        write_json(Path(base.runs_dir) / f"{options.prefix}{MODELS_JSON}", summary)
    return summary
