"""Bootstrap interval and McNemar's exact test against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from study.stats import bootstrap_delta, mcnemar_exact, mean_std, verdict


def test_identical_predictions_give_p_one_and_zero_delta() -> None:
    correct = np.array([True, False, True, True, False] * 20)
    result = mcnemar_exact(correct, correct)
    assert result.p_value == 1.0 and result.only_a_correct == 0 and result.only_b_correct == 0
    interval = bootstrap_delta(correct, correct, resamples=500)
    assert interval.delta == 0.0 and interval.low == 0.0 and interval.high == 0.0
    assert "No significant difference" in verdict(interval, result)


def test_mcnemar_hand_computed() -> None:
    # b = 1 (only A right), c = 4 (only B right), 5 concordant: p = 2 * P(X<=1 | n=5) = 2*6/32
    a = [True] * 1 + [False] * 4 + [True] * 3 + [False] * 2
    b = [False] * 1 + [True] * 4 + [True] * 3 + [False] * 2
    result = mcnemar_exact(a, b)
    assert (result.only_a_correct, result.only_b_correct) == (1, 4)
    assert result.p_value == pytest.approx(12 / 32)
    # b = 0, c = 10: p = 2 / 1024
    assert mcnemar_exact([False] * 10, [True] * 10).p_value == pytest.approx(2 / 1024)
    # symmetric: b = c = 3 -> 2 * P(X <= 3 | n = 6) = 2 * 42/64 > 1 -> 1
    assert mcnemar_exact([True] * 3 + [False] * 3, [False] * 3 + [True] * 3).p_value == 1.0


def test_bootstrap_interval_brackets_delta_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.70
    b = a.copy()
    b[np.flatnonzero(~a)[:50]] = True  # B fixes 50 of A's errors ...
    b[np.flatnonzero(a)[:10]] = False  # ... and makes 10 new ones: +10 points
    interval = bootstrap_delta(a, b, resamples=2000, seed=3)
    assert interval.delta == pytest.approx(b.mean() - a.mean())
    assert interval.low < interval.delta < interval.high
    assert interval == bootstrap_delta(a, b, resamples=2000, seed=3)
    # A sizeable improvement on 400 images is significant by both measures.
    assert interval.low > 0
    assert "significantly better" in verdict(interval, mcnemar_exact(a, b))


def test_bootstrap_hand_case_all_discordant_one_way() -> None:
    # every image: A wrong, B right -> every resample has delta exactly 1
    interval = bootstrap_delta([False] * 30, [True] * 30, resamples=200)
    assert (interval.delta, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_mean_std() -> None:
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.6, 0.8])
    assert mean == pytest.approx(0.7) and std == pytest.approx(np.sqrt(0.02))


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError):
        bootstrap_delta([True], [True, False])
