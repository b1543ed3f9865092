"""Fair budgets (``cli pipeline --epochs 12,24,48``): the study at several epoch budgets, each
arm's budget chosen on validation accuracy by one rule for all arms, and the verdict at every
budget, so a reader sees whether a longer budget would change it.

Each budget is one ordinary study whose classifier runs live in ``<runs>/epochs-E`` (its report in
``<reports>/epochs-E``); the GAN and the synthetic set do not depend on the classifiers' epochs, so
every budget shares the one GAN run in ``<runs>`` and the one synthetic set (trained and drawn
once). Finished runs are skipped on a re-run, as in a single study. The CAS is scored once, with
the first budget's epochs (it is written into the shared synthetic set's manifest).

The rule (issue 10 §3; Dietterich 1998 on choosing without the test set): for every arm, the
budget with the highest mean over seeds of the runs' best validation accuracy (the epoch
``best.pt`` holds), ties to the smaller budget (less compute); the selected table then sets each
arm at its chosen budget against ``real`` at its own (:func:`study.pipeline.arms.arm_table`: the
interval over seeds and test images, Holm across arms, the test-only tests beside it). Because every arm may take
the largest budget, an arm that processes more images per step (the GAN arms) meets a real-only arm
that had as many steps as it wanted: compute stops favouring one side once every arm has passed
its plateau. The equal-budget tables beside it show each budget's own verdict; where the two largest
budgets disagree on an arm's side of 0, the report says a longer budget could still change it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.distributed import DistConfig
from core.errors import UserError
from core.ranks import main_only
from study.pipeline.arm_report import EPOCH_RULE
from study.pipeline.arms import headline, mean_val
from study.pipeline.config import PipelineConfig

BUDGET_DIR = "epochs-{}"


def parse_budgets(text: str | None) -> tuple[int, ...]:
    """``None`` -> ``()`` (the preset's epochs); ``"12"`` or ``"12,24,48"`` -> sorted distinct
    epoch budgets; a one-line error otherwise."""
    if text is None:
        return ()
    try:
        budgets = sorted({int(part) for part in str(text).split(",") if part.strip()})
    except ValueError:
        raise UserError(f"--epochs {text!r}: give epochs, e.g. 12 or 12,24,48") from None
    if not budgets or budgets[0] < 1:
        raise UserError(f"--epochs {text!r}: every budget must be at least 1 epoch")
    return tuple(budgets)


def budget_config(cfg: PipelineConfig, epochs: int, first: bool) -> PipelineConfig:
    """The single study of one budget: its classifier runs and report in their own folders, the
    GAN shared in ``cfg.runs_dir``; the CAS only with the first budget."""
    folder = BUDGET_DIR.format(epochs)
    return replace(
        cfg,
        runs_dir=str(Path(cfg.runs_dir) / folder),
        reports_dir=str(Path(cfg.reports_dir) / folder),
        gan_runs_dir=cfg.gan_runs_dir or cfg.runs_dir,
        classifier={**cfg.classifier, "epochs": epochs},
        cas=cfg.cas and first,
    )


def run_budget_grid(
    cfg: PipelineConfig,
    budgets: Sequence[int],
    run_study: Callable[[PipelineConfig], dict[str, Any]] | None = None,
    dist: DistConfig | None = None,
) -> dict[str, Any]:
    """One study per budget, then each arm at its chosen budget against ``real`` at its own;
    written to ``<runs>/<name>-budgets.json`` and ``<reports>/<name>-budgets/`` (budgets.md, the
    figure); returns that summary, whose ``arms`` is the selected table (as a study's)."""
    if run_study is None:
        from study.pipeline.runner import run_pipeline

        run_study = lambda c: run_pipeline(c, dist)  # noqa: E731
    studies = {
        epochs: run_study(budget_config(cfg, epochs, i == 0)) for i, epochs in enumerate(budgets)
    }
    return main_only(lambda: _write_grid(cfg, budgets, studies))


def choose_budgets(tables: dict[int, dict[str, Any]]) -> dict[str, int]:
    """Each arm's budget: the highest mean best-epoch validation accuracy over seeds, ties to the
    smaller budget. ``tables[epochs]``: that budget's arms table."""
    arms = list(next(iter(tables.values()))["arms"])
    chosen: dict[str, int] = {}
    for arm in arms:
        scores = {e: mean_val(t["arms"][arm]) for e, t in tables.items()}
        if any(score is None for score in scores.values()):
            raise UserError(
                f"--epochs {','.join(map(str, tables))}: choosing a budget needs validation "
                f"accuracy, and arm {arm} has none (--val-fraction 0?); give one budget instead"
            )
        chosen[arm] = min(scores, key=lambda e: (-scores[e], e))
    return chosen


def selected_table(
    tables: dict[int, dict[str, Any]], runs_dirs: dict[int, Path], chosen: dict[str, int]
) -> dict[str, Any]:
    """The arms table with every arm's runs taken from its chosen budget."""
    from study.compare.runs import load_run
    from study.pipeline.arms import arm_table

    runs = {
        arm: [load_run(runs_dirs[epochs] / name) for name in tables[epochs]["arms"][arm]["runs"]]
        for arm, epochs in chosen.items()
    }
    table = arm_table(runs)
    for arm, epochs in chosen.items():
        table["arms"][arm]["epochs"] = epochs
    table["budget"] = budget_text(tables, chosen)
    return table


def budget_text(tables: dict[int, dict[str, Any]], chosen: dict[str, int]) -> str:
    """The rule, what it chose, and whether the two largest budgets agree on each arm's side."""
    grid = ", ".join(map(str, sorted(tables)))
    text = (
        f"Budget chosen per arm on validation accuracy: every arm trained at {grid} epochs (real "
        "exposure held fixed at each), and the budget with the highest mean over seeds of the "
        "best-epoch validation accuracy kept (ties: the smaller); chosen: "
        + ", ".join(f"{arm} {epochs}" for arm, epochs in chosen.items())
        + ". "
        + EPOCH_RULE
    )
    unsettled = unsettled_arms(tables)
    if len(tables) < 2:
        return text
    top = sorted(tables)[-2:]
    if unsettled:
        text += (
            f" At {top[0]} and {top[1]} epochs the equal-budget verdicts disagree for "
            f"{', '.join(unsettled)} (its interval against real moves across 0): a longer budget "
            "could still change it."
        )
    else:
        text += (
            f" At {top[0]} and {top[1]} epochs every arm's interval against real lies on the same "
            "side of 0 (or includes it at both): the verdict no longer moves with the budget."
        )
    return text


def side(interval: dict[str, Any]) -> str:
    """Where an interval lies against 0."""
    return "above" if interval["low"] > 0 else ("below" if interval["high"] < 0 else "includes 0")


def unsettled_arms(tables: dict[int, dict[str, Any]]) -> list[str]:
    """Arms whose interval against real lies on different sides of 0 at the two largest budgets."""
    if len(tables) < 2:
        return []
    low, high = (tables[e]["arms"] for e in sorted(tables)[-2:])
    return [
        arm for arm in high
        if headline(high[arm]) and side(headline(high[arm])) != side(headline(low[arm]))
    ]  # fmt: skip


def _write_grid(
    cfg: PipelineConfig, budgets: Sequence[int], studies: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    from core.io import atomic_write_text, write_json
    from study.pipeline.arm_report import draw_arm_curves
    from study.pipeline.budget_report import FIGURE, budget_blocks, draw_budgets
    from study.report.html import render_html
    from study.report.markdown import render_markdown

    name = Path(studies[budgets[0]]["data"]).name
    tables = {e: studies[e]["arms"] for e in budgets}
    runs_dirs = {e: Path(budget_config(cfg, e, False).runs_dir) for e in budgets}
    chosen = choose_budgets(tables)
    selected = selected_table(tables, runs_dirs, chosen)
    out = Path(cfg.reports_dir) / f"{name}-budgets"
    summary = {
        "data": studies[budgets[0]]["data"],
        "seeds": cfg.seeds,
        "budgets": list(budgets),
        "models": {str(e): studies[e]["best_model"] for e in budgets},
        "chosen": chosen,
        "grid": {str(e): grid_row(tables[e]) for e in budgets},
        "unsettled": unsettled_arms(tables),
        "arms": selected,
        "studies": {str(e): studies[e]["report"] for e in budgets},
        "report": str(out / "budgets.html"),
        "figure": str(out / FIGURE),
    }
    draw_budgets(summary, out / FIGURE)
    selected["figure"] = draw_arm_curves(selected, out)
    blocks = budget_blocks(summary)
    title = f"Budgets: {summary['data']}, {summary['seeds']} seed(s)"
    atomic_write_text(out / "budgets.md", render_markdown(title, blocks))
    atomic_write_text(out / "budgets.html", render_html(title, blocks, out))
    write_json(out / "budgets.json", summary)
    write_json(Path(cfg.runs_dir) / f"{name}-budgets.json", summary)
    return summary


def grid_row(table: dict[str, Any]) -> dict[str, Any]:
    """One budget's numbers per arm: mean validation and test accuracy, the headline delta (over
    seeds and test images; with one seed over test images only, its ``source`` says which)."""
    row = {}
    for arm, numbers in table["arms"].items():
        row[arm] = {"val": mean_val(numbers), "test": numbers["mean"]}
        delta = headline(numbers)
        if delta:
            row[arm]["delta"] = {k: delta[k] for k in ("delta", "low", "high", "source")}
    row["verdict"] = table["verdict"]
    return row
