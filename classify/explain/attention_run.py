"""``cli attention``: a trained ViT's class-token attention on test images, as pictures and as
faithfulness numbers comparable with Grad-CAM's.

Three views, all from :mod:`classify.explain.vit_attention`:

* per layer x per head, the class token's attention over the patches for one image
  (``attention_heads_<file>.png``);
* the chosen layer's (default: last) head-fused class-token attention overlaid on each image
  (``attention_layer.png``);
* optionally, attention rollout (Abnar & Zuidema 2020) overlaid the same way
  (``attention_rollout.png``).

The two overlay views are scored with the same perturbation metric as Grad-CAM (ROAD by default,
:func:`classify.explain.faithfulness.faithfulness_scores`, explaining the predicted class), so
"where the ViT attends" and "where the gradients point" are compared by number as well as by eye.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.checkpoint import LoadedClassifier
from classify.names import HEAD_FUSIONS
from core.errors import UserError

DEFAULT_DISCARD_RATIO = 0.0  # Abnar & Zuidema's rollout; vit-explain's sharper recipe uses 0.9


@dataclass(frozen=True)
class AttentionOptions:
    """What ``cli attention`` computes; the defaults are the command's."""

    layer: int = -1  # the block whose class-token attention is overlaid (negative: from the end)
    head_fusion: str = "mean"  # how heads are combined: mean | max | min
    rollout: bool = True  # also attention rollout over every block (as `cli explain` does)
    discard_ratio: float = DEFAULT_DISCARD_RATIO
    metric: str = "road"
    seed: int = 0
    batch_size: int = 16


@dataclass
class AttentionMaps:
    """Attention of a ViT on N images."""

    attention: torch.Tensor  # float32 CPU, N x layers x heads x tokens x tokens
    probabilities: torch.Tensor  # N x classes
    grid: int  # patch tokens per side

    @property
    def predicted(self) -> list[int]:
        return self.probabilities.argmax(dim=1).tolist()


@dataclass
class AttentionReport:
    """What ``cli attention`` wrote and measured."""

    figures: list[Path]
    faithfulness: dict[str, dict[str, Any]]  # "layer" / "rollout" -> metrics.json entry
    maps: AttentionMaps
    views: dict[str, np.ndarray] = field(default_factory=dict)  # view -> N x S x S maps in [0, 1]


def require_vit(loaded: LoadedClassifier) -> None:
    """A one-line error when ``loaded`` has no attention modules to read."""
    from classify.explain.vit_attention import attention_modules

    if not attention_modules(loaded.model):
        raise UserError(
            f"run {loaded.name} is a {loaded.model_config.name}, which has no self-attention to "
            "show: `cli attention` reads vit-* runs; use `cli gradcam` for this one"
        )


def check_options(options: AttentionOptions, depth: int) -> None:
    from classify.explain.methods import FAITHFULNESS_METRICS
    from classify.explain.vit_attention import check_layer

    if options.head_fusion not in HEAD_FUSIONS:
        raise UserError(
            f"--head-fusion {options.head_fusion!r}: choose one of {', '.join(HEAD_FUSIONS)}"
        )
    if not 0.0 <= options.discard_ratio < 1.0:
        raise UserError(
            f"--discard-ratio {options.discard_ratio}: use a fraction in [0, 1), e.g. 0.9"
        )
    if options.metric not in FAITHFULNESS_METRICS:
        raise UserError(
            f"--metric {options.metric!r}: choose one of {', '.join(FAITHFULNESS_METRICS)}"
        )
    try:
        check_layer(options.layer, depth)
    except IndexError as error:
        raise UserError(f"--layer {options.layer}: {error}") from None


def compute_attention(
    loaded: LoadedClassifier, images_uint8: torch.Tensor, batch_size: int = 16
) -> AttentionMaps:
    """Per-layer, per-head attention weights and class probabilities of ``images_uint8``."""
    from classify.explain.vit_attention import record_attention

    require_vit(loaded)
    weights, probs = [], []
    for start in range(0, images_uint8.shape[0], batch_size):
        x = loaded.model_input(images_uint8[start : start + batch_size])
        logits, attention = record_attention(loaded.model, x)
        weights.append(attention.float().cpu())
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
    grid = int(loaded.model.grid)
    if not weights:
        raise UserError("no images to explain")
    return AttentionMaps(torch.cat(weights), torch.cat(probs), grid)


def view_maps(maps: AttentionMaps, options: AttentionOptions, image_size: int) -> dict[str, Any]:
    """``{"layer": N x S x S, "rollout": N x S x S}`` (rollout only when asked), in [0, 1] at the
    image resolution, like Grad-CAM maps."""
    from classify.explain.vit_attention import layer_map, rollout_map, to_unit_maps

    views = {
        "layer": layer_map(maps.attention, maps.grid, options.layer, options.head_fusion),
    }
    if options.rollout:
        views["rollout"] = rollout_map(
            maps.attention, maps.grid, options.head_fusion, options.discard_ratio
        )
    return {key: to_unit_maps(value, image_size).numpy() for key, value in views.items()}


