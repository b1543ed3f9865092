"""Precision, recall, density and coverage of generated features against real ones (no network of
their own: they run on the InceptionV3 features FID already computed).

Each real (or generated) sample gets a k-NN ball: the sphere around it whose radius is the distance
to its k-th nearest neighbour in its own set (itself excluded).

- Precision / recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models", https://arxiv.org/abs/1904.06991; k = 3): precision is the share of
  generated samples inside at least one real ball (fidelity), recall the share of real samples
  inside at least one generated ball (variety: mode collapse lowers it).
- Density / coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models", https://arxiv.org/abs/2002.09797; k = 5): density counts how many real balls contain
  each generated sample, divided by k (about 1 when the two sets come from one distribution; above
  1 when fakes crowd the dense regions); coverage is the share of real samples whose ball contains
  at least one generated sample (robust to outlying fakes, unlike recall).

Inclusion is strict (``distance < radius``), as in the authors' reference code
(clovaai/generative-evaluation-prdc): a set scored against itself then gets precision, recall and
coverage 1 and density exactly 1 when no two distances tie. Distances are Euclidean, in float64.
The real set comes first in every signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PRECISION_RECALL_K = 3  # Kynkaanniemi et al. 2019
DENSITY_COVERAGE_K = 5  # Naeem et al. 2020


@dataclass(frozen=True)
class Prdc:
    precision: float
    recall: float
    density: float
    coverage: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a) x len(b)), in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def knn_radii(feats: np.ndarray, k: int) -> np.ndarray:
    """Each sample's distance to its k-th nearest neighbour in ``feats``, itself excluded."""
    return _radii(pairwise_distances(feats, feats), k)


def _radii(self_distances: np.ndarray, k: int) -> np.ndarray:
    n = len(self_distances)
    if not 1 <= k < n:
        raise ValueError(f"k = {k}: needs 1 <= k < the number of samples ({n})")
    distances = self_distances.copy()
    np.fill_diagonal(distances, 0.0)  # rounding must not move a sample away from itself
    return np.partition(distances, k, axis=1)[:, k]  # index 0 is the sample itself


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = PRECISION_RECALL_K
) -> tuple[float, float]:
    """(precision, recall) of Kynkaanniemi et al. 2019 with k-NN balls of ``k`` neighbours."""
    return _precision_recall(pairwise_distances(real, fake), knn_radii(real, k), knn_radii(fake, k))


def density_coverage(
    real: np.ndarray, fake: np.ndarray, k: int = DENSITY_COVERAGE_K
) -> tuple[float, float]:
    """(density, coverage) of Naeem et al. 2020 with k-NN balls of ``k`` neighbours (real only)."""
    return _density_coverage(pairwise_distances(real, fake), knn_radii(real, k), k)


def _precision_recall(
    real_fake: np.ndarray, real_radii: np.ndarray, fake_radii: np.ndarray
) -> tuple[float, float]:
    precision = (real_fake < real_radii[:, None]).any(axis=0).mean()  # fake j in some real ball
    recall = (real_fake < fake_radii[None, :]).any(axis=1).mean()  # real i in some fake ball
    return float(precision), float(recall)


def _density_coverage(real_fake: np.ndarray, real_radii: np.ndarray, k: int) -> tuple[float, float]:
    inside = real_fake < real_radii[:, None]  # real ball i contains fake j
    return float(inside.sum(axis=0).mean() / k), float(inside.any(axis=1).mean())


def prdc(
    real: np.ndarray,
    fake: np.ndarray,
    pr_k: int = PRECISION_RECALL_K,
    dc_k: int = DENSITY_COVERAGE_K,
) -> Prdc | None:
    """All four metrics (each distance matrix computed once), or None when a set is too small for
    its k-NN balls: precision/recall need more than ``pr_k`` samples on each side,
    density/coverage more than ``dc_k`` real ones."""
    if min(len(real), len(fake)) <= pr_k or len(real) <= dc_k:
        return None
    real_real, fake_fake = pairwise_distances(real, real), pairwise_distances(fake, fake)
    real_fake = pairwise_distances(real, fake)
    precision, recall = _precision_recall(
        real_fake, _radii(real_real, pr_k), _radii(fake_fake, pr_k)
    )
    density, coverage = _density_coverage(real_fake, _radii(real_real, dc_k), dc_k)
    return Prdc(precision, recall, density, coverage)
