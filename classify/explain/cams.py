"""Class activation maps of a trained classifier (pytorch-grad-cam): the options, the CAM object on
the model's target layers, and the maps themselves.

Methods come from :data:`classify.explain.methods.CAM_METHODS` (Grad-CAM, Selvaraju et al. 2017;
Grad-CAM++, Chattopadhay et al. 2018; HiResCAM, Draelos & Carin 2020; Score-CAM, Wang et al. 2020;
Eigen-CAM, Muhammad & Yeasin 2020), all on ``model.cam_target_layers()``. How faithful the maps
are: :mod:`classify.explain.faithfulness`; pictures of them: :mod:`classify.explain.overlays`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from classify.checkpoint import LoadedClassifier
from classify.explain.methods import CAM_METHODS, CAM_TARGETS, FAITHFULNESS_METRICS
from core.errors import UserError

DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class CamOptions:
    """How to compute the maps; the defaults are ``cli gradcam``'s."""

    method: str = "gradcam"
    target: str = "predicted"  # which class's map: the predicted one or the true one
    aug_smooth: bool = False  # test-time augmentation (flip, brightness) averaged: ~6x slower
    eigen_smooth: bool = False  # first principal component of the weighted activations
    batch_size: int = DEFAULT_BATCH_SIZE  # images per pass; Score-CAM: channels per forward pass
    metric: str = "road"
    seed: int = 0


def check_options(options: CamOptions) -> None:
    if options.method not in CAM_METHODS:
        raise UserError(f"--cam-method {options.method!r}: choose one of {', '.join(CAM_METHODS)}")
    if options.metric not in FAITHFULNESS_METRICS:
        raise UserError(
            f"--metric {options.metric!r}: choose one of {', '.join(FAITHFULNESS_METRICS)}"
        )
    if options.target not in CAM_TARGETS:
        raise UserError(f"--target {options.target!r}: choose one of {', '.join(CAM_TARGETS)}")
    if options.batch_size < 1:
        raise UserError(f"--batch-size {options.batch_size}: must be at least 1")


def make_cam(loaded: LoadedClassifier, method: str, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """A pytorch_grad_cam object for ``method`` on the model's CAM target layers."""
    import pytorch_grad_cam

    if method not in CAM_METHODS:
        raise UserError(f"--cam-method {method!r}: choose one of {', '.join(CAM_METHODS)}")
    cls = getattr(pytorch_grad_cam, CAM_METHODS[method].class_name)
    model = loaded.model
    cam = cls(
        model=model,
        target_layers=model.cam_target_layers(),
        reshape_transform=getattr(model, "cam_reshape_transform", None),
    )
    if method == "scorecam":
        cam.batch_size = batch_size  # masked copies of one image per forward pass
    return cam


def class_targets(
    probabilities: torch.Tensor, labels: Sequence[int] | None, target: str
) -> list[int]:
    """The class each map explains: the predicted class, or the true label."""
    if target == "true":
        if labels is None:
            raise UserError(
                "--target true needs true labels, which image files lack; use --target predicted"
            )
        return [int(y) for y in labels]
    return probabilities.argmax(dim=1).tolist()


def compute_cams(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    targets: Sequence[int],
    options: CamOptions = CamOptions(),
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Maps for ``targets`` as float32 N x H x W in [0, 1] (image resolution)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    check_options(options)
    # Score-CAM expands each image into one masked copy per channel at once: go image by image.
    per_call = 1 if options.method == "scorecam" else options.batch_size
    cam = make_cam(loaded, options.method, options.batch_size)
    maps = []
    try:
        for start in range(0, images_uint8.shape[0], per_call):
            batch = images_uint8[start : start + per_call]
            x = loaded.model_input(batch)
            wanted = [ClassifierOutputTarget(int(t)) for t in targets[start : start + per_call]]
            # Not inside `with cam:`: BaseCAM.__exit__ swallows IndexError.
            out = cam(
                input_tensor=x,
                targets=wanted,
                aug_smooth=options.aug_smooth,
                eigen_smooth=options.eigen_smooth,
            )
            maps.append(np.nan_to_num(np.asarray(out, dtype=np.float32), nan=0.0))
            if progress:
                progress(batch.shape[0])
    finally:
        cam.activations_and_grads.release()
        loaded.model.zero_grad(set_to_none=True)
    result = np.concatenate(maps) if maps else np.zeros((0, *images_uint8.shape[-2:]), np.float32)
    return np.clip(result, 0.0, 1.0)
