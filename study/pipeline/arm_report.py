"""What the arms' table says besides the statistics (:mod:`study.pipeline.arms`): each arm's recipe
and the images it was shown, its validation curve, and the budget rule, all read from the runs'
own files (config.json's ``train``, ``synthetic.recipe``, ``real_presentations``,
``synthetic_presentations`` and ``optimizer_steps``, :func:`classify.training.recipe.presentations`;
history.jsonl's ``val_acc``); and arms.json / arms.md / the report's "Arms" section written from it.

The budget rule is what the pipeline does: every arm trains the baseline's epochs, and under the
default recipe (``separate``, He et al. 2023) with real exposure held fixed, every real image shown
as often as in the baseline; each run is evaluated at its best epoch by validation accuracy
(``best.pt``), never chosen on the test set (Dietterich 1998 on comparing classifiers fairly).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classify.training.config import TrainConfig
from classify.training.recipe import FINETUNE
from study.pipeline.recipes import MIXED, SEPARATE, recipe_text

PRESENTATIONS = ("real_presentations", "synthetic_presentations", "optimizer_steps")
BUDGET = (
    "Budget: every arm trains the baseline's epochs with real exposure held fixed; the checkpoint "
    "is each run's best epoch by validation accuracy."
)
CURVES_FILE = "arms-val-curves.png"
RECIPE_HEADERS = ["arm", "recipe", "real images shown", "synthetic images shown",
                  "optimizer steps"]  # fmt: skip


def arm_training(runs: Sequence[Any]) -> dict[str, Any]:
    """An arm's recipe, images shown per seed and mean validation curve, from its runs
    (:class:`study.compare.runs.RunResult`, one per seed)."""
    config = runs[0].config
    cfg = TrainConfig.from_dict(config.get("train") or {})
    mode = None if not cfg.synthetic else (SEPARATE if cfg.synthetic_batch else MIXED)
    teachers = [str((r.config.get("train") or {}).get("teacher")) for r in runs]
    return {
        "recipe": {
            "text": recipe_text(config, "teacher " + ", ".join(teachers)),
            "gan_recipe": mode,
            "finetune_real_epochs": cfg.finetune_real_epochs,
            "epochs": cfg.epochs,
            "synthetic": (config.get("synthetic") or {}).get("recipe"),
        },
        "presentations": {key: [r.config.get(key) for r in runs] for key in PRESENTATIONS},
        "val_curve": mean_curve([r.history for r in runs]),
        "loss_curve": mean_curve([r.history for r in runs], "train_loss"),
        "val_best": [best_val(r.history) for r in runs],
    }


def best_val(history: Sequence[dict[str, Any]]) -> float | None:
    """The validation accuracy of a run's ``best.pt``: its best over the epochs that could choose
    it, i.e. over the fine-tuning phase alone for a ``--finetune-real-epochs`` run (whose
    ``best.pt`` is always from that phase, :mod:`classify.training.engine`); None without a
    validation split."""
    records = [r for r in history if r.get("val_acc") is not None]
    if any(r.get("phase") == FINETUNE for r in records):
        records = [r for r in records if r.get("phase") == FINETUNE]
    values = [float(r["val_acc"]) for r in records]
    return max(values) if values else None


def mean_curve(
    histories: Sequence[Sequence[dict[str, Any]]], key: str = "val_acc"
) -> dict[str, list[Any]]:
    """``key`` (validation accuracy by default) per epoch, the mean over the seeds that recorded
    it."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for record in history:
            if record.get(key) is not None and "epoch" in record:
                by_epoch.setdefault(int(record["epoch"]), []).append(float(record[key]))
    epochs = sorted(by_epoch)
    return {"epoch": epochs, key: [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]}


