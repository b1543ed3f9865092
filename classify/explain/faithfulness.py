"""How faithful a class activation map is: a perturbation metric from ``pytorch_grad_cam.metrics``
(ROAD, Rong et al. 2022, by default) asks whether removing what the map calls relevant actually
lowers the model's confidence, since pictures alone flatter a method. The scores are summarised as
the ``cam`` entry of ``RUN/eval/metrics.json``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from classify.checkpoint import LoadedClassifier
from classify.explain.cams import (
    DEFAULT_BATCH_SIZE,
    CamOptions,
    check_options,
    class_targets,
    compute_cams,
)
from classify.explain.methods import FAITHFULNESS_METRICS
from core.errors import UserError

ROAD_PERCENTILES = (20, 40, 60, 80)


def _metric(name: str) -> Any:
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.metrics.road import ROADCombined

    factories: dict[str, Callable[[], Any]] = {
        "road": lambda: ROADCombined(percentiles=list(ROAD_PERCENTILES)),
        "confidence": CamMultImageConfidenceChange,
    }
    return factories[name]()


def faithfulness_scores(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    cams: np.ndarray,
    targets: Sequence[int],
    metric: str = "road",
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
) -> np.ndarray:
    """Per-image faithfulness (higher is better) of ``cams`` for the ``targets`` classes."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    if metric not in FAITHFULNESS_METRICS:
        raise UserError(f"--metric {metric!r}: choose one of {', '.join(FAITHFULNESS_METRICS)}")
    scorer = _metric(metric)
    scores = []
    # ROAD's imputer adds seeded noise: fork the RNG so the caller's stream is untouched. It also
    # calls np.argwhere on tensors, which NumPy 2 flags as deprecated (harmless, not ours).
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array_wrap__", category=DeprecationWarning)
        torch.manual_seed(seed)
        for start in range(0, images_uint8.shape[0], batch_size):
            x = loaded.model_input(images_uint8[start : start + batch_size])
            wanted = [
                ClassifierOutputSoftmaxTarget(int(t)) for t in targets[start : start + batch_size]
            ]
            with torch.no_grad():
                scores.append(
                    np.asarray(
                        scorer(x, cams[start : start + batch_size], wanted, loaded.model),
                        dtype=np.float64,
                    ).reshape(-1)
                )
    return np.concatenate(scores) if scores else np.zeros(0)


def cam_faithfulness(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    labels: Sequence[int] | None = None,
    method: str = "gradcam",
    *,
    options: CamOptions | None = None,
    cams: np.ndarray | None = None,
) -> dict[str, Any]:
    """Mean faithfulness of ``method``'s maps over ``images_uint8`` (uint8 N x 3 x S x S).

    Returns the metrics.json ``cam`` entry: ``{"metric", "value", "std", "n_images", "method",
    "target", "aug_smooth", "eigen_smooth", "checkpoint", "higher_is_better": True, ...}``. Pass
    ``cams`` to score maps already computed (for the same targets).
    """
    options = options or CamOptions(method=method)
    if options.method != method:
        options = dataclasses.replace(options, method=method)
    check_options(options)
    probs = loaded.predict_proba(images_uint8)
    targets = class_targets(probs, labels, options.target)
    if cams is None:
        cams = compute_cams(loaded, images_uint8, targets, options)
    scores = faithfulness_scores(
        loaded, images_uint8, cams, targets, options.metric, options.batch_size, options.seed
    )
    return faithfulness_entry(
        loaded,
        scores,
        options.metric,
        method=method,
        target=options.target,
        aug_smooth=options.aug_smooth,
        eigen_smooth=options.eigen_smooth,
        seed=options.seed,
    )


def faithfulness_entry(
    loaded: LoadedClassifier, scores: np.ndarray, metric: str, **details: Any
) -> dict[str, Any]:
    """Per-image ``scores`` summarised as a metrics.json entry (mean, sd, count; NaNs dropped)
    with ``details`` (method, target, ...) and the checkpoint that made them."""
    finite = scores[np.isfinite(scores)]
    return {
        "metric": FAITHFULNESS_METRICS[metric].label,
        "value": float(finite.mean()) if finite.size else math.nan,
        "std": float(finite.std()) if finite.size else math.nan,
        "n_images": int(finite.size),
        "higher_is_better": True,
        **details,
        "checkpoint": loaded.which,
        "epoch": loaded.epoch,
    }
