"""A run's ``eval/`` folder: ``metrics.json`` (shared by every writer: test evaluation, Grad-CAM,
ViT attention, each merging its keys in), ``predictions.csv`` and the figures; and the one rule for
whether it is a current evaluation of a checkpoint (train-all, the pipeline, CAS and compare all
ask :func:`eval_staleness`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.io import read_json, write_json
from core.rundir import CHECKPOINT_FILES

EVAL_DIR = "eval"
METRICS_FILE = "metrics.json"
PREDICTIONS_CSV = "predictions.csv"
# metrics.json keys whose values are dicts merged one level deep (one entry per CAM method), so
# `cli gradcam --cam-method X` adds X without dropping the other methods.
MERGED_KEYS = ("cam", "attention")


def eval_dir(run_dir: Path) -> Path:
    return Path(run_dir) / EVAL_DIR


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``eval/metrics.json``, or ``{}`` when it was never evaluated."""
    path = eval_dir(run_dir) / METRICS_FILE
    return read_json(path) if path.is_file() else {}


def update_metrics(run_dir: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``eval/metrics.json`` (atomic write) and return the merged dict.

    Top-level keys are replaced, except the :data:`MERGED_KEYS` dicts, which are merged per entry.
    """
    merged = read_metrics(run_dir)
    for key, value in updates.items():
        if key in MERGED_KEYS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    write_json(eval_dir(run_dir) / METRICS_FILE, merged)
    return merged


def eval_staleness(
    run_dir: Path, which: str = "best", checkpoint_file: Path | None = None
) -> str | None:
    """Why ``run_dir/eval`` is not a current test evaluation of checkpoint ``which`` (``None``
    when it is): both metrics.json (with test metrics) and predictions.csv must exist, be made
    from that checkpoint, and be no older than its file (``checkpoint_file``, default the run's)."""
    out = eval_dir(run_dir)
    metrics_path, predictions_path = out / METRICS_FILE, out / PREDICTIONS_CSV
    if not metrics_path.is_file() or not predictions_path.is_file():
        return "not evaluated yet"
    metrics = read_json(metrics_path)
    if "accuracy" not in metrics:
        return "eval/metrics.json has no test metrics"
    done = str(metrics.get("checkpoint", ""))
    if done != which and Path(done) != Path(which):
        return f"evaluated with the {done or '?'} checkpoint, not {which}"
    if checkpoint_file is None:
        named = which in CHECKPOINT_FILES
        checkpoint_file = Path(run_dir) / CHECKPOINT_FILES[which] if named else Path(which)
    if not Path(checkpoint_file).is_file():
        return f"{Path(checkpoint_file).name} is missing"
    written = min(os.path.getmtime(metrics_path), os.path.getmtime(predictions_path))
    if written < os.path.getmtime(checkpoint_file):
        return f"evaluation is older than {Path(checkpoint_file).name}"
    return None


def evaluation_current(run_dir: Path, which: str = "best") -> bool:
    return eval_staleness(run_dir, which) is None
