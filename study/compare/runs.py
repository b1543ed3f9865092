"""Comparing classifier runs on paired test predictions: loading, pairing and the numbers.

Two *sides*, A (typically the baseline) and B (the same architecture retrained on real + synthetic
images), each one run or several seeds of one setup. Every run's ``eval/predictions.csv`` is paired
with the others' by file path, so each test image is its own control:

- per run: accuracy, macro-F1, per-class recall and the confusion matrix (from the predictions);
- per pair (A_i, B_i): the accuracy delta with a paired bootstrap interval and McNemar's exact test
  (:mod:`study.stats`), and per-class McNemar tests on each class's images with Holm's step-down
  adjustment (Holm 1979), since one test per class multiplies the chances of a false alarm;
- per side, with several seeds: mean and standard deviation over seeds, and of the paired deltas.

The headline verdict is the first pair's; the other pairs are reported beside it so a reader sees
whether the direction holds across seeds. Everything here is pure apart from the loaders at the top
(``load_run``, ``read_synthetic``), which only read files.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classify.evaluation.evaluate import (
    EVAL_DIR,
    METRICS_FILE,
    PREDICTIONS_CSV,
    Predictions,
    read_predictions,
    read_run_config,
)
from classify.evaluation.metrics import classification_summary, confusion_matrix
from classify.training.synthetic import manifest_digest
from core.errors import UserError
from core.io import read_json, read_jsonl
from study.compare.config import CompareConfig
from study.stats import bootstrap_delta, mcnemar_exact, mean_std, verdict

__all__ = ["CompareConfig"]  # re-exported: the job's settings live in a torch-free module

SIDES = ("A", "B")
CONFIDENCE = 0.95
ALPHA = 0.05
SYNTHETIC_MANIFEST = "manifest.json"


# --- run lists and output folder ---------------------------------------------------------------


def parse_run_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"base_s0,base_s1"`` (or several such strings) -> ``("base_s0", "base_s1")``."""
    items = [text] if isinstance(text, str) else list(text)
    runs = tuple(part.strip() for item in items for part in item.split(",") if part.strip())
    if not runs:
        raise UserError(
            "no run given; pass run names or folders, e.g. `cli compare base aug` or "
            "`cli compare base_s0,base_s1 aug_s0,aug_s1`"
        )
    return runs


def side_label(names: Sequence[str]) -> str:
    """A folder-safe label for a side: its first run, plus ``+N`` for further seeds."""
    first = Path(names[0]).name or "run"
    return first if len(names) == 1 else f"{first}+{len(names) - 1}"


def default_out(a: Sequence[str], b: Sequence[str]) -> Path:
    return Path("reports") / f"{side_label(a)}-vs-{side_label(b)}"


# --- evaluation outputs of one run -------------------------------------------------------------


@dataclass
class RunResult:
    """What the comparison reads from one evaluated run folder."""

    name: str
    run_dir: Path
    metrics: dict[str, Any]  # eval/metrics.json
    predictions: Predictions
    config: dict[str, Any]  # config.json ({} if missing)
    history: list[dict[str, Any]]

    @property
    def class_names(self) -> list[str]:
        return list(self.predictions.class_names)

    @property
    def dataset_root(self) -> Path | None:
        root = self.metrics.get("dataset")
        return Path(root) if root else None

    @property
    def model_name(self) -> str:
        return str(self.config.get("model", {}).get("name") or self.metrics.get("model") or "?")

    @property
    def synthetic(self) -> dict[str, Any] | None:
        entry = self.config.get("synthetic")
        return entry if isinstance(entry, dict) and entry else None


def eval_staleness(run_dir: Path, checkpoint_file: Path, which: str) -> str | None:
    """Why ``run_dir/eval`` cannot be used for ``which`` (None when it is up to date)."""
    out = Path(run_dir) / EVAL_DIR
    metrics_path, predictions_path = out / METRICS_FILE, out / PREDICTIONS_CSV
    if not metrics_path.is_file() or not predictions_path.is_file():
        return "not evaluated yet"
    metrics = read_json(metrics_path)
    if "accuracy" not in metrics:
        return "eval/metrics.json has no test metrics"
    done = str(metrics.get("checkpoint", ""))
    if done != which and Path(done) != Path(which):
        return f"evaluated with the {done or '?'} checkpoint, not {which}"
    if os.path.getmtime(predictions_path) < os.path.getmtime(checkpoint_file):
        return f"evaluation is older than {Path(checkpoint_file).name}"
    return None


