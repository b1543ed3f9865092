"""FID and KID from features, through torch-fidelity's own functions.

FID: Heusel et al. 2017, the Frechet distance between Gaussians fitted to the two feature sets.
KID: Binkowski et al. 2018 ("Demystifying MMD GANs"), the unbiased MMD^2 with a cubic polynomial
kernel, averaged over random subsets. torch-fidelity computes both (``fid_features_to_statistics``,
``fid_statistics_to_metric``, ``kid_features_to_metric``); we only choose a KID subset size that
fits small sets: torch-fidelity's default of 1000 fails on fewer samples, and the few hundred images
per class of a small dataset are exactly our case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from augment.fid.extractor import Extractor
from augment.fid.features import features_of
from augment.fid.sources import FeatureSource, source_size
from core.errors import UserError

KID_SUBSET_SIZE = 1000  # torch-fidelity's and the KID paper's default, used when both sets allow it
KID_SUBSETS = 100


@dataclass
class FidKidResult:
    fid: float
    kid_mean: float
    kid_std: float
    kid_subset_size: int  # the size used (clamped to the smaller set), not the size asked for
    n_a: int
    n_b: int
    kid_subsets: int = KID_SUBSETS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_enough_images(n_a: int, n_b: int) -> None:
    """A covariance needs two samples: FID with fewer than 2 images on a side is undefined."""
    if n_a < 2 or n_b < 2:
        raise UserError(
            f"FID/KID need at least 2 images per side, got {n_a} and {n_b}; add images to the "
            "smaller set"
        )


def kid_subset_size_for(requested: int | None, n_a: int, n_b: int) -> int:
    """``min(requested or 1000, n_a, n_b)``: asking for more than the samples is clamped, not an
    error (the used size is reported in the result)."""
    if requested is not None and requested < 2:
        raise UserError(f"--kid-subset-size {requested}: must be at least 2")
    return min(requested or KID_SUBSET_SIZE, n_a, n_b)


def frechet_distance_low_rank(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Exact FID (Heusel et al. 2017) for sets smaller than the feature dimension, in float64.

    FID = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr sqrt(S_a S_b). With centred, scaled features
    X_a (n_a x d) and X_b, S_a = X_a^T X_a and S_b = X_b^T X_b, and the non-zero eigenvalues of
    S_a S_b are those of M M^T with M = X_a X_b^T (n_a x n_b): Tr sqrt(S_a S_b) is the sum of M's
    singular values. A few-hundred-square SVD replaces the 2048 x 2048 matrix square root
    torch-fidelity computes (15-40 s per call on 2 CPU cores); the value is the same (the tests
    check it against torch-fidelity's).
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    xa = (a - mu_a) / np.sqrt(len(a) - 1)
    xb = (b - mu_b) / np.sqrt(len(b) - 1)
    singular = np.linalg.svd(xa @ xb.T, compute_uv=False)
    value = np.sum((mu_a - mu_b) ** 2) + np.sum(xa * xa) + np.sum(xb * xb) - 2.0 * singular.sum()
    return float(value)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID through torch-fidelity's statistics and metric, or the exact low-rank form when either
    set has fewer images than feature dimensions (the covariance is then rank-deficient anyway)."""
    if min(len(feats_a), len(feats_b)) < feats_a.shape[1]:
        return frechet_distance_low_rank(feats_a, feats_b)
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )

    tensor_a = torch.from_numpy(np.array(feats_a, dtype=np.float32, copy=True))
    tensor_b = torch.from_numpy(np.array(feats_b, dtype=np.float32, copy=True))
    stats = fid_statistics_to_metric(
        fid_features_to_statistics(tensor_a), fid_features_to_statistics(tensor_b), verbose=False
    )
    return float(stats[KEY_METRIC_FID])


