"""The ``cli compare`` job: evaluate runs that need it, compute the numbers, draw the figures and
write report.json, report.md and report.html into one folder (every file written atomically)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.io import atomic_write_text, is_inside, write_json
from study.compare.runs import (
    CompareConfig,
    RunResult,
    SyntheticSet,
    compare_runs,
    default_out,
    ensure_evaluated,
    load_run,
    read_synthetic,
    side_label,
    synthetic_sample_files,
)

MIN_RESAMPLES = 100


def check_config(cfg: CompareConfig) -> None:
    from classify.explain.methods import CAM_METHODS

    if not cfg.a or not cfg.b:
        raise UserError("pass two runs (or two comma-separated lists of runs): `cli compare A B`")
    if cfg.cam_method not in CAM_METHODS:
        raise UserError(f"--cam-method {cfg.cam_method!r}: choose one of {', '.join(CAM_METHODS)}")
    if cfg.per_class < 0:
        raise UserError(f"--per-class {cfg.per_class}: must be >= 0 (0 skips the Grad-CAM grid)")
    if cfg.resamples < MIN_RESAMPLES:
        raise UserError(
            f"--resamples {cfg.resamples}: use at least {MIN_RESAMPLES} (10,000 gives "
            "a stable 95% interval)"
        )


def _unique(paths: Sequence[Path]) -> list[Path]:
    seen: dict[Path, Path] = {}
    for path in paths:
        seen.setdefault(path.resolve(), path)
    return list(seen.values())


def evaluate_if_needed(run_dirs: Sequence[Path], which: str, device: Any) -> dict[str, str]:
    """Evaluate every run whose eval/ is missing or older than its checkpoint; returns
    ``{run name: reason}`` for those evaluated."""
    from classify.checkpoint import checkpoint_path
    from classify.evaluation.evaluate import evaluate_run
    from core.progress import err_console

    def evaluate(run_dir: Path, which: str) -> Any:
        return evaluate_run(run_dir.name, which, runs_dir=run_dir.parent, device=device)

    done = {}
    for run_dir in _unique(run_dirs):
        reason = ensure_evaluated(run_dir, which, evaluate, checkpoint_path(run_dir, which))
        if reason is not None:
            err_console.print(f"evaluated {run_dir} ({reason})", highlight=False)
            done[run_dir.name] = reason
    return done


def _check_out(out: Path, runs: Sequence[RunResult]) -> None:
    for run in runs:
        root = run.dataset_root
        if root is not None and root.is_dir() and is_inside(out, root):
            raise UserError(
                f"--out {out}: inside the dataset folder {root}; reports never go into "
                "a dataset, pick another folder"
            )
        if is_inside(out, run.run_dir):
            raise UserError(
                f"--out {out}: inside the run folder {run.run_dir}; pick another folder"
            )


# --- figures ------------------------------------------------------------------------------------


def draw_figures(
    cfg: CompareConfig,
    out: Path,
    side_a: Sequence[RunResult],
    side_b: Sequence[RunResult],
    numbers: dict[str, Any],
    synthetic: Sequence[SyntheticSet],
    device: Any,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Write the PNGs; returns ``{figure key: file name}`` and the Grad-CAM numbers (or None)."""
    from classify.evaluation.figures import curves_figure, save_figure
    from study.report.figures import confusion_comparison_figure, image_grid_figure, seeds_figure

    a, b = side_a[0], side_b[0]
    figures: dict[str, str] = {}
    if a.history or b.history:
        histories = {f"A {a.name}": a.history, f"B {b.name}": b.history}
        save_figure(
            curves_figure(
                {k: v for k, v in histories.items() if v}, title=f"A: {a.name} vs B: {b.name}"
            ),
            out / "curves.png",
        )
        figures["curves"] = "curves.png"
    ra, rb = numbers["runs"]["A"][0], numbers["runs"]["B"][0]
    save_figure(
        confusion_comparison_figure(
            ra["confusion"], rb["confusion"], numbers["class_names"], a.name, b.name
        ),
        out / "confusion.png",
    )
    figures["confusion"] = "confusion.png"
    if len(side_a) > 1 or len(side_b) > 1:
        values = {
            key: {side: numbers["seeds"][side][key]["values"] for side in ("A", "B")}
            for key in ("accuracy", "macro_f1")
        }
        labels = [
            _seeds_label(side, [r.name for r in runs])
            for side, runs in (("A", side_a), ("B", side_b))
        ]
        save_figure(seeds_figure(values, labels), out / "seeds.png")
        figures["seeds"] = "seeds.png"
    cam = None
    if cfg.per_class > 0:
        cam = draw_cams(cfg, out, a, b, device)
        figures["cam"] = cam.pop("figure")
    for index, entry in enumerate(synthetic):
        if entry.folder is None:
            continue
        files = synthetic_sample_files(
            entry.folder, numbers["class_names"], cfg.synthetic_per_class, cfg.seed
        )
        if files:
            images = {name: [_read_rgb(p) for p in paths] for name, paths in files.items()}
            name = f"synthetic_{index}.png"
            save_figure(
                image_grid_figure(images, f"{entry.folder.name} (used by {entry.run})"), out / name
            )
            figures[f"synthetic_{index}"] = name
    return figures, cam


