"""A learning curve: the whole study at several real-data sizes, and accuracy against real images
per class for every arm of ``--arms`` (with its delta against ``real``), as JSON and a PNG.
With a budget grid (``--epochs 12,24,48``, :mod:`study.pipeline.budgets`) each size is a grid and
each arm's point is its run at the budget chosen on validation accuracy.

Each size is one ordinary ``cli pipeline`` study (its own runs, GAN, synthetic set and report), so
finished cells are skipped on a re-run exactly as a single study's steps are. The GAN of a size is
trained on that size's real subset only, never on more real data than its classifiers saw. The
embedded footwear set is written per size (``data/footwear-N``: seeded, nested subsets of the same
Fashion-MNIST images); a user's dataset is subset into ``<data_dir>/<name>-N`` (hard links where
the file system allows, copies otherwise; the user's folder is only read), with the test split
whole and the training split cut to the first N images per class of a seeded permutation, so the
smaller subsets are nested in the larger ones.

Bands (Cumming & Finch 2005 style: an interval of the mean, stated): with several seeds, the 95%
t-interval of the mean test accuracy over seeds (seed-to-seed variation); with one seed, the Wilson
95% interval of the test accuracy over the test images (test-sampling variation only).

Under torchrun with several processes every rank runs each study (:mod:`study.pipeline.runner`);
rank 0 alone writes the subsets, the figure and the JSON, and every rank returns its curve.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.data import scan_dataset
from core.distributed import DistConfig
from core.errors import UserError
from core.io import read_json, write_json
from core.ranks import main_only
from study.pipeline.config import MISSING_DATA, PipelineConfig

SUBSET_SEED = 0


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"50"`` or ``"10,25,50"`` -> sorted distinct sizes; a one-line error otherwise."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(
            f"--train-per-class {text!r}: give images per class, e.g. 240 or 25,50,240"
        ) from None
    if not sizes or sizes[0] < 2:
        raise UserError(f"--train-per-class {text!r}: every size must be at least 2")
    return tuple(sizes)


def subset_dataset(source: Path, out: Path, per_class: int, seed: int = SUBSET_SEED) -> Path:
    """``out`` holding ``source``'s test split and ``per_class`` training images per class (a
    seeded choice, nested across sizes); kept as is when already complete for these settings."""
    index = scan_dataset(source)
    marker = out / ".subset.json"
    settings = {"source": str(source.resolve()), "per_class": per_class, "seed": seed}
    if marker.is_file():
        if read_json(marker) == settings:
            return out
        raise UserError(f"{out}: holds another subset; remove it or choose another --data-dir")
    by_class: dict[int, list[Path]] = {}
    for sample in index.train:
        by_class.setdefault(sample.label, []).append(Path(sample.path))
    short = [index.class_names[c] for c, files in by_class.items() if len(files) < per_class]
    if short:
        raise UserError(
            f"--train-per-class {per_class}: {source} has fewer training images in "
            f"{', '.join(short)}; use a smaller size"
        )
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for label, files in sorted(by_class.items()):
        chosen = [files[i] for i in sorted(rng.permutation(len(files))[:per_class])]
        _link_all(chosen, tmp / "train" / index.class_names[label])
    for sample in index.test:
        _link_all([Path(sample.path)], tmp / "test" / index.class_names[sample.label])
    write_json(tmp / ".subset.json", settings)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _link_all(files: Sequence[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = folder / path.name
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def size_config(cfg: PipelineConfig, per_class: int) -> PipelineConfig:
    """The single study of one curve point."""
    if cfg.data is None:
        return replace(cfg, train_per_class=per_class)
    source = Path(cfg.data)
    if not source.is_dir():
        raise UserError(f"--data {source}: {MISSING_DATA}")
    out = Path(cfg.data_dir) / f"{source.name}-{per_class}"
    return replace(cfg, data=str(subset_dataset(source, out, per_class)))


def run_learning_curve(
    cfg: PipelineConfig,
    sizes: Sequence[int],
    run_study: Callable[[PipelineConfig], dict[str, Any]] | None = None,
    dist: DistConfig | None = None,
) -> dict[str, Any]:
    """One study per size, then the curve (written to ``<runs>/<name>-learning-curve.json`` and
    ``<reports>/<name>-learning-curve.png``); returns the curve with each size's study summary."""
    from core.device import join_group

    if run_study is None:
        from study.pipeline.runner import run_pipeline

        run_study = lambda c: run_pipeline(c, dist)  # noqa: E731
    join_group(cfg.device)  # under torchrun: before rank 0 writes the first subset
    name = Path(cfg.data).name if cfg.data else "footwear"  # the embedded set's folder name
    studies = {n: run_study(main_only(lambda n=n: size_config(cfg, n))) for n in sizes}
    return main_only(lambda: _write_curve(cfg, name, sizes, studies))


