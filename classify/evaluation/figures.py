"""Figures shared by evaluation, explanations and the comparison report: confusion matrices,
training curves, Grad-CAM grids and a ViT's per-head attention.

Each ``*_figure`` function takes plain data and returns a matplotlib ``Figure``; each ``plot_*``
function also writes it as a PNG (atomically). Figures are built with the object-oriented API on
an Agg canvas, never through ``pyplot``, so no global figure state or GUI backend is involved.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from classify.evaluation.metrics import row_normalised
from core.io import atomic_write_bytes

DPI = 100
CORRECT_COLOUR = "#1a7f37"
WRONG_COLOUR = "#c62828"
UNKNOWN_COLOUR = "#333333"


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically to ``path``."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _bare_axes(axes: Iterable[Axes]) -> None:
    """No ticks and no frame: the tiles are pictures, not plots."""
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)


# --- confusion matrix -------------------------------------------------------------------------


def confusion_figure(
    matrix: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str], title: str = ""
) -> Figure:
    """Counts and row-normalised percentages in every cell; colour = row share (recall on the
    diagonal), so classes of different sizes read on one scale."""
    counts = np.asarray(matrix, dtype=np.int64)
    shares = row_normalised(counts)
    n = len(class_names)
    longest = max((len(name) for name in class_names), default=1)
    cell = 1.0 if n <= 6 else 0.75
    side = max(3.2, n * cell)
    fig = Figure(figsize=(side + 1.6 + 0.06 * longest, side + 0.9 + 0.06 * longest))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    colourbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colourbar.set_label("share of the true class")
    small = n > 8
    for i in range(n):
        for j in range(n):
            text = f"{counts[i, j]}" if small else f"{counts[i, j]}\n{100 * shares[i, j]:.1f}%"
            colour = "white" if shares[i, j] > 0.55 else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8 if small else 10)
    ax.set_xticks(
        range(n),
        labels=list(class_names),
        rotation=30 if longest > 6 else 0,
        ha="right" if longest > 6 else "center",
    )
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(counts.sum())
    correct = int(np.trace(counts))
    accuracy = correct / total if total else 0.0
    heading = f"{title}\n" if title else ""
    ax.set_title(f"{heading}accuracy {100 * accuracy:.1f}% ({correct}/{total})", fontsize=11)
    fig.tight_layout()
    return fig


def plot_confusion(
    matrix: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """Write the confusion matrix PNG (see :func:`confusion_figure`)."""
    return save_figure(confusion_figure(matrix, class_names, title), path)


# --- training curves --------------------------------------------------------------------------


def curves_figure(histories: Mapping[str, Sequence[Mapping[str, Any]]], title: str = "") -> Figure:
    """Two panels, loss and accuracy by epoch; train solid, validation dashed, one colour per run.

    ``histories`` maps a label (a run name) to its history records (``history.jsonl`` lines with
    ``epoch``, ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``); several runs overlay.
    """
    fig = Figure(figsize=(11, 4.2))
    ax_loss, ax_acc = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    several = len(histories) > 1
    for index, (label, records) in enumerate(histories.items()):
        colour = colours[index % len(colours)]
        epochs = [r["epoch"] for r in records]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            for split, style in (("train", "-"), ("val", "--")):
                values = [r.get(f"{split}_{key}") for r in records]
                if all(v is None for v in values):
                    continue
                ys = [math.nan if v is None else float(v) for v in values]
                name = f"{label} {split}" if several else split
                ax.plot(
                    epochs,
                    ys,
                    style,
                    color=colour,
                    marker="o" if len(epochs) <= 30 else None,
                    markersize=3,
                    label=name,
                )
    ax_loss.set_title("loss (cross-entropy)")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylim(0.0, 1.02)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]], path: Path, title: str = ""
) -> Path:
    """Write the loss/accuracy curves PNG (see :func:`curves_figure`)."""
    return save_figure(curves_figure(histories, title), path)


# --- Grad-CAM grid ----------------------------------------------------------------------------


@dataclass
class CamTile:
    """One grid cell: the (upscaled) image, its CAM overlay, and what the model said about it."""

    image: np.ndarray  # H x W x 3 uint8
    overlay: np.ndarray  # H x W x 3 uint8
    true: str | None  # None when unknown (an image passed by path)
    predicted: str
    confidence: float  # probability of the predicted class
    name: str = ""  # optional short file name shown under the pair


def cam_grid_figure(
    rows: Sequence[Sequence[CamTile]],
    row_labels: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """Rows of (image, overlay) pairs; the caption is green when the prediction is right, red when
    wrong, grey when the true label is unknown."""
    n_rows = len(rows)
    pairs = max((len(row) for row in rows), default=1) or 1
    tile_in = max(rows[0][0].image.shape[0] if rows and rows[0] else 128, 128) / DPI
    gap = 0.18  # a narrow empty column between pairs, so each (image, overlay) reads as one unit
    fig = Figure(
        figsize=(pairs * (2 * tile_in + gap + 0.3) + 0.6, n_rows * (tile_in + 0.75) + 0.6),
        layout="constrained",
    )
    ratios = ([1.0, 1.0, gap / tile_in] * pairs)[:-1]
    grid = fig.add_gridspec(n_rows, len(ratios), width_ratios=ratios)
    for r, row in enumerate(rows):
        for p in range(pairs):
            ax_img, ax_cam = fig.add_subplot(grid[r, 3 * p]), fig.add_subplot(grid[r, 3 * p + 1])
            if p == 0 and row_labels is not None and r < len(row_labels):
                ax_img.set_ylabel(row_labels[r], fontsize=11, fontweight="bold")
            _bare_axes((ax_img, ax_cam))
            if p >= len(row):
                continue
            tile = row[p]
            ax_img.imshow(tile.image, interpolation="nearest")
            ax_cam.imshow(tile.overlay, interpolation="nearest")
            if tile.true is None:
                colour = UNKNOWN_COLOUR
            else:
                colour = CORRECT_COLOUR if tile.true == tile.predicted else WRONG_COLOUR
            ax_img.set_title(f"true: {tile.true if tile.true is not None else '?'}", fontsize=9)
            ax_cam.set_title(
                f"pred: {tile.predicted} {100 * tile.confidence:.0f}%",
                fontsize=9,
                color=colour,
                fontweight="bold",
            )
            if tile.name:
                ax_img.set_xlabel(tile.name, fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def cam_grid(
    rows: Sequence[Sequence[CamTile]],
    path: Path,
    row_labels: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Write a Grad-CAM grid PNG (see :func:`cam_grid_figure`)."""
    return save_figure(cam_grid_figure(rows, row_labels, title), path)