def load_run(run_dir: Path) -> RunResult:
    """Read an evaluated run's metrics, predictions, config and history."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / EVAL_DIR / METRICS_FILE)
    predictions = read_predictions(run_dir / EVAL_DIR / PREDICTIONS_CSV)
    if not predictions.files:
        raise UserError(
            f"{run_dir / EVAL_DIR / PREDICTIONS_CSV}: no test predictions; re-run "
            f"`cli evaluate {run_dir}`"
        )
    return RunResult(
        name=run_dir.name,
        run_dir=run_dir,
        metrics=metrics,
        predictions=predictions,
        config=read_run_config(run_dir),
        history=read_jsonl(run_dir / "history.jsonl"),
    )


# --- pairing ------------------------------------------------------------------------------------


def check_pairable(a: RunResult, b: RunResult) -> None:
    """UserError unless both runs predicted the same test files, with the same classes and labels."""
    where = f"{a.run_dir / EVAL_DIR / PREDICTIONS_CSV} vs {b.run_dir / EVAL_DIR / PREDICTIONS_CSV}"
    if a.class_names != b.class_names:
        raise UserError(
            f"{where}: class names differ ({a.class_names} vs {b.class_names}); "
            "compare runs trained on the same classes"
        )
    files_a, files_b = set(a.predictions.files), set(b.predictions.files)
    if files_a != files_b or len(a.predictions.files) != len(b.predictions.files):
        only_a, only_b = sorted(files_a - files_b), sorted(files_b - files_a)
        example = (only_a or only_b or ["duplicate file rows"])[0]
        raise UserError(
            f"{where}: the runs were tested on different test sets ({len(only_a)} test file(s) "
            f"only in {a.name}, {len(only_b)} only in {b.name}, e.g. {example}); "
            "evaluate both on the same dataset (`cli evaluate RUN --data DIR`)"
        )
    b_labels = dict(zip(b.predictions.files, b.predictions.true.tolist(), strict=True))
    for file, label in zip(a.predictions.files, a.predictions.true.tolist(), strict=True):
        if b_labels[file] != label:
            raise UserError(
                f"{where}: {file} has true class {a.class_names[label]} in one run and "
                f"{b.class_names[b_labels[file]]} in the other; re-evaluate both runs"
            )


def align(reference: Predictions, other: Predictions) -> Predictions:
    """``other``'s rows reordered to ``reference``'s file order (both checked by check_pairable)."""
    index = other.by_file()
    order = np.array([index[f] for f in reference.files], dtype=np.int64)
    return Predictions(
        files=list(reference.files),
        true=other.true[order],
        predicted=other.predicted[order],
        probabilities=other.probabilities[order],
        class_names=list(other.class_names),
    )


def correct(predictions: Predictions) -> np.ndarray:
    return predictions.true == predictions.predicted


# --- numbers ------------------------------------------------------------------------------------


def run_numbers(run: RunResult) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class metrics and confusion matrix from the run's predictions."""
    p = run.predictions
    matrix = confusion_matrix(p.true, p.predicted, len(p.class_names))
    summary = classification_summary(matrix, p.class_names)
    return {
        "name": run.name,
        "run_dir": str(run.run_dir),
        "model": run.model_name,
        "checkpoint": run.metrics.get("checkpoint"),
        "epoch": run.metrics.get("epoch"),
        "best_epoch": run.metrics.get("best_epoch"),
        "val_acc": run.metrics.get("val_acc"),
        "n_test": int(p.true.size),
        "accuracy": summary["accuracy"],
        "macro_f1": summary["macro_f1"],
        "per_class": summary["per_class"],
        "confusion": matrix.tolist(),
        "synthetic": run.synthetic,
        "train_images": _train_images(run.config),
    }


