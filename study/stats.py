"""Statistics on paired test predictions of two classifiers.

Both functions take per-image correctness of two models on the *same* test images, in the same order:
the pairing is what makes the comparison sensitive (each image is its own control).

- :func:`bootstrap_delta`: the accuracy difference (B - A) with a percentile bootstrap interval over
  test images (Efron & Tibshirani 1993), resampling images with replacement, pairs kept together.
- :func:`mcnemar_exact`: McNemar's test (McNemar 1947) in its exact binomial form: only discordant
  pairs carry information; under H0 each discordant image is equally likely to favour either model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class DeltaInterval:
    delta: float  # accuracy of B minus accuracy of A, on the full test set
    low: float
    high: float
    confidence: float
    resamples: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class McNemarResult:
    only_a_correct: int  # b: A right, B wrong
    only_b_correct: int  # c: A wrong, B right
    p_value: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _as_bool(correct: np.ndarray | list[bool]) -> np.ndarray:
    return np.asarray(correct, dtype=bool).reshape(-1)


def bootstrap_delta(
    correct_a: np.ndarray | list[bool],
    correct_b: np.ndarray | list[bool],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 1_000,
) -> DeltaInterval:
    """Accuracy delta (B - A) and its paired percentile-bootstrap interval."""
    a, b = _as_bool(correct_a), _as_bool(correct_b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired predictions need the same, non-zero number of images")
    diff = b.astype(np.int8) - a.astype(np.int8)  # per image: +1, 0 or -1
    n = diff.size
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        deltas[start:stop] = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [alpha, 1.0 - alpha])
    return DeltaInterval(float(diff.mean()), float(low), float(high), confidence, resamples)


def mcnemar_exact(
    correct_a: np.ndarray | list[bool], correct_b: np.ndarray | list[bool]
) -> McNemarResult:
    """Two-sided exact McNemar p-value: 2 * P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1."""
    a, b = _as_bool(correct_a), _as_bool(correct_b)
    if a.shape != b.shape:
        raise ValueError("paired predictions need the same number of images")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return McNemarResult(only_a, only_b, 1.0)
    k = min(only_a, only_b)
    # Sum in log space: exact for the few thousand discordant pairs a test set can have.
    log_terms = [_log_binom(n, i) - n * math.log(2.0) for i in range(k + 1)]
    top = max(log_terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    return McNemarResult(only_a, only_b, min(1.0, 2.0 * tail))


def _log_binom(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t_interval(values: list[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean of two or more ``values`` (seed-to-seed variation: with
    three seeds t is 4.3, with two 12.7, so few seeds give a wide interval, as they should)."""
    n = len(values)
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    half = t * sd / math.sqrt(n)
    return mean - half, mean + half


def verdict(interval: DeltaInterval, mcnemar: McNemarResult, alpha: float = 0.05) -> str:
    """One plain sentence on whether B differs from A."""
    pts = 100.0 * interval.delta
    ci = f"{100 * interval.low:+.1f} to {100 * interval.high:+.1f} points"
    if mcnemar.p_value < alpha and (interval.low > 0 or interval.high < 0):
        direction = "better" if interval.delta > 0 else "worse"
        return (
            f"B is significantly {direction} than A: {pts:+.1f} accuracy points "
            f"({interval.confidence:.0%} CI {ci}; McNemar p = {mcnemar.p_value:.3g})."
        )
    return (
        f"No significant difference: {pts:+.1f} accuracy points ({interval.confidence:.0%} CI {ci}; "
        f"McNemar p = {mcnemar.p_value:.3g}); the test set cannot tell these models apart."
    )