def fid_kid(
    feats_a: np.ndarray,
    feats_b: np.ndarray,
    kid_subset_size: int | None = None,
    kid_subsets: int = KID_SUBSETS,
    seed: int = 0,
) -> FidKidResult:
    """FID and KID (mean and std over ``kid_subsets`` random subsets, seeded) of two feature sets."""
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    n_a, n_b = len(feats_a), len(feats_b)
    check_enough_images(n_a, n_b)
    if feats_a.shape[1:] != feats_b.shape[1:]:
        raise ValueError(f"feature shapes differ: {feats_a.shape} vs {feats_b.shape}")
    if kid_subsets < 1:
        raise UserError(f"--kid-subsets {kid_subsets}: must be at least 1")
    subset = kid_subset_size_for(kid_subset_size, n_a, n_b)
    # torch-fidelity's functions take CPU float tensors; its features are float32, so ours are too
    tensor_a = torch.from_numpy(np.array(feats_a, dtype=np.float32, copy=True))
    tensor_b = torch.from_numpy(np.array(feats_b, dtype=np.float32, copy=True))
    fid = frechet_distance(feats_a, feats_b)
    kid = kid_features_to_metric(
        tensor_a,
        tensor_b,
        kid_subsets=kid_subsets,
        kid_subset_size=subset,
        rng_seed=seed,
        verbose=False,
    )
    return FidKidResult(
        fid=float(fid),
        kid_mean=float(kid[KEY_METRIC_KID_MEAN]),
        kid_std=float(kid[KEY_METRIC_KID_STD]),
        kid_subset_size=subset,
        n_a=n_a,
        n_b=n_b,
        kid_subsets=kid_subsets,
    )


def check_same_classes(
    real: Mapping[str, Any], fake: Mapping[str, Any], what: str = ""
) -> list[str]:
    """The shared class names (sorted); differing sets of names are a :class:`UserError`."""
    if set(real) != set(fake):
        only_real = sorted(set(real) - set(fake)) or "-"
        only_fake = sorted(set(fake) - set(real)) or "-"
        where = f"{what}: " if what else ""
        raise UserError(
            f"{where}class names differ (only in the first set: {only_real}; only in the second: "
            f"{only_fake}); make the class sub-folders match"
        )
    if not real:
        raise UserError(f"{what + ': ' if what else ''}no classes to score")
    return sorted(real)


def score_per_class(
    real: Mapping[str, FeatureSource],
    fake: Mapping[str, FeatureSource],
    extractor: Extractor,
    kid_subset_size: int | None = None,
    batch_size: int = 64,
    *,
    kid_subsets: int = KID_SUBSETS,
    seed: int = 0,
    cache: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """FID/KID class by class (classes matched by name) plus an overall row on all images.

    Each image is passed through the network once: the overall row reuses the per-class features.
    Returns ``{"per_class": {cls: FidKidResult.to_dict()}, "overall": {...}, "mean_fid": float,
    "feature_extractor": name}``.
    """
    classes = check_same_classes(real, fake)
    for name in classes:  # fail before the network runs, not after
        try:
            check_enough_images(source_size(real[name]), source_size(fake[name]))
        except UserError as exc:
            raise UserError(f"class {name!r}: {exc}") from None
    feats_real: dict[str, np.ndarray] = {}
    feats_fake: dict[str, np.ndarray] = {}
    for name in classes:
        feats_real[name] = features_of(real[name], extractor, batch_size, cache, progress)
        feats_fake[name] = features_of(fake[name], extractor, batch_size, cache, progress)
    per_class: dict[str, dict[str, Any]] = {}
    for name in classes:
        try:
            result = fid_kid(feats_real[name], feats_fake[name], kid_subset_size, kid_subsets, seed)
        except UserError as exc:
            raise UserError(f"class {name!r}: {exc}") from None
        per_class[name] = result.to_dict()
    overall = fid_kid(
        np.concatenate([feats_real[n] for n in classes]),
        np.concatenate([feats_fake[n] for n in classes]),
        kid_subset_size,
        kid_subsets,
        seed,
    )
    return {
        "per_class": per_class,
        "overall": overall.to_dict(),
        "mean_fid": float(np.mean([r["fid"] for r in per_class.values()])),
        "feature_extractor": extractor.name,
    }


def score_sources(
    a: FeatureSource,
    b: FeatureSource,
    extractor: Extractor,
    kid_subset_size: int | None = None,
    batch_size: int = 64,
    *,
    kid_subsets: int = KID_SUBSETS,
    seed: int = 0,
    cache: bool = True,
    progress: Callable[[int], None] | None = None,
) -> FidKidResult:
    """FID/KID between two sources (folders, file lists or uint8 tensors)."""
    check_enough_images(source_size(a), source_size(b))
    feats_a = features_of(a, extractor, batch_size, cache, progress)
    feats_b = features_of(b, extractor, batch_size, cache, progress)
    return fid_kid(feats_a, feats_b, kid_subset_size, kid_subsets, seed)