def budget_rule(rows: dict[str, Any]) -> str:
    """:data:`BUDGET`, and the arms that depart from it (mixed recipe, real-only finetuning)."""
    recipes = {arm: row.get("recipe") or {} for arm, row in rows.items()}
    mixed = [arm for arm, r in recipes.items() if r.get("gan_recipe") == MIXED]
    tuned = [f"{a} (K = {r['finetune_real_epochs']})" for a, r in recipes.items()
             if r.get("finetune_real_epochs")]  # fmt: skip
    text = BUDGET
    if mixed:
        text += (
            f" Except {', '.join(mixed)} (the mixed recipe): the baseline's optimizer steps, each "
            "drawing from real + synthetic, so each real image is shown less often."
        )
    if tuned:
        text += " The finetune arms then train K more epochs on the real images only: "
        text += f"{', '.join(tuned)}."
    return text


def _count(values: Sequence[Any]) -> str:
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


def arm_markdown(table: dict[str, Any]) -> str:
    """The table as Markdown, the verdict, then each arm's recipe and the budget rule."""
    from study.pipeline.arms import ARM_HEADERS, arm_rows

    lines = ["| " + " | ".join(ARM_HEADERS) + " |", "|---|---:|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in arm_rows(table)]
    lines += ["", table["verdict"], ""]
    lines += ["| " + " | ".join(RECIPE_HEADERS) + " |", "|---|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in recipe_rows(table)]
    lines += ["", table.get("budget", BUDGET), ""]
    if table.get("figure"):
        lines += [
            f"![training loss and validation accuracy per epoch, every arm]({table['figure']})",
            "",
        ]
    if table.get("confusion_figure"):
        lines += [f"![confusion matrix of every arm]({table['confusion_figure']})", ""]
    cam = table.get("cam")
    if cam:
        from study.pipeline.arm_figures import cam_caption

        lines += [f"![Grad-CAM, real vs {cam['arm']}]({cam['figure']})", "", cam_caption(cam), ""]
    return "\n".join(lines)


def draw_arm_curves(table: dict[str, Any], out: Path) -> str | None:
    """Every arm's mean validation accuracy per epoch in one PNG; its file name (None: no curve)."""
    from classify.evaluation.figures import save_figure
    from study.report.figures import arm_curves_figure

    curves = {
        arm: (row["val_curve"]["epoch"], row["val_curve"]["val_acc"])
        for arm, row in table["arms"].items()
        if (row.get("val_curve") or {}).get("epoch")
    }
    losses = {
        arm: (row["loss_curve"]["epoch"], row["loss_curve"]["train_loss"])
        for arm, row in table["arms"].items()
        if (row.get("loss_curve") or {}).get("epoch")
    }
    if not curves:
        return None
    epochs = [(row.get("recipe") or {}).get("epochs") for row in table["arms"].values()]
    tuned = any(
        (row.get("recipe") or {}).get("finetune_real_epochs") for row in table["arms"].values()
    )
    main = epochs[0] if tuned and isinstance(epochs[0], int) else None
    seeds = max(len(row.get("accuracy") or []) for row in table["arms"].values())
    figure = arm_curves_figure(curves, seeds=seeds, main_epochs=main, losses=losses or None)
    save_figure(figure, out / CURVES_FILE)
    return CURVES_FILE


def write_arm_table(table: dict[str, Any], out: Path) -> None:
    """The curves figure (and, where the table has them, every arm's confusion matrix), arms.json
    and arms.md into the report folder ``out``, and the table into its report (report.json, .md
    and .html re-rendered with an "Arms" section)."""
    from core.io import atomic_write_text, read_json, write_json
    from study.compare.job import write_report
    from study.pipeline.arm_figures import draw_arm_confusions

    table["figure"] = draw_arm_curves(table, out)
    if all(row.get("confusion") for row in table["arms"].values()):
        table["confusion_figure"] = draw_arm_confusions(table, table["class_names"], out)
    write_json(out / "arms.json", table)
    atomic_write_text(out / "arms.md", arm_markdown(table))
    report = read_json(out / "report.json")
    report["arms"] = table
    write_report(out, report)
