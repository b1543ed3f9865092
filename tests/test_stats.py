"""study.stats against known answers: hand-computed McNemar and bootstrap cases, Student's t against
the printed table, the interval over seeds and test images against a case worked out by hand, and
the stats.verdict sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from study import stats

# The hand-kept table study.stats used before scipy: two-sided 97.5% quantiles of Student's t for
# 1..30 degrees of freedom (as printed in any statistics textbook).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def test_identical_predictions_give_p_one_and_zero_delta() -> None:
    correct = np.array([True, False, True, True, False] * 20)
    result = stats.mcnemar_exact(correct, correct)
    assert result.p_value == 1.0 and result.only_a_correct == 0 and result.only_b_correct == 0
    interval = stats.bootstrap_delta(correct, correct, resamples=500)
    assert interval.delta == 0.0 and interval.low == 0.0 and interval.high == 0.0
    assert stats.verdict(interval, result) == (
        "These two trained models do not differ detectably on this test set: +0.00 accuracy "
        "points (95% CI +0.00 to +0.00 over test images; McNemar p = 1). A single pair of runs "
        "tells about these two trained models, not about the method: train three or more seeds "
        "of each and compare them as lists (cli compare a_s0,a_s1,a_s2 b_s0,b_s1,b_s2)."
    )


def test_mcnemar_hand_computed() -> None:
    # b = 1 (only A right), c = 4 (only B right), 5 concordant: p = 2 * P(X<=1 | n=5) = 2*6/32
    a = [True] * 1 + [False] * 4 + [True] * 3 + [False] * 2
    b = [False] * 1 + [True] * 4 + [True] * 3 + [False] * 2
    result = stats.mcnemar_exact(a, b)
    assert (result.only_a_correct, result.only_b_correct) == (1, 4)
    assert result.p_value == pytest.approx(12 / 32)
    # b = 0, c = 10: p = 2 / 1024
    assert stats.mcnemar_exact([False] * 10, [True] * 10).p_value == pytest.approx(2 / 1024)
    # symmetric: b = c = 3 -> 2 * P(X <= 3 | n = 6) = 2 * 42/64 > 1 -> 1
    assert stats.mcnemar_exact([True] * 3 + [False] * 3, [False] * 3 + [True] * 3).p_value == 1.0


def test_bootstrap_interval_brackets_delta_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.70
    b = a.copy()
    b[np.flatnonzero(~a)[:50]] = True  # B fixes 50 of A's errors ...
    b[np.flatnonzero(a)[:10]] = False  # ... and makes 10 new ones: +10 points
    interval = stats.bootstrap_delta(a, b, resamples=2000, seed=3)
    assert interval.delta == pytest.approx(40 / 400)
    assert interval.low < interval.delta < interval.high
    assert interval == stats.bootstrap_delta(a, b, resamples=2000, seed=3)
    # A sizeable improvement on 400 images: the interval excludes 0 and McNemar p = 2 P(X <= 10),
    # X ~ Bin(60, 1/2), far below 0.05; the stats.verdict is about these two models only.
    assert interval.low > 0
    text = stats.verdict(interval, stats.mcnemar_exact(a, b))
    assert text.startswith(
        "These two trained models differ on this test set: B is better than A by +10.00 accuracy "
        "points (95% CI +"
    )
    assert "not about the method" in text


def test_bootstrap_hand_case_all_discordant_one_way() -> None:
    # every image: A wrong, B right -> every resample has delta exactly 1
    interval = stats.bootstrap_delta([False] * 30, [True] * 30, resamples=200)
    assert (interval.delta, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_pooled_bootstrap_and_its_p_value() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 200)) < 0.7
    same = stats.pooled_bootstrap(a, a, resamples=500)
    assert (same["delta"], same["low"], same["high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    better = stats.pooled_bootstrap(np.zeros_like(a), np.ones_like(a), resamples=500)
    assert (better["delta"], better["low"], better["p_value"]) == (1.0, 1.0, 0.0)
    b = a.copy()
    b[0, :20] = True  # seed 0 turns its first 20 images right, the others nothing
    gained = int((~a[0, :20]).sum())
    mixed = stats.pooled_bootstrap(a, b, resamples=2000)
    assert mixed["delta"] == pytest.approx(gained / 200 / 3)
    assert 0 <= mixed["low"] <= mixed["delta"] <= mixed["high"]


def test_mean_std_of_one_value_has_no_std() -> None:
    assert stats.mean_std([0.5]) == (0.5, None)
    mean, std = stats.mean_std([0.6, 0.8])
    assert mean == pytest.approx(0.7) and std == pytest.approx(math.sqrt(0.02))
    with pytest.raises(ValueError):
        stats.mean_std([])


def test_t_quantiles_are_the_printed_table() -> None:
    assert [round(stats.t_quantile(df), 3) for df in range(1, 31)] == list(T975)
    assert stats.t_quantile(10_000) == pytest.approx(1.96, abs=1e-3)  # the normal's, far out


def test_t_interval_of_one_two_three() -> None:
    # mean 2, sd 1: half-width t(0.975, 2) / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    low, high = stats.t_interval([1.0, 2.0, 3.0])
    assert (low, high) == (pytest.approx(2 - 2.4841, abs=1e-4), pytest.approx(2 + 2.4841, abs=1e-4))


def test_seed_interval_hand_case() -> None:
    """3 seeds x 4 images, A always wrong; B right on images {0,1}, {0}, {0,1,2}. Per-seed deltas
    1/2, 1/4, 3/4 (variance 1/16); per-image deltas over seeds 1, 2/3, 1/3, 0 (variance 5/27).
    se^2 = (1/16)/3 + (5/27)/4 = 29/432; t(0.975, 2) = 4.3027; for 2 degrees of freedom the
    two-sided p of t0 is 1 - t0 / sqrt(t0^2 + 2)."""
    a = np.zeros((3, 4), dtype=bool)
    b = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=bool)
    result = stats.seed_interval(a, b)
    se = math.sqrt(29 / 432)
    assert (result.delta, result.seeds, result.images) == (0.5, 3, 4)
    assert result.se == pytest.approx(se)
    assert result.low == pytest.approx(0.5 - 4.302653 * se, abs=1e-6)
    assert result.high == pytest.approx(0.5 + 4.302653 * se, abs=1e-6)
    t0 = 0.5 / se
    assert result.p_value == pytest.approx(1 - t0 / math.sqrt(t0 * t0 + 2))
    # No spread at all: a point interval, p 0 (or 1 with no difference).
    flat = stats.seed_interval(np.zeros((3, 5), bool), np.ones((3, 5), bool))
    assert (flat.low, flat.high, flat.p_value) == (1.0, 1.0, 0.0)
    assert stats.seed_interval(a, a).p_value == 1.0
    with pytest.raises(ValueError, match="two seeds"):
        stats.seed_interval(a[:1], b[:1])


def _seed(images: int, gained: int, lost: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """One seed's (A, B) correctness: both right on 80% of the images, then B alone right on
    ``gained`` images and A alone right on ``lost`` (from ``offset``, so seeds differ in which)."""
    a = np.zeros(images, dtype=bool)
    a[: int(0.8 * images)] = True
    a = np.roll(a, offset)
    b = a.copy()
    wrong, right = np.flatnonzero(~a), np.flatnonzero(a)
    b[wrong[:gained]] = True
    b[right[:lost]] = False
    return a, b


def test_seeds_that_disagree_in_sign_give_no_verdict_although_each_seed_is_significant() -> None:
    """3 seeds, 2,000 test images, per-seed deltas +5, -5 and +4 points, each from discordant
    pairs running one way only, so every seed's test-image interval (and McNemar) excludes 0, and
    so does the old pooled test-only interval; the interval over seeds and images covers 0."""
    pairs = [_seed(2000, 100, 0, 0), _seed(2000, 0, 100, 300), _seed(2000, 80, 0, 700)]
    a, b = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    deltas = []
    for x, y in pairs:
        each = stats.bootstrap_delta(x, y, resamples=2000)
        deltas.append(round(100 * each.delta, 6))
        assert each.low > 0 or each.high < 0
        assert stats.mcnemar_exact(x, y).p_value < 1e-20
    assert deltas == [5.0, -5.0, 4.0]
    pooled = stats.pooled_bootstrap(a, b, resamples=2000)
    assert pooled["low"] > 0  # test-set noise only: "significant"
    result = stats.seed_interval(a, b).to_dict()
    assert result["low"] < 0 < result["high"] and result["p_value"] > 0.05
    assert stats.method_word(result, result["p_value"]) == "not established"
    # By hand: deltas' variance 0.0030333 / 3 seeds = 0.0010111, the images' adds ~7e-6, so
    # se ~ 0.0319, half-width 4.303 * se ~ 13.7 points around +1.33, p (2 df) ~ 0.72.
    text = stats.seeds_verdict("B", "A", seeds=3, interval=result, test_only=pooled, more_seeds="-")
    assert text == (
        "That B differs from A is not established: +1.33 accuracy points, 95% CI -12.37 to "
        "+15.04 over 3 seeds and the test images (p 0.716); the interval covers 0."
    )


def test_seeds_verdict_texts() -> None:
    interval = {"delta": 0.02, "low": 0.01, "high": 0.03, "p_value": 0.004, "p_holm": 0.012}
    test_only = {"delta": 0.02, "low": 0.015, "high": 0.025}
    assert stats.seeds_verdict("B", "A", seeds=3, interval=interval, test_only=test_only,
                         more_seeds="-", p_key="p_holm") == (
        "B is better than A: +2.00 accuracy points, 95% CI +1.00 to +3.00 over 3 seeds and the "
        "test images (Holm-adjusted p 0.012)."
    )  # fmt: skip
    # Holm across arms can withhold a stats.verdict the unadjusted interval would give.
    held = stats.seeds_verdict("B", "A", seeds=3, interval={**interval, "p_holm": 0.2},
                         test_only=test_only, more_seeds="-", p_key="p_holm")  # fmt: skip
    assert held.endswith("the Holm-adjusted p is not below 0.05.")
    worse = {"delta": -0.02, "low": -0.03, "high": -0.01, "p_value": 0.004}
    assert stats.seeds_verdict("B", "A", seeds=5, interval=worse, test_only=test_only,
                         more_seeds="-").startswith("B is worse than A: -2.00")  # fmt: skip
    one = stats.seeds_verdict("real+gan", "real only", seeds=1, interval=None, test_only=test_only,
                        more_seeds="run more")  # fmt: skip
    assert one == (
        "These trained models differ on this test set: real+gan +2.00 accuracy points against "
        "real only (95% CI +1.50 to +2.50, test-set noise only). One seed cannot tell whether the "
        "method does: run more."
    )
    two = stats.seeds_verdict("B", "A", seeds=2, interval=interval, test_only={**test_only, "low": -0.01},
                        more_seeds="run more")  # fmt: skip
    assert two.startswith("These trained models do not differ detectably on this test set")
    assert "Two seeds cannot tell whether the method does: run more." in two


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_delta([True], [True, False])
