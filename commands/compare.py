"""``cli compare A B``: the comparison report of two classifier runs (or two lists of seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from commands.command import command_class
from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.options import CamMethod, CamPerClass, Checkpoint, Device, RunsDir
from core.progress import console, err_console
from study.compare.config import CompareConfig

DEFAULTS = CompareConfig()

RUNS_HELP = (
    "Run name under --runs-dir or path to a run folder; several seeds of one setup as a "
    "comma-separated list (e.g. base_s0,base_s1). Side {side} of the comparison."
)


def compare_command(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help=RUNS_HELP.format(side="A (the baseline)"))],
    b: Annotated[
        str,
        typer.Argument(
            metavar="B", help=RUNS_HELP.format(side="B (e.g. retrained with synthetic)")
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: reports/<A>-vs-<B>).")
    ] = None,
    cam_method: CamMethod = DEFAULTS.cam_method,
    cam_per_class: CamPerClass = DEFAULTS.cam_per_class,
    checkpoint: Checkpoint = DEFAULTS.checkpoint,
    runs_dir: RunsDir = Path(DEFAULTS.runs_dir),
    seed: Annotated[
        int, typer.Option(help="Seed of the bootstrap, the Grad-CAM and sample image choice.")
    ] = DEFAULTS.seed,
    resamples: Annotated[
        int, typer.Option(help="Bootstrap resamples of the test set.")
    ] = DEFAULTS.resamples,
    device: Device = DEFAULTS.device,
) -> None:
    """Compare two classifier runs (or two lists of seeds) in a report.

    On their paired test predictions: accuracy delta with a bootstrap 95% interval, McNemar's
    exact test, per-class recall, curves, confusion matrices, Grad-CAM on the same images, and the
    synthetic set's FID/KID. Writes report.md, report.html (self-contained) and report.json.

    One pair tells about those two trained models only. Several seeds per side (runs paired by
    training seed): the delta over seeds with a 95% interval counting seed and test-image noise,
    a verdict about the method from three seeds on; pictures from the first pair.
    """
    from study.compare.job import run_compare
    from study.compare.runs import parse_run_list

    cfg = config_of(CompareConfig, ctx, a=parse_run_list(a), b=parse_run_list(b))
    try:
        report, folder = run_compare(cfg)
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]interrupted[/yellow]: files are written atomically; nothing "
            "half-written. Run the command again.",
            highlight=False,
        )
        raise typer.Exit(130) from None
    print_summary(report, folder)


def print_summary(report: dict[str, Any], folder: Path) -> None:
    """The headline numbers as a Rich table, then the verdict sentence."""
    from rich.table import Table

    from study.report.model import mean_sd, num, pct, pts, pval

    a, b = report["runs"]["A"][0], report["runs"]["B"][0]
    pair = report["pairs"][0]
    boot = pair["bootstrap"]
    table = Table(title=f"A: {a['name']}  vs  B: {b['name']}  ({report['n_test']} test images)")
    for column in ("", "A", "B", "B − A"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("test accuracy", pct(a["accuracy"]), pct(b["accuracy"]), pts(boot["delta"]))
    table.add_row(
        "macro-F1", num(a["macro_f1"]), num(b["macro_f1"]), f"{b['macro_f1'] - a['macro_f1']:+.4f}"
    )
    first = " (first pair)" if len(report["pairs"]) > 1 else ""
    table.add_row(
        f"{report['confidence']:.0%} bootstrap CI, test-set noise only{first}",
        "",
        "",
        f"{100 * boot['low']:+.2f} to {100 * boot['high']:+.2f} pts",
    )
    table.add_row(f"McNemar exact p{first}", "", "", pval(pair["mcnemar"]["p_value"]))
    seeds = report["seeds"]
    if seeds["A"]["n"] > 1 or seeds["B"]["n"] > 1:
        deltas = report["deltas"]
        for key, label, scale, unit in (
            ("accuracy", "accuracy, mean ± sd", 100.0, "%"),
            ("macro_f1", "macro-F1, mean ± sd", 1.0, ""),
        ):
            cells = [mean_sd(seeds[s][key], scale, unit) for s in ("A", "B")]
            delta = (
                f"{100 * deltas['delta_mean']:+.2f} ± {100 * deltas['delta_std']:.2f} pts"
                if key == "accuracy"
                else ""
            )
            table.add_row(label, *cells, delta)
        interval = (report.get("over_seeds") or {}).get("interval")
        if interval:
            table.add_row(
                "95% CI over seeds + test images",
                "",
                "",
                f"{100 * interval['low']:+.2f} to {100 * interval['high']:+.2f} pts",
            )
            table.add_row("p (two-sided t over seeds)", "", "", pval(interval["p_value"]))
        table.caption = f"seeds: A {seeds['A']['n']}, B {seeds['B']['n']}; runs paired by seed"
    console.print(table)
    colour = {"better": "green", "worse": "red"}.get(report.get("direction") or "", "white")
    console.print(f"[bold {colour}]{report['verdict']}[/bold {colour}]", highlight=False)
    console.print(
        f"wrote {folder}/ (report.html, report.md, report.json, {len(report['figures'])} figures)",
        highlight=False,
    )


EXAMPLES = """Examples:

cli compare resnet50-cbam resnet50-cbam-aug
cli compare base_s0,base_s1,base_s2 aug_s0,aug_s1,aug_s2 --out reports/seeds
"""


def register(app: typer.Typer) -> None:
    renamed = {"--per-class": "--cam-per-class"}
    app.command("compare", cls=command_class(renamed=renamed), epilog=EXAMPLES)(
        user_errors(one_process("compare")(compare_command))
    )