# --- ViT attention ------------------------------------------------------------------------------


def _as_hwc(image_uint8: Any) -> np.ndarray:
    """A 3 x S x S tensor (or an S x S x 3 array, passed through) as S x S x 3."""
    if hasattr(image_uint8, "permute"):
        return np.asarray(image_uint8.permute(1, 2, 0).cpu())
    return image_uint8


def attention_heads_figure(
    image_uint8: Any,
    per_head: np.ndarray,
    fused: np.ndarray,
    patch_share: np.ndarray,
    title: str = "",
    fusion: str = "mean",
) -> Figure:
    """Rows = blocks, columns = heads then the fused map: the class token's attention over the
    patch grid (``per_head``: layers x heads x g x g; ``fused``: layers x g x g) drawn patch by
    patch over the image (column 0). Each tile is scaled to its own maximum; the caption says how
    much of the class token's attention goes to patches at all (the rest stays on itself)."""
    layers, heads = per_head.shape[:2]
    image = _as_hwc(image_uint8)
    size = image.shape[0]
    extent = (-0.5, image.shape[1] - 0.5, size - 0.5, -0.5)
    grey = image.mean(axis=2, keepdims=True).repeat(3, axis=2).astype(np.uint8)
    tile = 1.25
    fig = Figure(
        figsize=((heads + 2) * tile + 0.8, layers * (tile + 0.25) + 0.9), layout="constrained"
    )
    axes = np.asarray(fig.subplots(layers, heads + 2, squeeze=False))
    _bare_axes(axes.ravel())
    axes[0, 0].imshow(image, interpolation="nearest")
    axes[0, 0].set_title("image", fontsize=9, fontweight="bold")
    for r in range(1, layers):
        axes[r, 0].set_visible(False)
    for r in range(layers):
        for c in range(heads + 1):
            values = per_head[r, c] if c < heads else fused[r]
            share = patch_share[r, c] if c < heads else patch_share[r].mean()
            heading = (f"head {c + 1}" if c < heads else f"{fusion} of heads") if r == 0 else None
            _attention_tile(axes[r, c + 1], grey, values, extent, share, heading)
        axes[r, 1].set_ylabel(f"block {r + 1}", fontsize=9, fontweight="bold")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _attention_tile(
    ax: Axes,
    grey: np.ndarray,
    values: np.ndarray,
    extent: tuple[float, float, float, float],
    share: float,
    heading: str | None,
) -> None:
    """One head's (or the fused) map, scaled to its own maximum, over the greyed image."""
    peak = float(values.max()) or 1.0
    ax.imshow(grey, interpolation="nearest")
    ax.imshow(
        values / peak,
        cmap="jet",
        alpha=0.55,
        vmin=0,
        vmax=1,
        extent=extent,
        interpolation="nearest",
    )
    if heading is not None:
        ax.set_title(heading, fontsize=9, fontweight="bold")
    ax.set_xlabel(f"to patches {100 * share:.0f}%", fontsize=7)