def _seeds_label(side: str, names: Sequence[str]) -> str:
    listed = ", ".join(names)
    return f"{side}: {listed if len(listed) <= 28 else side_label(names)}\n({len(names)} runs)"


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def draw_cams(
    cfg: CompareConfig, out: Path, a: RunResult, b: RunResult, device: Any
) -> dict[str, Any]:
    from classify.evaluation.figures import save_figure
    from core.progress import make_progress
    from study.compare.cams import cam_comparison, chosen_files, view_labels
    from study.report.figures import cam_comparison_figure

    rows = chosen_files(a, cfg.per_class, cfg.seed)
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
        entry = (run.metrics.get("cam") or {}).get(cfg.cam_method)
        if isinstance(entry, dict):
            stored[side] = {**entry, "run": run.name}
    first_view = {v.run: k for k, v in reversed(list(enumerate(result.views)))}
    return {
        "figure": name,
        "method": cfg.cam_method,
        "files": files,
        "faithfulness": faith,
        "attention": attention,
        "stored": stored,
        "predicted": {
            "A": [r.predicted[first_view[0]] for r in result.rows],
            "B": [r.predicted[first_view[1]] for r in result.rows],
        },
    }


# --- the job ------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import matplotlib
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
    }


def run_compare(cfg: CompareConfig) -> tuple[dict[str, Any], Path]:
    """Everything ``cli compare`` does; returns the report dictionary and the output folder."""
    from classify.checkpoint import resolve_run_dir
    from core.device import configure_cpu_threads, resolve_device
    from study.report.document import (
        build_blocks,
        render_html,
        render_markdown,
        report_meta,
        report_title,
    )

    check_config(cfg)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_cpu_threads()
    dirs_a = [resolve_run_dir(r, cfg.runs_dir) for r in cfg.a]
    dirs_b = [resolve_run_dir(r, cfg.runs_dir) for r in cfg.b]
    evaluated = evaluate_if_needed([*dirs_a, *dirs_b], cfg.checkpoint, device)
    side_a = [load_run(d) for d in dirs_a]
    side_b = [load_run(d) for d in dirs_b]
    numbers = compare_runs(side_a, side_b, resamples=cfg.resamples, seed=cfg.seed)
    out = (
        Path(cfg.out)
        if cfg.out
        else default_out([d.name for d in dirs_a], [d.name for d in dirs_b])
    )
    _check_out(out, [*side_a, *side_b])
    out.mkdir(parents=True, exist_ok=True)

    synthetic = _synthetic_sets([*side_a, *side_b])
    figures, cam = draw_figures(cfg, out, side_a, side_b, numbers, synthetic, device)
    report = {
        "format": "shoegan-compare/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "checkpoint": cfg.checkpoint,
            "cam_method": cfg.cam_method,
            "per_class": cfg.per_class,
            "seed": cfg.seed,
            "resamples": cfg.resamples,
            "runs_dir": str(cfg.runs_dir),
            "device": str(device),
        },
        "sides": {"A": [d.name for d in dirs_a], "B": [d.name for d in dirs_b]},
        **numbers,
        "cam": cam,
        "synthetic": [s.to_dict() for s in synthetic],
        "evaluated": evaluated,
        "figures": figures,
        "files": ["report.json", "report.md", "report.html", *figures.values()],
        "versions": _versions(),
    }
    write_json(out / "report.json", report)
    blocks = build_blocks(report)
    title, meta = report_title(report), report_meta(report)
    atomic_write_text(out / "report.md", render_markdown(title, blocks, meta))
    atomic_write_text(out / "report.html", render_html(title, blocks, out, meta))
    return report, out


def _synthetic_sets(runs: Sequence[RunResult]) -> list[SyntheticSet]:
    """The distinct synthetic sets the runs trained on (one entry per set, first run naming it)."""
    found: dict[tuple[str, str | None], SyntheticSet] = {}
    for run in runs:
        entry = read_synthetic(run)
        if entry is None:
            continue
        key = (
            str(entry.folder.resolve()) if entry.folder else str(entry.entry.get("path")),
            entry.entry.get("manifest_sha256"),
        )
        found.setdefault(key, entry)
    return list(found.values())
