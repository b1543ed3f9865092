"""The numbers of a comparison, from paired test predictions (pure: no file is read here).

- per run: accuracy, macro-F1, per-class recall and the confusion matrix (from the predictions);
- per pair (A_s, B_s), the runs of training seed s (:func:`study.compare.runs.pair_by_seed`, never
  by position): the accuracy delta with a paired bootstrap interval and McNemar's exact test
  (:mod:`study.stats`; test-set noise only), and per-class McNemar tests on each class's images with
  Holm's step-down adjustment (Holm 1979), since one test per class multiplies false alarms;
- per side, with several seeds: mean and standard deviation over seeds, and of the paired deltas;
- over seeds (two pairs or more): the headline interval over seeds *and* test images
  (:func:`study.stats.seed_interval`) beside the pooled test-only bootstrap.

The headline verdict: one pair says whether these two trained models differ on this test set;
with three seeds or more the verdict is about the method and follows the interval over seeds and
test images; with two, the models' difference and the command that adds a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from classify.evaluation.metrics import classification_summary, confusion_matrix
from core.errors import UserError
from study.compare.runs import RunResult, align, check_pairable, correct, pair_by_seed
from study.stats import (
    ALPHA,
    CONFIDENCE,
    MIN_SEEDS,
    NOT_ESTABLISHED,
    bootstrap_delta,
    mcnemar_exact,
    mean_std,
    method_word,
    pooled_bootstrap,
    seed_interval,
    seeds_verdict,
    verdict,
)

SIDES = ("A", "B")
MORE_SEEDS = (
    "train a third seed of each side and add it to both lists "
    "(cli compare a_s0,a_s1,a_s2 b_s0,b_s1,b_s2)"
)


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
    a: RunResult,
    b: RunResult,
    *,
    resamples: int,
    seed: int,
    confidence: float = CONFIDENCE,
    advice: str = MORE_SEEDS,
) -> dict[str, Any]:
    """Paired statistics of B against A on the shared test images (``advice``: the verdict's
    way to more seeds)."""
    pa = a.predictions
    pb = align(pa, b.predictions)
    ca, cb = correct(pa), correct(pb)
    interval = bootstrap_delta(ca, cb, resamples=resamples, confidence=confidence, seed=seed)
    test = mcnemar_exact(ca, cb)
    per_class = per_class_numbers(ca, cb, pa.true, pa.class_names)
    return {
        "a": a.name,
        "b": b.name,
        "seed_a": a.seed,
        "seed_b": b.seed,
        "n": int(ca.size),
        "accuracy_a": float(ca.mean()),
        "accuracy_b": float(cb.mean()),
        "both_correct": int(np.sum(ca & cb)),
        "both_wrong": int(np.sum(~ca & ~cb)),
        "bootstrap": interval.to_dict(),
        "mcnemar": test.to_dict(),
        "significant": bool(test.p_value < ALPHA and (interval.low > 0 or interval.high < 0)),
        "verdict": verdict(interval, test, ALPHA, advice),
        "per_class": per_class,
    }


def per_class_numbers(
    ca: np.ndarray, cb: np.ndarray, true: np.ndarray, class_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """McNemar's exact test within each class (``ca``/``cb``: per-image correctness of A and B,
    ``true``: labels), with Holm-adjusted p-values across the classes."""
    per_class = {}
    raw = []
    for label, name in enumerate(class_names):
        mask = true == label
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
    for name, adjusted in zip(class_names, holm_adjust(raw), strict=True):
        per_class[name]["p_holm"] = adjusted
    return per_class


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


def over_seeds(pairs: Sequence[tuple[RunResult, RunResult]], *, resamples: int, seed: int) -> dict:
    """Two pairs or more: the headline interval over seeds and test images, the pooled test-only
    bootstrap, and the verdict word (``None`` below :data:`study.stats.MIN_SEEDS` seeds)."""
    reference = pairs[0][0].predictions
    a = np.stack([correct(align(reference, x.predictions)) for x, _ in pairs])
    b = np.stack([correct(align(reference, y.predictions)) for _, y in pairs])
    interval = seed_interval(a, b).to_dict()
    word = method_word(interval, interval["p_value"]) if len(pairs) >= MIN_SEEDS else None
    test_only = pooled_bootstrap(a, b, resamples=resamples, seed=seed)
    return {"interval": interval, "test_only": test_only, "verdict": word}


def headline(numbers: dict[str, Any]) -> tuple[str, str | None]:
    """The verdict sentence and its direction (``better``, ``worse`` or None): one pair's about
    those two models; over seeds the method's (three or more) or the models' (two)."""
    pairs, seeds = numbers["pairs"], numbers.get("over_seeds")
    if seeds is None:
        first = pairs[0]
        direction = "better" if first["bootstrap"]["delta"] > 0 else "worse"
        return first["verdict"], direction if first["significant"] else None
    text = seeds_verdict("B", "A", seeds=len(pairs), interval=seeds["interval"],
                         test_only=seeds["test_only"], more_seeds=MORE_SEEDS)  # fmt: skip
    if seeds["verdict"] is not None:
        return text, None if seeds["verdict"] == NOT_ESTABLISHED else seeds["verdict"]
    test = seeds["test_only"]
    return text, "better" if test["low"] > 0 else ("worse" if test["high"] < 0 else None)


def compare_runs(
    side_a: Sequence[RunResult],
    side_b: Sequence[RunResult],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    advice: str = MORE_SEEDS,
) -> dict[str, Any]:
    """All the numbers of a comparison (JSON-ready). Pairs are the runs of the same training seed
    (a seed missing from one side, or repeated, is a UserError naming the runs; two single runs
    pair whatever their seeds); every run must share the first A run's test set and classes."""
    if not side_a or not side_b:
        raise UserError("each side needs at least one run")
    reference = side_a[0]
    for run in [*side_a[1:], *side_b]:
        check_pairable(reference, run)
    runs = {"A": [run_numbers(r) for r in side_a], "B": [run_numbers(r) for r in side_b]}
    matched = pair_by_seed(side_a, side_b)
    pairs = [pair_numbers(a, b, resamples=resamples, seed=seed, advice=advice) for a, b in matched]
    numbers: dict[str, Any] = {
        "class_names": reference.class_names,
        "n_test": len(reference.predictions.files),
        "runs": runs,
        "seeds": {side: seed_numbers(runs[side]) for side in SIDES},
        "pairs": pairs,
        "deltas": delta_numbers(pairs),
        "over_seeds": over_seeds(matched, resamples=resamples, seed=seed)
        if len(pairs) > 1
        else None,
        "confidence": CONFIDENCE,
        "alpha": ALPHA,
        "resamples": resamples,
        "seed": seed,
    }
    numbers["verdict"], numbers["direction"] = headline(numbers)
    return numbers
