"""The arms table rendered (:func:`study.pipeline.arms.arm_table` computes it; nothing here imports
the pipeline): the statistics of every arm against ``real``, the verdict, each arm's recipe and
images shown, the budget rule, the figures. One set of blocks serves the study's report
(:mod:`study.report.content`), arms.md (:func:`arm_markdown`) and the budget grid's report."""

from __future__ import annotations

from typing import Any

from study.report.markdown import render_markdown
from study.report.model import Block, FigureBlock, Heading, Para, Table, is_number
from study.report.synthetic import split_notes

TITLE = "Arms: every recipe against real only"
# config.json's image counts, in the order of the recipe table's columns.
PRESENTATIONS = ("real_presentations", "synthetic_presentations", "optimizer_steps")
ARM_HEADERS = ["arm", "test acc % (mean ± sd)", "Δ vs real (95% CI, seeds + test images)",
               "p (Holm)", "verdict", "Δ test-set noise only (95% CI)",
               "McNemar p per seed (test-set noise only)"]  # fmt: skip
RECIPE_HEADERS = ["arm", "recipe", "real images shown", "synthetic images shown",
                  "optimizer steps"]  # fmt: skip
ARMS_CAPTION = (
    "Every arm is the best architecture trained with the baseline's seed, hyper-parameters and "
    "epochs, changing only what its name says; runs are paired with real's by training seed. "
    "The headline Δ is the mean over seeds of the accuracy delta, its 95% t-interval counting "
    "both seed-to-seed and test-image noise (seeds - 1 degrees of freedom), and its p-value "
    "Holm-adjusted across arms; the verdict follows it (not established when it covers 0) and is "
    "given only with three seeds or more. Test-set noise only (the trained models held fixed): a "
    "paired bootstrap of test images pooled over seeds, and McNemar's exact test per seed."
)
RECIPES_CAPTION = (
    "Each arm's recipe and the images its runs were shown over the whole schedule (config.json's "
    "real_presentations, synthetic_presentations, optimizer_steps; a range where seeds differ)."
)


def p_text(entry: dict[str, Any], key: str = "p_holm") -> str:
    """A p-value as text; a bootstrap's (``resamples`` known) below its resolution reads
    ``< 1/resamples``."""
    p = entry.get(key)
    if not is_number(p):
        return "–"
    if p == 0 and "resamples" in entry:
        return f"< {1 / entry['resamples']:.0e}"
    return "< 1e-6" if p < 1e-6 else f"{p:.3g}"


def delta_text(entry: dict[str, Any] | None) -> str:
    """A delta and its interval in points: ``+1.23 (+0.45 to +2.01)``; ``–`` when absent."""
    if not entry:
        return "–"
    d, low, high = (100 * entry[k] for k in ("delta", "low", "high"))
    return f"{d:+.2f} ({low:+.2f} to {high:+.2f})"


def _mean_sd(row: dict[str, Any]) -> str:
    std = row.get("std")
    return f"{100 * row['mean']:.2f}" + (f" ± {100 * std:.2f}" if is_number(std) else " (1 seed)")


def _verdict(row: dict[str, Any]) -> str:
    if row.get("verdict"):
        return row["verdict"]
    seeds = len(row.get("accuracy") or [])
    return f"none ({seeds} seed{'s' * (seeds != 1)}; 3 needed)"


def arm_rows(table: dict[str, Any]) -> list[list[str]]:
    """One row of cells per arm (``real`` first, its comparison cells empty)."""
    rows = []
    for arm, row in table["arms"].items():
        cells = [arm, _mean_sd(row)]
        if "test_only" not in row:
            cells += [""] * 5
        else:
            interval = row.get("interval")
            cells += [
                delta_text(interval),
                p_text(interval) if interval else "–",
                _verdict(row),
                delta_text(row["test_only"]),
                ", ".join(f"{s['mcnemar']['p_value']:.3g}" for s in row["per_seed"]),
            ]
        rows.append(cells)
    return rows


def _count(values: list[Any]) -> str:
    known = [v for v in values if isinstance(v, int)]
    if not known:
        return "–"
    low, high = min(known), max(known)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def recipe_rows(table: dict[str, Any]) -> list[list[str]]:
    """One row per arm: its recipe and images shown (a range where the seeds differ)."""
    rows = []
    for arm, row in table["arms"].items():
        shown = row.get("presentations") or {}
        text = (row.get("recipe") or {}).get("text", "–")
        rows.append([arm, text, *(_count(shown.get(key) or []) for key in PRESENTATIONS)])
    return rows


def cam_caption(cam: dict[str, Any]) -> str:
    """The Grad-CAM figure's caption: which arm, why, and each side's faithfulness."""
    scores = "; ".join(
        f"{name} {entry['value']:+.3f}"
        for name, entry in cam["faithfulness"].items()
        if isinstance(entry.get("value"), (int, float))
    )
    return (
        f"Class-activation maps ({cam['method']}) of real and {cam['arm']} ({cam['why']}), "
        f"first seed, on the same {len(cam['files'])} test images; each map explains its own "
        "model's predicted class. "
        f"Faithfulness (ROAD, higher is better) on these images: {scores}."
    )


def arms_blocks(report: dict[str, Any]) -> list[Block]:
    """The arms section of a report whose ``arms`` is the table (absent from a plain compare:
    no blocks): the statistics, the verdict, each arm's recipe and images shown, the budget and
    epoch-selection rule, the curves, the confusion matrices and the Grad-CAM figure."""
    table = report.get("arms")
    if not table:
        return []
    blocks: list[Block] = [
        Heading(TITLE),
        Table(ARM_HEADERS, arm_rows(table), ARMS_CAPTION, [False, True, True, True, False, True]),
        Para(table["verdict"], "note"),
        *(
            Para(note, "note")
            for row in table["arms"].values()
            for note in split_notes(row.get("synthetic_runs") or [])
        ),
        Table(
            RECIPE_HEADERS, recipe_rows(table), RECIPES_CAPTION, [False, False, True, True, True]
        ),
    ]
    if table.get("budget"):
        blocks.append(Para(table["budget"]))
    seeds = max(len(row.get("accuracy") or []) for row in table["arms"].values())
    if table.get("figure"):
        over = f", the mean over {seeds} seeds" if seeds > 1 else ""
        blocks.append(
            FigureBlock(
                table["figure"],
                f"Training loss and validation accuracy per epoch of every arm{over}; one line "
                "per arm.",
            )
        )
    if table.get("confusion_figure"):
        blocks.append(
            FigureBlock(
                table["confusion_figure"],
                "Confusion matrix of every arm on the test set, summed over its seeds; colour: "
                "share of the true class.",
            )
        )
    if table.get("cam"):
        blocks.append(FigureBlock(table["cam"]["figure"], cam_caption(table["cam"])))
    return blocks


def arm_markdown(table: dict[str, Any]) -> str:
    """arms.md: the arms section alone, rendered by the report's one Markdown renderer."""
    return render_markdown(TITLE, arms_blocks({"arms": table})[1:])
