"""Classification metrics as small pure functions over label arrays and confusion matrices.

Conventions: a confusion matrix has true classes as rows and predicted classes as columns. A ratio
whose denominator is zero (precision of a class never predicted, recall of a class absent from the
test set) is reported as 0.0, as scikit-learn's ``zero_division=0`` does, so macro averages stay
defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(
    true: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts ``[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (int64)."""
    true_arr = np.asarray(true, dtype=np.int64).ravel()
    pred_arr = np.asarray(predicted, dtype=np.int64).ravel()
    if true_arr.shape != pred_arr.shape:
        raise ValueError(f"{true_arr.size} true labels but {pred_arr.size} predictions")
    for name, arr in (("true", true_arr), ("predicted", pred_arr)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in [0, {num_classes})")
    flat = np.bincount(true_arr * num_classes + pred_arr, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    denominator = denominator.astype(np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def precision_recall_f1(
    matrix: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support (true count) from a confusion matrix."""
    matrix = np.asarray(matrix)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1)
    precision = _safe_divide(tp, matrix.sum(axis=0))
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return precision, recall, f1, support.astype(np.int64)


def accuracy(matrix: np.ndarray) -> float:
    matrix = np.asarray(matrix)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def macro_f1(matrix: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 scores (every class counts the same)."""
    return float(precision_recall_f1(matrix)[2].mean())


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class given each prediction); empty
    rows stay zero."""
    matrix = np.asarray(matrix)
    return _safe_divide(matrix, matrix.sum(axis=1, keepdims=True))


def mean_cross_entropy(probabilities: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at 1e-12)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    labels_arr = np.asarray(labels, dtype=np.int64)
    picked = probs[np.arange(labels_arr.size), labels_arr]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def classification_summary(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """JSON-ready accuracy, macro-F1 and per-class precision/recall/F1/support."""
    precision, recall, f1, support = precision_recall_f1(matrix)
    if len(class_names) != len(support):
        raise ValueError(f"{len(class_names)} class names for a {len(support)}-class matrix")
    return {
        "accuracy": accuracy(matrix),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
    }
