"""augment.fid.prdc: precision / recall (Kynkaanniemi et al. 2019) and density / coverage (Naeem et
al. 2020) equal values computed by hand on small 1-D point sets, and a set scored against itself."""

from __future__ import annotations

import numpy as np
import pytest

from augment.fid.prdc import density_coverage, knn_radii, pairwise_distances, prdc, precision_recall


def column(*values: float) -> np.ndarray:
    """1-D points as an N x 1 feature matrix."""
    return np.array(values, dtype=np.float64)[:, None]


def test_pairwise_distances_and_knn_radii_by_hand() -> None:
    points = column(0, 1, 3)
    assert np.allclose(pairwise_distances(points, column(0.5)), [[0.5], [0.5], [2.5]])
    # nearest other point: 0 -> 1 (1), 1 -> 0 (1), 3 -> 1 (2); second nearest: 3, 2, 3
    assert knn_radii(points, 1).tolist() == [1.0, 1.0, 2.0]
    assert knn_radii(points, 2).tolist() == [3.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="k = 3"):
        knn_radii(points, 3)


def test_an_outlying_fake_lowers_precision_but_not_recall() -> None:
    """Real {0, 1, 3}, fake {0.5, 2.9, 10}, k = 1 (computed by hand).

    Real radii 1, 1, 2; fake radii 2.4, 2.4, 7.1. Precision: 0.5 lies in the balls of 0 and 1, 2.9
    in the ball of 3, 10 in none: 2/3. Recall: every real point lies in the ball of 0.5 or 2.9: 1.
    Density: 0.5 in 2 real balls, 2.9 in 1, 10 in 0: (2 + 1 + 0) / (1 * 3) = 1. Coverage: the
    nearest fakes (0.5, 0.5, 2.9) lie inside the balls of 0, 1 and 3: 1."""
    real, fake = column(0, 1, 3), column(0.5, 2.9, 10)
    assert precision_recall(real, fake, k=1) == pytest.approx((2 / 3, 1.0))
    assert density_coverage(real, fake, k=1) == pytest.approx((1.0, 1.0))


def test_mode_collapse_shows_as_low_recall_and_coverage() -> None:
    """Real 0, 1, ..., 9; every fake crowds near 0 (0.05, 0.15, 0.25, 0.35); k = 3 (by hand).

    Real radii (3rd neighbour): 3 for 0 and 9, 2 for the others; fake radii 0.3, 0.2, 0.2, 0.3.
    Precision 1 (all fakes in the ball of 0). Recall: only real 0 lies in a fake ball: 1/10.
    Density: each fake lies in the balls of 0, 1 and 2 (distances below 3, 2, 2), none further:
    12 / (3 * 4) = 1. Coverage: reals 0, 1, 2 have a fake inside their ball (0.05, 0.65, 1.65):
    3/10."""
    real, fake = column(*range(10)), column(0.05, 0.15, 0.25, 0.35)
    assert knn_radii(real, 3).tolist() == [3, 2, 2, 2, 2, 2, 2, 2, 2, 3]
    assert precision_recall(real, fake, k=3) == pytest.approx((1.0, 0.1))
    assert density_coverage(real, fake, k=3) == pytest.approx((1.0, 0.3))
    both = prdc(real, fake, pr_k=3, dc_k=3)
    assert both is not None and both.to_dict() == pytest.approx(
        {"precision": 1.0, "recall": 0.1, "density": 1.0, "coverage": 0.3}
    )
    # The real set comes first: swapped, the crowded set is the reference.
    assert precision_recall(fake, real, k=3) == pytest.approx((0.1, 1.0))


def test_a_set_against_itself_scores_one() -> None:
    points = np.random.default_rng(0).normal(size=(60, 8))
    result = prdc(points, points.copy())
    assert result is not None
    assert (result.precision, result.recall, result.coverage) == (1.0, 1.0, 1.0)
    assert result.density == pytest.approx(1.0)  # exactly k of k+1 points per ball: strict "<"
    other = prdc(points, np.random.default_rng(1).normal(size=(60, 8)) + 3.0)
    assert other is not None and other.recall < 0.5 and other.coverage < 0.5


def test_too_small_sets_give_none() -> None:
    assert prdc(column(0, 1, 2, 3, 4, 5), column(0, 1, 2)) is None  # 3 fakes, k = 3
    assert prdc(column(0, 1, 2, 3, 4), column(0, 1, 2, 3, 4)) is None  # 5 reals, k = 5
    assert prdc(column(0, 1, 2, 3, 4, 5), column(0, 1, 2, 3)) is not None
