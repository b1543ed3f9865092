"""Statistics on paired test predictions: two classifiers, or two sets of seeds of two recipes.

Every function takes per-image correctness on the *same* test images, in the same order: the
pairing is what makes the comparison sensitive (each image is its own control).

Test-set noise only (the trained models held fixed):

- :func:`bootstrap_delta`: one pair's accuracy difference (B - A) with a percentile bootstrap
  interval over test images (Efron & Tibshirani 1993), images resampled, pairs kept together.
- :func:`mcnemar_exact`: McNemar's test (McNemar 1947) in its exact binomial form: only discordant
  pairs carry information; under H0 each discordant image is equally likely to favour either model.
- :func:`pooled_bootstrap`: the seeds' mean delta, test images resampled (one draw for every seed).

Both sources of noise, the headline of a comparison over seeds (:func:`seed_interval`): the
t-interval of the seeds' mean delta whose variance adds the test images' to the seeds'. Why this
and not a two-level bootstrap (seeds resampled, then images within them; Davison & Hinkley 1997,
§3.8, on hierarchical data): its spread over the first stage comes from the seeds alone, and with
the three to five seeds a study affords its percentile interval hardly reaches beyond the range of
the seeds' own deltas and its p-value is ~0 whenever three seeds agree in sign, which under no
effect happens one time in four. Student's t with ``seeds - 1`` degrees of freedom is exact for
normal per-seed deltas and wide when seeds are few (t = 4.30 at three seeds), as it should be.
Seeds and test images are crossed (every seed is tested on the same images), so the variance of
the grand mean is estimated as the per-seed deltas' variance over ``seeds`` plus the per-image
deltas' (averaged over seeds) variance over ``images``: the moment estimator of a two-way crossed
design (cf. Owen 2007, "The pigeonhole bootstrap"), which counts the seed x image interaction
twice, so it errs wide; the degrees of freedom stay the seeds' (conservative). Bouthillier et
al. 2021 ("Accounting for Variance in Machine Learning Benchmarks") show why both sources belong
in the interval: seed-to-seed variation alone, or test-set sampling alone, under-states how much a
benchmark result moves. Across arms the p-values are Holm-adjusted (Holm 1979; Dror et al. 2018 on
significance testing and its reporting in NLP), :func:`study.compare.numbers.holm_adjust`.

With fewer than :data:`MIN_SEEDS` seeds nothing is said about the method: one or two pairs of
trained models tell whether *those models* differ on this test set, not whether the recipe does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from study.compare.config import PAIR_ADVICE

MIN_SEEDS = 3  # fewer seeds: no verdict about the method
CONFIDENCE = 0.95
ALPHA = 0.05
BETTER, WORSE, NOT_ESTABLISHED = "better", "worse", "not established"


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


@dataclass(frozen=True)
class SeedInterval:
    """The mean over seeds of B - A, its interval and two-sided p-value over seeds and images."""

    delta: float
    low: float
    high: float
    p_value: float
    se: float  # standard error of ``delta``: sqrt(seed variance / seeds + image variance / images)
    seeds: int
    images: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_bool(correct: np.ndarray | list[bool]) -> np.ndarray:
    return np.asarray(correct, dtype=bool).reshape(-1)


def bootstrap_delta(
    correct_a: np.ndarray | list[bool],
    correct_b: np.ndarray | list[bool],
    *,
    resamples: int = 10_000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    chunk: int = 1_000,
) -> DeltaInterval:
    """Accuracy delta (B - A) and its paired percentile-bootstrap interval (test-set noise only)."""
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


def pooled_bootstrap(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, seed: int = 0, chunk: int = 500
) -> dict[str, float]:
    """The seeds' mean delta with test-set noise only: ``a``, ``b`` are seeds x images
    correctness; each resample draws test images once (with replacement) for every seed and
    averages the seeds' deltas; p: twice the smaller tail mass beyond 0."""
    diff = np.atleast_2d(b).astype(np.int8) - np.atleast_2d(a).astype(np.int8)
    n = diff.shape[1]
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        deltas[start : start + len(idx)] = diff[:, idx].mean(axis=(0, 2))
    low, high = np.quantile(deltas, [0.025, 0.975])
    tail = min(float((deltas <= 0).mean()), float((deltas >= 0).mean()))
    return {
        "delta": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "p_value": min(1.0, 2 * tail),
        "seeds": int(diff.shape[0]),
        "resamples": resamples,
    }


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Student's t quantile of a two-sided ``confidence`` interval (scipy.stats.t.ppf)."""
    return float(sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, df))