def _train_images(config: dict[str, Any]) -> dict[str, int | None]:
    dataset = config.get("dataset", {}) or {}
    synthetic = config.get("synthetic") or {}
    counts = synthetic.get("counts") if isinstance(synthetic, dict) else None
    return {
        "real": dataset.get("n_train"),
        "synthetic": int(sum(counts.values())) if isinstance(counts, dict) else 0,
    }


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): family-wise error control without assuming
    independence; monotone and capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pair_numbers(
    a: RunResult, b: RunResult, *, resamples: int, seed: int, confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """Paired statistics of B against A on the shared test images."""
    pa = a.predictions
    pb = align(pa, b.predictions)
    ca, cb = correct(pa), correct(pb)
    interval = bootstrap_delta(ca, cb, resamples=resamples, confidence=confidence, seed=seed)
    test = mcnemar_exact(ca, cb)
    per_class = {}
    raw = []
    for label, name in enumerate(pa.class_names):
        mask = pa.true == label
        result = mcnemar_exact(ca[mask], cb[mask])
        raw.append(result.p_value)
        n = int(mask.sum())
        recall_a = float(ca[mask].mean()) if n else 0.0
        recall_b = float(cb[mask].mean()) if n else 0.0
        per_class[name] = {
            "n": n,
            "recall_a": recall_a,
            "recall_b": recall_b,
            "delta": recall_b - recall_a,
            "only_a_correct": result.only_a_correct,
            "only_b_correct": result.only_b_correct,
            "p_value": result.p_value,
        }
    for name, adjusted in zip(pa.class_names, holm_adjust(raw), strict=True):
        per_class[name]["p_holm"] = adjusted
    return {
        "a": a.name,
        "b": b.name,
        "n": int(ca.size),
        "accuracy_a": float(ca.mean()),
        "accuracy_b": float(cb.mean()),
        "both_correct": int(np.sum(ca & cb)),
        "both_wrong": int(np.sum(~ca & ~cb)),
        "bootstrap": interval.to_dict(),
        "mcnemar": test.to_dict(),
        "significant": bool(test.p_value < ALPHA and (interval.low > 0 or interval.high < 0)),
        "verdict": verdict(interval, test, ALPHA),
        "per_class": per_class,
    }


def seed_numbers(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over a side's runs (seeds)."""
    out: dict[str, Any] = {"n": len(runs), "runs": [r["name"] for r in runs]}
    for key in ("accuracy", "macro_f1"):
        mean, std = mean_std([r[key] for r in runs])
        out[key] = {"mean": mean, "std": std, "values": [r[key] for r in runs]}
    return out


def delta_numbers(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation of the per-pair accuracy deltas, and how many pairs were
    significant in each direction."""
    deltas = [p["bootstrap"]["delta"] for p in pairs]
    mean, std = mean_std(deltas)
    return {
        "n_pairs": len(pairs),
        "delta_mean": mean,
        "delta_std": std,
        "significant_better": sum(p["significant"] and p["bootstrap"]["delta"] > 0 for p in pairs),
        "significant_worse": sum(p["significant"] and p["bootstrap"]["delta"] < 0 for p in pairs),
    }


def headline(numbers: dict[str, Any]) -> str:
    """The verdict sentence: the first pair's, plus the seed picture when there are several pairs."""
    pairs = numbers["pairs"]
    text = pairs[0]["verdict"]
    if len(pairs) > 1:
        d = numbers["deltas"]
        text += (
            f" Over {d['n_pairs']} seed pairs the delta is {100 * d['delta_mean']:+.1f} ± "
            f"{100 * d['delta_std']:.1f} points (mean ± sd); {d['significant_better']} pair(s) "
            f"significantly better, {d['significant_worse']} significantly worse."
        )
    return text


def compare_runs(
    side_a: Sequence[RunResult],
    side_b: Sequence[RunResult],
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """All the numbers of a comparison (JSON-ready). Pairs are (A_i, B_i) for i up to the shorter
    side; every run must share the first A run's test set and classes."""
    if not side_a or not side_b:
        raise UserError("each side needs at least one run")
    reference = side_a[0]
    for run in [*side_a[1:], *side_b]:
        check_pairable(reference, run)
    runs = {"A": [run_numbers(r) for r in side_a], "B": [run_numbers(r) for r in side_b]}
    pairs = [
        pair_numbers(a, b, resamples=resamples, seed=seed)
        for a, b in zip(side_a, side_b, strict=False)
    ]
    numbers: dict[str, Any] = {
        "class_names": reference.class_names,
        "n_test": len(reference.predictions.files),
        "runs": runs,
        "seeds": {side: seed_numbers(runs[side]) for side in SIDES},
        "pairs": pairs,
        "deltas": delta_numbers(pairs),
        "confidence": CONFIDENCE,
        "alpha": ALPHA,
        "resamples": resamples,
        "seed": seed,
    }
    numbers["verdict"] = headline(numbers)
    return numbers


# --- the synthetic training set of a run --------------------------------------------------------


@dataclass
class SyntheticSet:
    """A run's synthetic-set entry from config.json, with the set's manifest when found."""

    run: str
    entry: dict[str, Any]
    folder: Path | None  # None: the folder was moved or deleted
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        fid = self.manifest.get("fid") or {}
        return {
            "run": self.run,
            "path": self.entry.get("path"),
            "folder": str(self.folder) if self.folder else None,
            "gan_run": self.entry.get("gan_run") or self.manifest.get("gan_run"),
            "ratio": self.entry.get("ratio"),
            "counts": self.entry.get("counts") or self.manifest.get("counts"),
            "manifest_sha256": self.entry.get("manifest_sha256"),
            "fid_per_class": fid.get("per_class") or self.entry.get("fid_per_class"),
            "fid_overall": fid.get("overall") or self.entry.get("fid"),
            "real_vs_real": fid.get("real_vs_real"),
            "untrained": fid.get("untrained_generator"),
            "untrained_overall": fid.get("untrained_generator_overall"),
            "cas": self.manifest.get("cas"),
            "notes": list(self.notes),
        }


def _find_folder(raw: str, run_dir: Path) -> Path | None:
    path = Path(raw)
    candidates = [path] if path.is_absolute() else [path, run_dir.parent.parent / path]
    return next((c for c in candidates if c.is_dir()), None)


def read_synthetic(run: RunResult) -> SyntheticSet | None:
    """The synthetic set a run trained on (None for a real-only run)."""
    entry = run.synthetic
    if entry is None:
        return None
    raw = entry.get("path")
    folder = _find_folder(str(raw), run.run_dir) if raw else None
    result = SyntheticSet(run.name, entry, folder)
    if folder is None:
        result.notes.append(
            f"synthetic folder {raw} not found; numbers from {run.name}/config.json"
        )
        return result
    manifest_path = folder / SYNTHETIC_MANIFEST
    if not manifest_path.is_file():
        result.notes.append(f"{manifest_path} missing: no FID/KID available")
        return result
    result.manifest = read_json(manifest_path)
    expected = entry.get("manifest_sha256")
    if expected and manifest_digest(manifest_path) != expected:
        # FID/KID or CAS entries are added to the manifest after training; that is expected.
        result.notes.append(
            f"{manifest_path} changed since {run.name} was trained (scores were "
            "added or the set was regenerated)"
        )
    return result


def synthetic_sample_files(
    folder: Path, class_names: Sequence[str], per_class: int, seed: int
) -> dict[str, list[Path]]:
    """Up to ``per_class`` seeded-random image files of each class of a synthetic folder."""
    from core.data import is_image_file

    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for name in class_names:
        class_dir = Path(folder) / name
        files = (
            sorted(p for p in class_dir.rglob("*") if is_image_file(p))
            if class_dir.is_dir()
            else []
        )
        if not files:
            continue
        picks = rng.choice(len(files), size=min(per_class, len(files)), replace=False)
        out[name] = [files[i] for i in sorted(picks.tolist())]
    return out


# --- evaluation on demand -----------------------------------------------------------------------


Evaluator = Callable[[Path, str], Any]


def ensure_evaluated(
    run_dir: Path, which: str, evaluate: Evaluator, checkpoint_file: Path
) -> str | None:
    """Evaluate ``run_dir`` when its eval/ is missing or stale; returns the reason it was redone."""
    reason = eval_staleness(run_dir, checkpoint_file, which)
    if reason is not None:
        evaluate(run_dir, which)
        again = eval_staleness(run_dir, checkpoint_file, which)
        if again is not None:  # e.g. a clock skew making the checkpoint look newer
            warnings.warn(f"{run_dir}: {again} even after evaluating it", stacklevel=2)
    return reason


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