def _write_curve(
    cfg: PipelineConfig, name: str, sizes: Sequence[int], studies: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    curve = {
        "data": cfg.data or name,
        "seeds": cfg.seeds,
        "sizes": list(sizes),
        "band": "95% t-interval over seeds" if cfg.seeds > 1 else "95% Wilson over test images",
        "points": {str(n): curve_point(study, cfg.seeds) for n, study in studies.items()},
        "studies": {str(n): study["report"] for n, study in studies.items()},
    }
    figure = Path(cfg.reports_dir) / f"{name}-learning-curve.png"
    draw_curve(curve, figure)
    curve["figure"] = str(figure)
    write_json(Path(cfg.runs_dir) / f"{name}-learning-curve.json", curve)
    return curve


def curve_point(study: dict[str, Any], seeds: int) -> dict[str, Any]:
    """Every arm's mean test accuracy and band at one size, and (but ``real``) its delta against
    ``real``: the arms table's headline (over seeds and test images, Holm p; with one seed the
    test-only interval, ``source`` says which)."""
    from study.pipeline.arms import headline

    table = study["arms"]
    n_test = table["n_test"]
    point: dict[str, Any] = {}
    for arm, row in table["arms"].items():
        values = row["accuracy"]
        mean = float(np.mean(values))
        low, high = mean_interval(values) if seeds > 1 else wilson(mean, n_test)
        point[arm] = {"mean": mean, "low": low, "high": high, "values": values}
        delta = headline(row)
        if delta:
            keys = ("delta", "low", "high", "p_holm", "source")
            point[arm]["delta"] = {k: delta.get(k) for k in keys}
        if "epochs" in row:  # a budget grid's choice for this arm
            point[arm]["epochs"] = row["epochs"]
    return point


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean of ``values`` (two or more), clipped to [0, 1]; with two
    seeds t is 12.7, so the band is wide: it says how little two seeds pin down."""
    from study.stats import t_interval

    low, high = t_interval(list(values))
    return max(0.0, low), min(1.0, high)  # an accuracy stays in [0, 1]


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% score interval of a proportion ``p`` observed over ``n`` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def curve_arms(curve: dict[str, Any]) -> list[str]:
    """The arms of the curve, in the study's order (every size has them all)."""
    return list(curve["points"][str(curve["sizes"][0])])


def draw_curve(curve: dict[str, Any], path: Path) -> None:
    """Accuracy vs real training images per class, one line and band per arm (log x axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from study.report.figures import ARM_MARKERS

    sizes = curve["sizes"]
    arms = curve_arms(curve)
    longest = max(len(arm) for arm in arms)
    fig, ax = plt.subplots(figsize=(6.4 + min(0.065 * longest, 4.0), 4.2), dpi=120)
    for index, arm in enumerate(arms):
        colour, marker = f"C{index % 10}", ARM_MARKERS[index % len(ARM_MARKERS)]
        pts = [curve["points"][str(n)][arm] for n in sizes]
        ax.plot(sizes, [100 * p["mean"] for p in pts], "-", marker=marker, color=colour,
                markerfacecolor="none", label=arm)  # fmt: skip
        ax.fill_between(sizes, [100 * p["low"] for p in pts], [100 * p["high"] for p in pts],
                        color=colour, alpha=0.12, linewidth=0)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("real training images per class")
    ax.set_ylabel("test accuracy (%)")
    title = f"{curve['data']}: {curve['seeds']} seed(s); band: {curve['band']}"
    if any("epochs" in p for point in curve["points"].values() for p in point.values()):
        title += "\neach arm at its budget chosen on validation accuracy (--epochs grid)"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
