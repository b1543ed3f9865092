"""``cli explain``: several runs' explanations of the same test images in one figure — each run's
Grad-CAM (or another CAM method) and, for a ViT, its attention rollout — with each map set's
faithfulness, so CNN and transformer explanations are compared by number as well as by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from classify.explain.methods import CAM_METHODS
from commands.common import user_errors
from commands.options import (
    Checkpoint,
    Device,
    ExplainPerClass,
    ExplainSeed,
    Method,
    Rollout,
    RunsDir,
)
from core.progress import console


def explain(
    runs: list[str],
    *,
    out: Path | None,
    method: str = "gradcam",
    per_class: int = 2,
    checkpoint: str = "best",
    seed: int = 0,
    runs_dir: Path = Path("runs"),
    device: str = "auto",
    rollout: bool = True,
) -> dict[str, Any]:
    """Write the figure and ``explain.json`` next to it; return the JSON content."""
    from classify.evaluation.figures import save_figure
    from core.device import setup_device
    from core.errors import UserError
    from core.io import write_json
    from core.progress import make_progress
    from core.rundir import resolve_run_dir
    from study.compare.cams import cam_comparison, chosen_files, view_labels
    from study.compare.job import check_out, evaluate_if_needed
    from study.compare.runs import check_pairable, load_run
    from study.report.figures import cam_comparison_figure

    if len(runs) < 1:
        raise UserError(
            "name at least one run (e.g. `cli explain resnet50 resnet50-cbam vit-tiny`)"
        )
    if method not in CAM_METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(CAM_METHODS)}")
    if per_class < 1:
        raise UserError(f"--per-class {per_class}: must be at least 1")
    torch_device = setup_device(device)
    dirs = [resolve_run_dir(r, runs_dir) for r in runs]
    evaluate_if_needed(dirs, checkpoint, torch_device)
    results = [load_run(d) for d in dirs]
    for other in results[1:]:
        check_pairable(results[0], other)
    target = out or Path("reports") / f"explain-{'-vs-'.join(d.name for d in dirs)}.png"
    check_out(target.parent, results)
    rows = chosen_files(results[0], per_class, seed)
    files = [results[0].predictions.files[i] for i in rows]
    with make_progress(transient=True) as bar:
        task = bar.add_task(method, total=len(results) * len(files), info=f"{len(results)} runs")
        comparison = cam_comparison(
            results,
            files,
            method=method,
            which=checkpoint,
            device=torch_device,
            seed=seed,
            rollout=rollout,
            progress=lambda n: bar.advance(task, n),
        )
    labels = view_labels(comparison, [r.name for r in results], f" ({method})")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_figure(cam_comparison_figure(comparison.rows, labels), target)
    scores = []
    for view, label in zip(comparison.views, labels, strict=True):
        entry = (
            comparison.faithfulness[view.run]
            if view.kind == "cam"
            else comparison.attention[view.run]
        )
        scores.append({"view": label, "run": results[view.run].name, **(entry or {})})
    summary = {
        "figure": str(target),
        "method": method,
        "checkpoint": checkpoint,
        "seed": seed,
        "files": files,
        "faithfulness": scores,
    }
    write_json(target.with_suffix(".json"), summary)
    return summary


def explain_command(
    runs: Annotated[list[str], typer.Argument(help="Run names under --runs-dir, or run folders.")],
    method: Method = "gradcam",
    per_class: ExplainPerClass = 2,
    rollout: Rollout = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Output PNG (default: reports/explain-<runs>.png); JSON beside it."),
    ] = None,
    checkpoint: Checkpoint = "best",
    seed: ExplainSeed = 0,
    runs_dir: RunsDir = Path("runs"),
    device: Device = "auto",
) -> None:
    """Explain the same test images with several runs in one figure: every run's class
    activation map (--method, the same for every run) and, for ViT runs, attention rollout;
    prints each map set's faithfulness."""
    from rich.table import Table

    summary = explain(
        runs,
        out=out,
        method=method,
        per_class=per_class,
        checkpoint=checkpoint,
        seed=seed,
        runs_dir=runs_dir,
        device=device,
        rollout=rollout,
    )
    table = Table(title=f"Faithfulness on the same {len(summary['files'])} test images")
    for column in ("map", "metric", "mean ± sd", "images"):
        table.add_column(column, justify="right" if column in ("mean ± sd", "images") else "left")
    for row in summary["faithfulness"]:
        table.add_row(
            row["view"],
            str(row.get("metric", "?")),
            f"{row.get('value', float('nan')):.4f} ± {row.get('std', float('nan')):.4f}",
            str(row.get("n_images", "?")),
        )
    console.print(table)
    console.print("higher is more faithful", style="dim")
    console.print(f"wrote {summary['figure']}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("explain")(user_errors(explain_command))