def seed_interval(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> SeedInterval:
    """B - A over seeds *and* test images (module docstring): ``a``, ``b`` are seeds x images
    correctness, row ``s`` of both the runs of one training seed; two seeds or more."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    seeds, images = diff.shape
    if seeds < 2:
        raise ValueError("an interval over seeds needs two seeds or more")
    per_seed, per_image = diff.mean(axis=1), diff.mean(axis=0)
    variance = per_seed.var(ddof=1) / seeds + (per_image.var(ddof=1) / images if images > 1 else 0)
    se, delta, df = math.sqrt(variance), float(diff.mean()), seeds - 1
    half = t_quantile(df, confidence) * se
    # se = 0: every seed and every image agree, no spread at all
    p = float(2 * sps.t.sf(abs(delta) / se, df)) if se > 0 else float(delta == 0)
    return SeedInterval(delta, delta - half, delta + half, p, se, seeds, images, confidence)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1). One value gives its mean and ``None``: a
    sample standard deviation needs two values (a single seed shows no spread, not zero spread)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values")
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def t_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The t-interval of the mean of two or more ``values`` (with three t is 4.30, with two
    12.71, so few values give a wide interval, as they should)."""
    n = len(values)
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = t_quantile(n - 1, confidence) * sd / math.sqrt(n)
    return mean - half, mean + half


# --- verdicts -------------------------------------------------------------------------------------


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _p(p: float) -> str:
    return "< 1e-06" if p < 1e-6 else f"{p:.3g}"


def verdict(
    interval: DeltaInterval, mcnemar: McNemarResult, alpha: float = ALPHA, advice: str = PAIR_ADVICE
) -> str:
    """One pair of trained models: whether they differ on this test set (never a verdict about the
    method: one pair of runs cannot tell training noise from a recipe's effect); ``advice`` says
    how to get one."""
    ci = f"{interval.confidence:.0%} CI {_pts(interval.low)} to {_pts(interval.high)}"
    numbers = f"{ci} over test images; McNemar p = {_p(mcnemar.p_value)}"
    if mcnemar.p_value < alpha and (interval.low > 0 or interval.high < 0):
        direction = "better" if interval.delta > 0 else "worse"
        head = (
            f"These two trained models differ on this test set: B is {direction} than A by "
            f"{_pts(interval.delta)} accuracy points ({numbers})."
        )
    else:
        head = (
            "These two trained models do not differ detectably on this test set: "
            f"{_pts(interval.delta)} accuracy points ({numbers})."
        )
    return head + (
        f" A single pair of runs tells about these two trained models, not about the method: {advice}."
    )


def method_word(interval: dict[str, Any], p: float, alpha: float = ALPHA) -> str:
    """``better`` / ``worse`` when the interval excludes 0 and ``p`` (Holm-adjusted across arms
    where there are several) is below ``alpha``; ``not established`` otherwise."""
    if p < alpha and interval["low"] > 0:
        return BETTER
    if p < alpha and interval["high"] < 0:
        return WORSE
    return NOT_ESTABLISHED


def seeds_verdict(
    b: str,
    a: str,
    *,
    seeds: int,
    interval: dict[str, Any] | None,
    test_only: dict[str, Any],
    more_seeds: str,
    p_key: str = "p_value",
) -> str:
    """The verdict over seeds about the method (``MIN_SEEDS`` or more, following ``interval``),
    or, with fewer, what the trained models say on this test set and how to run more seeds."""
    if seeds >= MIN_SEEDS and interval is not None:
        p = interval[p_key]
        label = "Holm-adjusted p" if p_key == "p_holm" else "p"
        numbers = (
            f"{_pts(interval['delta'])} accuracy points, 95% CI {_pts(interval['low'])} to "
            f"{_pts(interval['high'])} over {seeds} seeds and the test images ({label} {_p(p)})"
        )
        word = method_word(interval, p)
        if word != NOT_ESTABLISHED:
            return f"{b} is {word} than {a}: {numbers}."
        covers = interval["low"] <= 0 <= interval["high"]
        why = "the interval covers 0" if covers else f"the {label} is not below {ALPHA}"
        return f"That {b} differs from {a} is not established: {numbers}; {why}."
    differ = test_only["low"] > 0 or test_only["high"] < 0
    count = seed_count(seeds)
    return (
        f"These trained models {'differ' if differ else 'do not differ detectably'} on this test "
        f"set: {b} {_pts(test_only['delta'])} accuracy points against {a} (95% CI "
        f"{_pts(test_only['low'])} to {_pts(test_only['high'])}, test-set noise only). {count} "
        f"cannot tell whether the method does: {more_seeds}."
    )


def seed_count(seeds: int) -> str:
    """``One seed``, ``Two seeds``, ``5 seeds``: the subject of a sentence."""
    return {1: "One seed", 2: "Two seeds"}.get(seeds, f"{seeds} seeds")


def paired_seeds(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Everything about B against A over seeds (rows of ``a``/``b``: one training seed each):
    per seed the bootstrap and McNemar (test-set noise only), the pooled test-only bootstrap, and
    (two seeds or more) the headline :func:`seed_interval` (seeds and test images)."""
    per_seed = [
        {
            "delta": bootstrap_delta(a[i], b[i], resamples=resamples, seed=seed).to_dict(),
            "mcnemar": mcnemar_exact(a[i], b[i]).to_dict(),
        }
        for i in range(len(a))
    ]
    return {
        "per_seed": per_seed,
        "test_only": pooled_bootstrap(a, b, resamples=resamples, seed=seed),
        "interval": seed_interval(a, b).to_dict() if len(a) >= 2 else None,
    }
