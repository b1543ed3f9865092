"""The comparison report's figures, written as PNGs into the report folder: training curves,
confusion matrices, the seeds plot, Grad-CAM of both models on the same test images, and a grid
of each synthetic set's images. Returns the file names (and the Grad-CAM numbers) for report.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from study.compare.config import CompareConfig
from study.compare.runs import RunResult, side_label
from study.compare.synthetic import SyntheticEntry, synthetic_sample_files

if TYPE_CHECKING:
    from study.compare.cams import CamComparison


def draw_figures(
    cfg: CompareConfig,
    out: Path,
    side_a: Sequence[RunResult],
    side_b: Sequence[RunResult],
    numbers: dict[str, Any],
    synthetic: Sequence[SyntheticEntry],
    device: Any,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Write the PNGs; returns ``{figure key: file name}`` and the Grad-CAM numbers (or None)."""
    a, b = side_a[0], side_b[0]
    figures: dict[str, str] = {}
    if a.history or b.history:
        figures["curves"] = _draw_curves(out, a, b)
    figures["confusion"] = _draw_confusion(out, a, b, numbers)
    if len(side_a) > 1 or len(side_b) > 1:
        figures["seeds"] = _draw_seeds(out, side_a, side_b, numbers)
    cam = None
    if cfg.cam_per_class > 0:
        cam = draw_cams(cfg, out, a, b, device)
        figures["cam"] = cam.pop("figure")
    figures.update(_draw_synthetic(cfg, out, numbers["class_names"], synthetic))
    return figures, cam


def _draw_curves(out: Path, a: RunResult, b: RunResult) -> str:
    from classify.evaluation.figures import curves_figure, save_figure

    histories = {f"A {a.name}": a.history, f"B {b.name}": b.history}
    save_figure(
        curves_figure(
            {k: v for k, v in histories.items() if v}, title=f"A: {a.name} vs B: {b.name}"
        ),
        out / "curves.png",
    )
    return "curves.png"


def _draw_confusion(out: Path, a: RunResult, b: RunResult, numbers: dict[str, Any]) -> str:
    from classify.evaluation.figures import save_figure
    from study.report.figures import confusion_comparison_figure

    ra, rb = numbers["runs"]["A"][0], numbers["runs"]["B"][0]
    save_figure(
        confusion_comparison_figure(
            ra["confusion"], rb["confusion"], numbers["class_names"], a.name, b.name
        ),
        out / "confusion.png",
    )
    return "confusion.png"


def _draw_seeds(
    out: Path,
    side_a: Sequence[RunResult],
    side_b: Sequence[RunResult],
    numbers: dict[str, Any],
) -> str:
    from classify.evaluation.figures import save_figure
    from study.report.figures import seeds_figure

    values = {
        key: {side: numbers["seeds"][side][key]["values"] for side in ("A", "B")}
        for key in ("accuracy", "macro_f1")
    }
    labels = [
        _seeds_label(side, [r.name for r in runs]) for side, runs in (("A", side_a), ("B", side_b))
    ]
    save_figure(seeds_figure(values, labels), out / "seeds.png")
    return "seeds.png"


def _seeds_label(side: str, names: Sequence[str]) -> str:
    """The side's tick label: its runs (or the first and a count) and how many there are."""
    listed = ", ".join(names)
    count = f"({len(names)} run{'' if len(names) == 1 else 's'})"
    return f"{side}: {listed if len(listed) <= 28 else side_label(names)}\n{count}"


def _draw_synthetic(
    cfg: CompareConfig, out: Path, class_names: Sequence[str], synthetic: Sequence[SyntheticEntry]
) -> dict[str, str]:
    """A grid of seeded sample images of each synthetic set still on disk."""
    from classify.evaluation.figures import save_figure
    from study.report.figures import image_grid_figure

    figures: dict[str, str] = {}
    for index, entry in enumerate(synthetic):
        if entry.folder is None:
            continue
        files = synthetic_sample_files(entry.folder, class_names, cfg.synthetic_per_class, cfg.seed)
        if files:
            images = {name: [_read_rgb(p) for p in paths] for name, paths in files.items()}
            name = f"synthetic_{index}.png"
            save_figure(
                image_grid_figure(images, f"{entry.folder.name} (used by {entry.run})"), out / name
            )
            figures[f"synthetic_{index}"] = name
    return figures


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def draw_cams(
    cfg: CompareConfig, out: Path, a: RunResult, b: RunResult, device: Any
) -> dict[str, Any]:
    """Grad-CAM of A and B on the same seeded test images: the figure, and its numbers."""
    from classify.evaluation.figures import save_figure
    from core.progress import make_progress
    from study.compare.cams import cam_comparison, chosen_files, view_labels
    from study.report.figures import cam_comparison_figure

    rows = chosen_files(a, cfg.cam_per_class, cfg.seed)
    files = [a.predictions.files[i] for i in rows]
    with make_progress(transient=True) as bar:
        task = bar.add_task(cfg.cam_method, total=2 * len(files), info="A and B")
        result = cam_comparison(
            [a, b],
            files,
            method=cfg.cam_method,
            which=cfg.checkpoint,
            device=device,
            seed=cfg.seed,
            progress=lambda n: bar.advance(task, n),
        )
    name = f"gradcam_{cfg.cam_method}.png"
    labels = view_labels(result, [f"A: {a.name}", f"B: {b.name}"])
    save_figure(cam_comparison_figure(result.rows, labels), out / name)
    return {"figure": name, **_cam_numbers(cfg.cam_method, result, files, a, b)}


def _cam_numbers(
    method: str, result: CamComparison, files: list[str], a: RunResult, b: RunResult
) -> dict[str, Any]:
    """The report.json entry of a CamComparison: faithfulness of both sides (these images, the
    rollout of a ViT, and what ``cli gradcam`` stored), and each side's predictions."""
    faith = {
        side: {**entry, "run": run.name}
        for side, entry, run in zip(("A", "B"), result.faithfulness, (a, b), strict=True)
    }
    attention = {
        side: {**entry, "run": run.name}
        for side, entry, run in zip(("A", "B"), result.attention, (a, b), strict=True)
        if entry
    }
    stored = {}
    for side, run in (("A", a), ("B", b)):
        entry = (run.metrics.get("cam") or {}).get(method)
        if isinstance(entry, dict):
            stored[side] = {**entry, "run": run.name}
    first_view = {v.run: k for k, v in reversed(list(enumerate(result.views)))}
    return {
        "method": method,
        "files": files,
        "faithfulness": faith,
        "attention": attention,
        "stored": stored,
        "predicted": {
            "A": [r.predicted[first_view[0]] for r in result.rows],
            "B": [r.predicted[first_view[1]] for r in result.rows],
        },
    }
