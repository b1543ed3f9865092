"""Class activation maps of a trained classifier (pytorch-grad-cam), their overlays, and a number
for how faithful they are.

Methods come from :data:`classify.explain.methods.CAM_METHODS` (Grad-CAM, Selvaraju et al. 2017;
Grad-CAM++, Chattopadhay et al. 2018; HiResCAM, Draelos & Carin 2020; Score-CAM, Wang et al. 2020;
Eigen-CAM, Muhammad & Yeasin 2020), all on ``model.cam_target_layers()``. Pictures alone flatter a
method, so :func:`cam_faithfulness` scores the maps with a perturbation metric from
``pytorch_grad_cam.metrics`` (ROAD, Rong et al. 2022, by default): does removing what the map calls
relevant actually lower the model's confidence?
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from classify.checkpoint import LoadedClassifier
from classify.evaluation.figures import CamTile, cam_grid
from classify.explain.methods import CAM_METHODS, CAM_TARGETS, FAITHFULNESS_METRICS
from core.errors import UserError

DISPLAY_PX = 128  # tiles are upscaled (by an integer factor) to at least this many pixels
DEFAULT_BATCH_SIZE = 16
ROAD_PERCENTILES = (20, 40, 60, 80)


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
        raise UserError(f"--method {options.method!r}: choose one of {', '.join(CAM_METHODS)}")
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
        raise UserError(f"--method {method!r}: choose one of {', '.join(CAM_METHODS)}")
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


# --- pictures --------------------------------------------------------------------------------


def display_scale(size: int, display_px: int = DISPLAY_PX) -> int:
    """Integer upscale factor so a ``size``-pixel tile shows at >= ``display_px`` pixels."""
    return max(1, math.ceil(display_px / size))


def overlay(
    image_uint8: torch.Tensor, cam: np.ndarray, display_px: int = DISPLAY_PX
) -> tuple[np.ndarray, np.ndarray]:
    """(upscaled image, upscaled CAM overlay) as H x W x 3 uint8. The image is enlarged by pixel
    repetition (its real pixels), the map bilinearly (it is a smooth field anyway)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    scale = display_scale(image_uint8.shape[-1], display_px)
    img = image_uint8.permute(1, 2, 0).cpu().numpy()
    big = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    cam_big = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(cam))[None, None].float(),
        size=big.shape[:2],
        mode="bilinear",
        align_corners=False,
    )[0, 0]
    cam_big = cam_big.clamp(0, 1).numpy()
    # show_cam_on_image refuses images with a maximum above 1: pass floats in [0, 1].
    blended = show_cam_on_image(
        big.astype(np.float32) / 255.0, cam_big, use_rgb=True, image_weight=0.5
    )
    return big, blended


def select_per_class(
    labels: Sequence[int], num_classes: int, per_class: int, seed: int
) -> list[list[int]]:
    """Per class, ``per_class`` seeded-random indices (all of them when the class has fewer)."""
    if per_class < 1:
        raise UserError(f"--per-class {per_class}: must be at least 1")
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):
        members = torch.nonzero(labels_t == label).flatten()
        order = torch.randperm(members.numel(), generator=generator)
        chosen.append(sorted(members[order[:per_class]].tolist()))
    return chosen


def cam_tiles(
    class_names: Sequence[str],
    images_uint8: torch.Tensor,
    cams: np.ndarray,
    probabilities: torch.Tensor,
    labels: Sequence[int] | None,
    rows: Sequence[Sequence[int]],
    names: Sequence[str] | None,
) -> list[list[CamTile]]:
    """Grid rows of (image, overlay) tiles captioned with the true and the predicted class."""
    predicted = probabilities.argmax(dim=1).tolist()
    tiles = []
    for row in rows:
        tile_row = []
        for i in row:
            big, blended = overlay(images_uint8[i], cams[i])
            tile_row.append(
                CamTile(
                    image=big,
                    overlay=blended,
                    true=class_names[labels[i]] if labels is not None else None,
                    predicted=class_names[predicted[i]],
                    confidence=float(probabilities[i, predicted[i]]),
                    name=names[i] if names is not None else "",
                )
            )
        tiles.append(tile_row)
    return tiles