def view_faithfulness(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    maps: AttentionMaps,
    views: dict[str, np.ndarray],
    options: AttentionOptions,
) -> dict[str, dict[str, Any]]:
    """Each view's faithfulness entry (for the predicted class, as Grad-CAM's default)."""
    from classify.explain.faithfulness import faithfulness_entry, faithfulness_scores

    depth = maps.attention.shape[1]
    out = {}
    for key, cams in views.items():
        scores = faithfulness_scores(
            loaded,
            images_uint8,
            cams.astype(np.float32),
            maps.predicted,
            options.metric,
            options.batch_size,
            options.seed,
        )
        details: dict[str, Any] = {"method": f"attention-{key}", "target": "predicted"}
        details["head_fusion"] = options.head_fusion
        if key == "layer":
            details["layer"] = options.layer % depth
        else:
            details["discard_ratio"] = options.discard_ratio
        out[key] = faithfulness_entry(loaded, scores, options.metric, **details, seed=options.seed)
    return out


def heads_image_indices(rows: Sequence[Sequence[int]], explicit_files: bool) -> list[int]:
    """Images that get a layers x heads grid: every given file, else the first image per class."""
    if explicit_files:
        return [i for row in rows for i in row]
    return [row[0] for row in rows if row]


def safe_stem(name: str) -> str:
    stem = Path(name).stem or "image"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)


def view_titles(options: AttentionOptions, depth: int) -> dict[str, str]:
    """What each overlay view shows, for its figure title."""
    layer_no = options.layer % depth + 1
    return {
        "layer": f"class-token attention of block {layer_no}/{depth} ({options.head_fusion} over "
        "heads)",
        "rollout": f"attention rollout ({options.head_fusion} over heads, discard ratio "
        f"{options.discard_ratio:g})",
    }


def attention_run(
    loaded: LoadedClassifier,
    images_uint8: torch.Tensor,
    labels: Sequence[int] | None,
    rows: Sequence[Sequence[int]],
    row_labels: Sequence[str] | None,
    names: Sequence[str],
    out_dir: Path,
    options: AttentionOptions = AttentionOptions(),
    *,
    explicit_files: bool = False,
    progress: Callable[[int], None] | None = None,
) -> AttentionReport:
    """Compute the maps, score them, write the PNGs into ``out_dir``."""
    from classify.evaluation.figures import cam_grid
    from classify.explain.methods import FAITHFULNESS_METRICS
    from classify.explain.overlays import cam_tiles

    require_vit(loaded)
    depth = len(loaded.model.encoder.layers)
    check_options(options, depth)
    maps = compute_attention(loaded, images_uint8, options.batch_size)
    if progress:
        progress(images_uint8.shape[0])
    views = view_maps(maps, options, loaded.image_size)
    faith = view_faithfulness(loaded, images_uint8, maps, views, options)
    figures = []
    label = FAITHFULNESS_METRICS[options.metric].label
    titles = view_titles(options, depth)
    for key, cams in views.items():
        entry = faith[key]
        path = out_dir / f"attention_{key}.png"
        tiles = cam_tiles(
            loaded.class_names, images_uint8, cams, maps.probabilities, labels, rows, names
        )
        title = (
            f"{loaded.name}: {titles[key]} on {loaded.model_config.name} "
            f"({loaded.source})\n"
            f"faithfulness {label} = {entry['value']:.3f} over {entry['n_images']} images "
            "(higher is better)"
        )
        figures.append(cam_grid(tiles, path, row_labels=row_labels, title=title))
    for i in heads_image_indices(rows, explicit_files):
        figures.append(
            write_heads_figure(loaded, maps, images_uint8, labels, names, i, out_dir, options)
        )
    return AttentionReport(figures, faith, maps, views)


def write_heads_figure(
    loaded: LoadedClassifier,
    maps: AttentionMaps,
    images_uint8: torch.Tensor,
    labels: Sequence[int] | None,
    names: Sequence[str],
    i: int,
    out_dir: Path,
    options: AttentionOptions,
) -> Path:
    """Image ``i``'s layers x heads grid (``attention_heads_<file>.png``)."""
    from classify.evaluation.figures import attention_heads_figure, save_figure
    from classify.explain.vit_attention import cls_to_patches, fuse_heads

    per_head = cls_to_patches(maps.attention[i], maps.grid)  # layers x heads x g x g
    fused = cls_to_patches(fuse_heads(maps.attention[i], options.head_fusion), maps.grid)
    share = maps.attention[i, :, :, 0, 1:].sum(dim=-1)  # layers x heads: mass on patches
    predicted = maps.predicted[i]
    caption = (
        f"true {loaded.class_names[labels[i]]}, " if labels is not None else ""
    ) + f"predicted {loaded.class_names[predicted]} {100 * maps.probabilities[i, predicted]:.0f}%"
    fig = attention_heads_figure(
        images_uint8[i],
        per_head.numpy(),
        fused.numpy(),
        share.numpy(),
        title=f"{loaded.name}: class-token attention per block and head, {names[i]}\n{caption}",
        fusion=options.head_fusion,
    )
    return save_figure(fig, out_dir / f"attention_heads_{safe_stem(names[i])}.png")
