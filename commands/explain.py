"""``cli explain``: several runs' explanations of the same test images in one figure, with each map
set's faithfulness (the job is :func:`study.explain.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.command import command_class
from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.options import (
    CamMethod,
    Checkpoint,
    Device,
    ExplainPerClass,
    ExplainSeed,
    Rollout,
    RunsDir,
)
from core.progress import console
from study.explain_config import ExplainOptions

_E = ExplainOptions()


def explain_command(
    ctx: typer.Context,
    runs: Annotated[
        list[str],
        typer.Argument(metavar="RUNS", help="Run names under --runs-dir, or run folders."),
    ],
    cam_method: CamMethod = _E.cam_method,
    cam_per_class: ExplainPerClass = _E.cam_per_class,
    rollout: Rollout = _E.rollout,
    out: Annotated[
        Path | None,
        typer.Option(help="Output PNG (default: reports/explain-<runs>.png); JSON beside it."),
    ] = _E.out,
    checkpoint: Checkpoint = _E.checkpoint,
    seed: ExplainSeed = _E.seed,
    runs_dir: RunsDir = Path(_E.runs_dir),
    device: Device = _E.device,
) -> None:
    """Explain the same test images with several runs in one figure.

    Every run's class activation map (--cam-method, the same for every run) and, for ViT runs,
    attention rollout; prints each map set's faithfulness.
    """
    from rich.table import Table

    from study.explain import explain

    summary = explain(runs, config_of(ExplainOptions, ctx))
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
    renamed = {"--method": "--cam-method", "--per-class": "--cam-per-class"}
    app.command("explain", cls=command_class(renamed=renamed))(
        user_errors(one_process("explain")(explain_command))
    )
