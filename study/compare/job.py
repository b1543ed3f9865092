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
from core.io import atomic_write_text, write_json
from core.rundir import is_inside
from study.compare.config import CompareConfig
from study.compare.draw import draw_figures
from study.compare.numbers import compare_runs
from study.compare.runs import (
    RunResult,
    default_out,
    ensure_evaluated,
    load_run,
    pair_by_seed,
)
from study.compare.synthetic import SyntheticEntry, read_synthetic

MIN_RESAMPLES = 100


def check_config(cfg: CompareConfig) -> None:
    from classify.explain.methods import CAM_METHODS

    if not cfg.a or not cfg.b:
        raise UserError("pass two runs (or two comma-separated lists of runs): `cli compare A B`")
    if cfg.cam_method not in CAM_METHODS:
        raise UserError(f"--cam-method {cfg.cam_method!r}: choose one of {', '.join(CAM_METHODS)}")
    if cfg.cam_per_class < 0:
        raise UserError(
            f"--cam-per-class {cfg.cam_per_class}: must be >= 0 (0 skips the Grad-CAM grid)"
        )
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
    from classify.evaluation.evaluate import evaluate_run
    from core.progress import err_console
    from core.rundir import checkpoint_path

    def evaluate(run_dir: Path, which: str) -> Any:
        return evaluate_run(run_dir.name, which, runs_dir=run_dir.parent, device=device)

    unique = _unique(run_dirs)
    files = {run_dir: checkpoint_path(run_dir, which) for run_dir in unique}
    if len({path.resolve() for path in files.values()}) < len(files):
        raise UserError(
            f"--checkpoint {which}: one file for {len(files)} runs; give best, last or a file "
            "name that each run folder holds"
        )
    done = {}
    for run_dir in unique:
        reason = ensure_evaluated(run_dir, which, evaluate, files[run_dir])
        if reason is not None:
            err_console.print(f"evaluated {run_dir} ({reason})", highlight=False)
            done[run_dir.name] = reason
    return done


def check_out(out: Path, runs: Sequence[RunResult]) -> None:
    """UserError when ``out`` lies inside a run's dataset folder or inside a run folder."""
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
    from core.device import setup_device
    from core.rundir import resolve_run_dir

    check_config(cfg)
    device = setup_device(cfg.device)
    dirs_a = [resolve_run_dir(r, cfg.runs_dir) for r in cfg.a]
    dirs_b = [resolve_run_dir(r, cfg.runs_dir) for r in cfg.b]
    evaluated = evaluate_if_needed([*dirs_a, *dirs_b], cfg.checkpoint, device)
    side_a = [load_run(d) for d in dirs_a]
    side_b = [load_run(d) for d in dirs_b]
    # Seed order on both sides (A_s beside B_s): the pictures and tables of "the first pair" then
    # show two runs of one seed; a seed on one side only is a UserError naming the runs.
    matched = pair_by_seed(side_a, side_b)
    side_a, side_b = [a for a, _ in matched], [b for _, b in matched]
    numbers = compare_runs(
        side_a, side_b, resamples=cfg.resamples, seed=cfg.seed, advice=cfg.more_seeds
    )
    out = (
        Path(cfg.out)
        if cfg.out
        else default_out([d.name for d in dirs_a], [d.name for d in dirs_b])
    )
    check_out(out, [*side_a, *side_b])
    out.mkdir(parents=True, exist_ok=True)

    synthetic = _synthetic_sets([*side_a, *side_b])
    figures, cam = draw_figures(cfg, out, side_a, side_b, numbers, synthetic, device)
    report = {
        "format": "shoegan-compare/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "made_by": cfg.made_by,
        "settings": _settings(cfg, device),
        "sides": {"A": [r.name for r in side_a], "B": [r.name for r in side_b]},
        **numbers,
        "cam": cam,
        "synthetic": [s.to_dict() for s in synthetic],
        "evaluated": evaluated,
        "figures": figures,
        "files": ["report.json", "report.md", "report.html", *figures.values()],
        "versions": _versions(),
    }
    write_report(out, report)
    return report, out


def _settings(cfg: CompareConfig, device: Any) -> dict[str, Any]:
    return {
        "checkpoint": cfg.checkpoint,
        "cam_method": cfg.cam_method,
        "per_class": cfg.cam_per_class,
        "seed": cfg.seed,
        "resamples": cfg.resamples,
        "runs_dir": str(cfg.runs_dir),
        "device": str(device),
    }


def write_report(out: Path, report: dict[str, Any]) -> None:
    """report.json, and the report.md / report.html rendered from it, into ``out``."""
    from study.report.content import build_blocks, report_meta, report_title
    from study.report.html import render_html
    from study.report.markdown import render_markdown

    write_json(out / "report.json", report)
    blocks = build_blocks(report)
    title, meta = report_title(report), report_meta(report)
    atomic_write_text(out / "report.md", render_markdown(title, blocks, meta))
    atomic_write_text(out / "report.html", render_html(title, blocks, out, meta))


def _synthetic_sets(runs: Sequence[RunResult]) -> list[SyntheticEntry]:
    """The distinct synthetic sets the runs trained on (one entry per set, first run naming it)."""
    found: dict[tuple[str, str | None], SyntheticEntry] = {}
    for run in runs:
        entry = read_synthetic(run)
        if entry is None:
            continue
        key = (
            str(entry.folder.resolve()) if entry.folder else str(entry.recorded.get("path")),
            entry.recorded.get("manifest_sha256"),
        )
        found.setdefault(key, entry)
    return list(found.values())
