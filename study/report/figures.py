"""Figures of the comparison report. Curves reuse :func:`classify.evaluation.figures.curves_figure`; the
figures here put two models side by side. Same conventions as :mod:`classify.evaluation.figures`: plain data in,
a matplotlib ``Figure`` out, built on an Agg canvas, never through ``pyplot``."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from classify.evaluation.figures import CORRECT_COLOUR, DPI, UNKNOWN_COLOUR, WRONG_COLOUR
from classify.evaluation.metrics import row_normalised

SIDE_COLOURS = ("C0", "C1")
TITLE_CHARS = 20  # characters of a column title per line (a 128 px tile at 8 pt)
TICK_CHARS = 18  # characters of a seeds-figure tick label per line (two per 4.2-inch panel)
METRIC_TITLES = {"accuracy": "test accuracy", "macro_f1": "macro-F1"}
ARM_MARKERS = "os^Dv<>ph*"  # one per arm (hollow), so arms on the same point stay apart


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _matrix_panel(
    ax: Any, fig: Figure, counts: np.ndarray, names: Sequence[str], title: str
) -> None:
    shares = row_normalised(counts)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("share of the true class")
    n = len(names)
    for i in range(n):
        for j in range(n):
            colour = "white" if shares[i, j] > 0.55 else "black"
            text = f"{counts[i, j]}" if n > 8 else f"{counts[i, j]}\n{100 * shares[i, j]:.1f}%"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8 if n > 8 else 9)
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else 0.0
    ax.set_title(f"{title}\naccuracy {100 * accuracy:.1f}%", fontsize=10)


def _difference_panel(ax: Any, fig: Figure, a: np.ndarray, b: np.ndarray, n: int) -> None:
    """Colour = change in row share (percentage points), so a diagonal gain and the off-diagonal
    losses it comes from read together; text = change in counts."""
    diff = b - a
    share_diff = 100.0 * (row_normalised(b) - row_normalised(a))
    limit = max(1.0, float(np.abs(share_diff).max()))
    image = ax.imshow(share_diff, cmap="RdBu", norm=TwoSlopeNorm(0.0, -limit, limit))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("row share change (points)")
    for i in range(n):
        for j in range(n):
            strong = abs(share_diff[i, j]) > 0.6 * limit
            text = f"{diff[i, j]:+d}" if n > 8 else f"{diff[i, j]:+d}\n{share_diff[i, j]:+.1f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                color="white" if strong else "black",
                fontsize=8 if n > 8 else 9,
            )
    ax.set_title("B - A\n(diagonal +: B right more often)", fontsize=10)


def confusion_comparison_figure(
    matrix_a: np.ndarray | Sequence[Sequence[int]],
    matrix_b: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    label_a: str,
    label_b: str,
) -> Figure:
    """A's and B's confusion matrices (counts, row shares) and their difference B - A."""
    a = np.asarray(matrix_a, dtype=np.int64)
    b = np.asarray(matrix_b, dtype=np.int64)
    n = len(class_names)
    longest = max((len(c) for c in class_names), default=1)
    side = max(3.0, 0.8 * n)
    fig = Figure(figsize=(3 * (side + 1.3), side + 1.2 + 0.06 * longest))
    axes = fig.subplots(1, 3)
    _matrix_panel(axes[0], fig, a, class_names, f"A: {label_a}")
    _matrix_panel(axes[1], fig, b, class_names, f"B: {label_b}")
    _difference_panel(axes[2], fig, a, b, n)
    rotate = longest > 6
    for k, ax in enumerate(axes):
        ax.set_xticks(
            range(n),
            labels=list(class_names),
            rotation=30 if rotate else 0,
            ha="right" if rotate else "center",
            fontsize=8,
        )
        ax.set_yticks(range(n), labels=list(class_names) if k == 0 else [""] * n, fontsize=8)
        ax.set_xlabel("predicted class")
    axes[0].set_ylabel("true class")
    fig.tight_layout()
    return fig


def cam_comparison_figure(
    rows: Sequence[Any], labels: Sequence[str], title: str = "", groups: int | None = None
) -> Figure:
    """Rows = test images; columns = the image, then each model's map of its predicted class.

    ``rows`` are :class:`study.compare.cams.CamRow`-like objects (``image``, ``overlays``, ``true``,
    ``predicted``, ``confidence``, ``name``); the caption under a map (the model's predicted class
    and its probability) is green when that model is right, red when wrong, grey when the true
    class is unknown (``true`` None: a photo). Long lists are wrapped into ``groups`` blocks side
    by side (default: two blocks above six images), read top to bottom, left block first.
    """
    groups = groups or (1 if len(rows) <= 6 else 2)
    per_group = max(1, math.ceil(len(rows) / groups))
    columns = 1 + len(labels)
    tile_in = max(rows[0].image.shape[0] if rows else 128, 128) / DPI
    fig = Figure(
        figsize=(
            groups * columns * (tile_in + 0.15) + 0.3 * groups,
            per_group * (tile_in + 0.5) + 0.6,
        ),
        layout="constrained",
    )
    subfigs = np.atleast_1d(fig.subfigures(1, groups, wspace=0.04))
    for g, subfig in enumerate(subfigs):
        chunk = rows[g * per_group : (g + 1) * per_group]
        axes = np.asarray(subfig.subplots(per_group, columns, squeeze=False))
        for ax in axes.ravel():
            _bare(ax)
        for k, label in enumerate(["image", *labels]):
            # Run names are long: wrap them (at hyphens too) to the tile's width.
            wrapped = "\n".join(textwrap.wrap(label, width=TITLE_CHARS, break_on_hyphens=True))
            axes[0, k].set_title(wrapped, fontsize=8, fontweight="bold")
        for r, row in enumerate(chunk):
            axes[r, 0].imshow(row.image, interpolation="nearest")
            known = row.true is not None  # a photo given by path has no true class
            axes[r, 0].set_xlabel(f"true: {row.true}\n{row.name}" if known else row.name,
                                  fontsize=8)  # fmt: skip
            for k in range(len(labels)):
                ax = axes[r, k + 1]
                ax.imshow(row.overlays[k], interpolation="nearest")
                right = row.predicted[k] == row.true
                colour = (CORRECT_COLOUR if right else WRONG_COLOUR) if known else UNKNOWN_COLOUR
                ax.set_xlabel(
                    f"{row.predicted[k]} {100 * row.confidence[k]:.0f}%",
                    fontsize=8,
                    fontweight="bold",
                    color=colour,
                )
        for r in range(len(chunk), per_group):
            for ax in axes[r]:
                ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def seeds_figure(
    values: Mapping[str, Mapping[str, Sequence[float]]], labels: Sequence[str]
) -> Figure:
    """One dot per run, mean ± sd bar per side, for each metric: ``values[metric][side]``."""
    # Run names are long: wrap each line (at hyphens too) so neighbouring labels never meet.
    ticks = ["\n".join(w for line in lab.splitlines() for w in textwrap.wrap(line, TICK_CHARS))
             for lab in labels]  # fmt: skip
    metrics = list(values)
    fig = Figure(figsize=(4.2 * len(metrics), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        for k, side in enumerate(values[metric]):
            ys = np.asarray(values[metric][side], dtype=np.float64)
            jitter = np.linspace(-0.08, 0.08, ys.size) if ys.size > 1 else np.zeros(1)
            colour = SIDE_COLOURS[k % 2]
            ax.scatter(k + jitter, ys, color=colour, zorder=3, s=28)
            if ys.size > 1:
                ax.errorbar(
                    k + 0.22,
                    ys.mean(),
                    yerr=ys.std(ddof=1),
                    fmt="s",
                    color=colour,
                    capsize=4,
                    markersize=5,
                )
        ax.set_xticks(range(len(labels)), labels=ticks, fontsize=9)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("runs per side (dots) and mean ± sd over seeds (squares)", fontsize=10)
    fig.tight_layout()
    return fig


def image_grid_figure(images: Mapping[str, Sequence[np.ndarray]], title: str = "") -> Figure:
    """Rows = classes, columns = images (H x W x 3 uint8), e.g. samples of a synthetic set."""
    names = list(images)
    n_rows = max(1, len(names))
    n_cols = max((len(v) for v in images.values()), default=1) or 1
    tile = 1.1
    fig = Figure(figsize=(n_cols * tile + 1.4, n_rows * tile + 0.6))
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    for r, name in enumerate(names):
        for c in range(n_cols):
            ax = axes[r, c]
            _bare(ax)
            if c < len(images[name]):
                ax.imshow(images[name][c], interpolation="nearest")
        axes[r, 0].set_ylabel(name, fontsize=10, fontweight="bold")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(h_pad=0.6, w_pad=0.3)
    return fig


def arm_confusions_figure(
    matrices: Mapping[str, Sequence[Sequence[int]]], class_names: Sequence[str], seeds: int = 1
) -> Figure:
    """One confusion matrix per arm (counts and row shares, as the comparison's), up to three
    panels a row; ``seeds``: how many runs each matrix sums."""
    n = len(class_names)
    columns = min(3, max(1, len(matrices)))
    rows = math.ceil(len(matrices) / columns)
    side = max(3.0, 0.8 * n)
    fig = Figure(figsize=(columns * (side + 1.6), rows * (side + 1.4)))
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False)).ravel()
    summed = f" (summed over {seeds} seeds)" if seeds > 1 else ""
    for ax, (arm, counts) in zip(axes, matrices.items(), strict=False):
        _matrix_panel(ax, fig, np.asarray(counts, dtype=np.int64), class_names,
                      textwrap.shorten(arm, 40, placeholder="…"))  # fmt: skip
        ax.set_xticks(range(n), labels=list(class_names), rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels=list(class_names), fontsize=8)
    for ax in axes[len(matrices) :]:
        ax.set_visible(False)
    fig.suptitle(f"confusion matrix of every arm{summed}: rows true, columns predicted",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    return fig


def arm_curves_figure(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    seeds: int = 1,
    main_epochs: int | None = None,
    losses: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
) -> Figure:
    """Validation accuracy per epoch, one line per arm (``curves[arm] = (epochs, accuracy)``,
    the mean over ``seeds``), and with ``losses`` a first panel of the training loss the same way;
    ``main_epochs``: a dotted line where real-only finetuning begins. Each arm has its own colour
    and hollow marker, so arms on the same point stay visible."""
    longest = max((len(arm) for arm in curves), default=4)
    panels = [(losses, "training loss (cross-entropy)")] if losses else []
    panels.append((curves, "validation accuracy"))
    fig = Figure(figsize=(6.5 * len(panels) + min(0.065 * longest, 4.0), 4.2))
    axes = np.asarray(fig.subplots(1, len(panels), squeeze=False)).ravel()
    over = f"mean over {seeds} seeds" if seeds > 1 else "one seed"
    for ax, (series, what) in zip(axes, panels, strict=True):
        for index, arm in enumerate(curves):
            if arm not in series:
                continue
            epochs, values = series[arm]
            ax.plot(epochs, values, "-" if index < 10 else "--", color=f"C{index % 10}",
                    marker=ARM_MARKERS[index % len(ARM_MARKERS)] if len(epochs) <= 40 else None,
                    markersize=6, markerfacecolor="none", label=arm)  # fmt: skip
        if main_epochs is not None:
            ax.axvline(main_epochs + 0.5, color="grey", linestyle=":", linewidth=1)
            ax.text(main_epochs + 0.6, 0.03, "real-only\nfinetuning", fontsize=8, color="grey",
                    transform=ax.get_xaxis_transform())  # fmt: skip
        ax.set_title(f"{what} per epoch, every arm ({over})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    low, high = axes[-1].get_ylim()  # zoomed to the curves: arms differ by a few points
    axes[-1].set_ylim(max(0.0, low), min(1.0, high) + 0.01)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig
