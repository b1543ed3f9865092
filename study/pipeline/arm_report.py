"""What the arms' table says besides the statistics (:mod:`study.pipeline.arms`): each arm's recipe
and the images it was shown, its validation curve, and the budget rule, all read from the runs'
own files (config.json's ``train``, ``synthetic.recipe``, ``real_presentations``,
``synthetic_presentations`` and ``optimizer_steps``, :func:`classify.training.synthetic_exposure.presentations`;
history.jsonl's ``val_acc``); and arms.json / arms.md / the report's "Arms" section written from it
(rendered by :mod:`study.report.arms`, which never imports the pipeline).

The budget rule is what the pipeline does: every arm trains the baseline's epochs, and under the
default recipe (``separate``, He et al. 2023) with real exposure held fixed, every real image shown
as often as in the baseline; each run is evaluated at one epoch chosen by one rule
(:data:`EPOCH_RULE`, :mod:`classify.training.engine`), never on the test set (Dietterich 1998 on
comparing classifiers fairly).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classify.training.config import TrainConfig
from study.pipeline.recipes import MIXED, SEPARATE, recipe_text
from study.report.arms import PRESENTATIONS, arm_markdown

EPOCH_RULE = (
    "Epoch selection, one rule for every run: the checkpoint evaluated is the run's best epoch by "
    "validation accuracy over all its epochs (ties: the earlier); for a :finetune arm the "
    "fine-tune phase continues from the real-only run's last epoch and its candidates are all "
    "epochs of the combined schedule."
)
BUDGET = (
    "Budget: every arm trains the baseline's epochs with real exposure held fixed. " + EPOCH_RULE
)
CURVES_FILE = "arms-val-curves.png"


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
        "synthetic_runs": [{"name": r.name, "synthetic": r.config.get("synthetic")} for r in runs],
    }


def best_val(history: Sequence[dict[str, Any]]) -> float | None:
    """The validation accuracy of a run's ``best.pt``: its best over all the run's epochs, the
    finetune phase's and the main phase's alike (:data:`EPOCH_RULE`); None without a validation
    split."""
    values = [float(r["val_acc"]) for r in history if r.get("val_acc") is not None]
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