@dataclass
class CamReport:
    """What ``cli gradcam`` produced."""

    path: Path
    cams: np.ndarray
    probabilities: torch.Tensor
    targets: list[int]
    faithfulness: dict[str, Any]
    tiles: list[list[CamTile]] = field(default_factory=list)


def render_cams(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    labels: Sequence[int] | None,
    rows: Sequence[Sequence[int]],
    row_labels: Sequence[str] | None,
    out: Path,
    options: CamOptions = CamOptions(),
    names: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> CamReport:
    """Compute maps and faithfulness for ``images_uint8`` and write the grid: ``rows`` lists the
    image indices of each grid row."""
    check_options(options)
    probs = loaded.predict_proba(images_uint8)
    targets = class_targets(probs, labels, options.target)
    cams = compute_cams(loaded, images_uint8, targets, options, progress)
    faith = cam_faithfulness(
        loaded, images_uint8, labels, options.method, options=options, cams=cams
    )
    tiles = cam_tiles(loaded.class_names, images_uint8, cams, probs, labels, rows, names)
    smooth = "".join(
        [
            ", aug-smooth" if options.aug_smooth else "",
            ", eigen-smooth" if options.eigen_smooth else "",
        ]
    )
    title = (
        f"{loaded.name}: {options.method}{smooth} on {loaded.model_config.name} "
        f"({loaded.which}.pt, epoch {loaded.epoch}), map of the {options.target} class\n"
        f"faithfulness {faith['metric']} = {faith['value']:.3f} "
        f"over {faith['n_images']} images (higher is better)"
    )
    cam_grid(tiles, out, row_labels=row_labels, title=title)
    return CamReport(out, cams, probs, targets, faith, tiles)


def test_images_per_class(
    loaded: LoadedClassifier,
    per_class: int,
    seed: int = 0,
    workers: int = 0,
    data: str | Path | None = None,
) -> tuple[torch.Tensor, list[int], list[list[int]], list[str], list[str]]:
    """``per_class`` seeded-random test images of each class of ``loaded``'s dataset:
    (uint8 images, labels, grid rows of image indices, row labels, file names)."""
    from classify.evaluation.evaluate import check_class_names, dataset_root
    from core.data import load_samples, scan_dataset, warn_skipped

    root = dataset_root(loaded, data)
    index = scan_dataset(root)
    check_class_names(index.class_names, loaded.class_names, root)
    chosen = select_per_class(
        [s.label for s in index.test], len(index.class_names), per_class, seed
    )
    samples = [index.test[i] for row in chosen for i in row]
    tensors = load_samples(
        samples,
        index.class_names,
        loaded.train_config.image_size,
        resize_mode=loaded.train_config.resize_mode,
        workers=workers,
    )
    warn_skipped(tensors)
    labels = tensors.labels.tolist()
    rows = [[i for i, y in enumerate(labels) if y == c] for c in range(len(index.class_names))]
    names = [Path(p).name for p in tensors.paths]
    return tensors.images, labels, rows, list(index.class_names), names


def gradcam_run(
    loaded: LoadedClassifier,
    options: CamOptions = CamOptions(),
    per_class: int = 4,
    *,
    workers: int = 0,
    data: str | Path | None = None,
    out: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> CamReport:
    """The grid of ``per_class`` test images per class to ``RUN/eval/gradcam_<method>.png`` and
    the faithfulness score into ``RUN/eval/metrics.json`` (under "cam" -> method)."""
    from classify.evaluation.evaluate import eval_dir, update_metrics

    batch, labels, rows, row_labels, names = test_images_per_class(
        loaded, per_class, options.seed, workers, data
    )
    path = out or eval_dir(loaded.run_dir) / f"gradcam_{options.method}.png"
    report = render_cams(
        loaded, batch, labels, rows, row_labels, path, options, names, progress=progress
    )
    update_metrics(loaded.run_dir, {"cam": {options.method: report.faithfulness}})
    return report
