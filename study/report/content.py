"""The comparison report's content: the blocks of ``report.md`` / ``report.html`` in reading
order, built once from the report.json dictionary (the number tables live in
:mod:`study.report.tables`, the synthetic-data section in :mod:`study.report.synthetic`)."""

from __future__ import annotations

from typing import Any

from study.report.arms import arms_blocks
from study.report.model import Block, Bullets, FigureBlock, Heading, Para, Table, num
from study.report.synthetic import split_notes, synthetic_blocks
from study.report.tables import (
    metrics_table,
    per_class_table,
    runs_table,
    seeds_blocks,
    stats_table,
)


def _side_text(report: dict[str, Any], side: str) -> str:
    run = report["runs"][side][0]
    images = run.get("train_images") or {}
    real, synthetic = images.get("real"), images.get("synthetic") or 0
    data = f"{real} real" if real is not None else "real"
    data += f" + {synthetic} synthetic training images" if synthetic else " training images only"
    seeds = report["sides"][side]
    more = f" (+{len(seeds) - 1} more seed(s): {', '.join(seeds[1:])})" if len(seeds) > 1 else ""
    return f"**{side}** = `{run['name']}`: {run['model']}, {data}{more}"


def _verdict_kind(report: dict[str, Any]) -> str:
    """The headline's colour: the direction its sentence states (none: no difference stated)."""
    direction = report.get("direction")
    return f"verdict-{direction}" if direction in ("better", "worse") else "verdict-none"


def cam_blocks(report: dict[str, Any]) -> list[Block]:
    cam = report.get("cam")
    if not cam:
        return []
    blocks: list[Block] = [Heading(f"Class activation maps ({cam['method']})")]
    if "cam" in report["figures"]:
        blocks.append(
            FigureBlock(
                report["figures"]["cam"],
                f"The same {len(cam['files'])} test images (seed {report['settings']['seed']}, "
                f"{report['settings']['per_class']} per class) under both models; each map explains "
                "that model's predicted class (green: right, red: wrong)."
                + (
                    " A ViT also shows its attention rollout (Abnar & Zuidema 2020): where its "
                    "class token's attention flows through all blocks, no gradients involved."
                    if cam.get("attention")
                    else ""
                ),
            )
        )
    rows = []
    for side in ("A", "B"):
        sources = [
            (cam["faithfulness"].get(side), "", "these images"),
            ((cam.get("attention") or {}).get(side), " (attention rollout)", "these images"),
            ((cam.get("stored") or {}).get(side), "", "`cli gradcam` (eval/metrics.json)"),
        ]
        for entry, what, source in sources:
            if entry:
                rows.append(
                    [
                        f"{side}: {entry.get('run', '')}{what}",
                        entry.get("metric", "?"),
                        f"{num(entry.get('value'))} ± {num(entry.get('std'))}",
                        str(entry.get("n_images", "?")),
                        source,
                    ]
                )
    if rows:
        blocks.append(
            Table(
                ["model", "faithfulness metric", "mean ± sd", "images", "source"],
                rows,
                "Higher is more faithful: removing what the map marks as relevant lowers the model's "
                "confidence more than removing the rest. A few images per class make this a rough "
                "number.",
                [False, False, True, True, False],
            )
        )
    return blocks


def method_notes(report: dict[str, Any]) -> Bullets:
    settings = report["settings"]
    items = [
        "Pairing: predictions are matched by test file path; both runs must have predicted exactly "
        "the same files with the same classes, so every image is its own control.",
        f"Bootstrap: {report['resamples']:,} resamples of test images with replacement, pairs kept "
        f"together, percentile {report['confidence']:.0%} interval (seed {report['seed']}). It "
        "covers test-set noise only, not training randomness: use several seeds for that.",
        "McNemar's exact test (test-set noise only): only images exactly one model gets right "
        "carry information; under no difference each is equally likely to favour either model "
        "(two-sided binomial).",
        f"For one pair, differ means McNemar p < {report['alpha']} and an interval excluding "
        "zero: a statement about these two trained models, not about the method.",
        f"Checkpoint: {settings['checkpoint']}; Grad-CAM method {settings['cam_method']}.",
    ]
    if len(report["pairs"]) > 1:
        items.append(
            "Several seeds: runs are paired by their training seed (config.json), never by the "
            "order given; a seed missing from one side is an error. The headline is the mean "
            "delta over seeds with a 95% t-interval that counts seed-to-seed and test-image noise "
            "(seeds - 1 degrees of freedom; the variance of a seeds x images crossed design); "
            "with three seeds or more the verdict about the method follows it (not established "
            "when it covers 0), with fewer there is none. Each pair's bootstrap and McNemar test "
            "count test-set noise only."
        )
    items.append(
        "Per-class tests are McNemar's within each class, with Holm's step-down adjustment for "
        "testing every class."
    )
    if report["evaluated"]:
        items.append(
            "Evaluated for this report: "
            + "; ".join(f"`{name}` ({reason})" for name, reason in report["evaluated"].items())
        )
    return Bullets(items)


def build_blocks(report: dict[str, Any]) -> list[Block]:
    """The whole report, in reading order, from the report.json dictionary."""
    first = report["pairs"][0]
    figures = report["figures"]
    blocks: list[Block] = [
        Para(report["verdict"], _verdict_kind(report)),
        Bullets([_side_text(report, "A"), _side_text(report, "B")]),
        *(Para(note, "note") for note in split_notes([*report["runs"]["A"], *report["runs"]["B"]])),
        Heading("Test metrics"),
        metrics_table(report),
        Heading("Is the difference real?"),
        stats_table(first, report["confidence"]),
    ]
    if len(report["runs"]["A"]) > 1 or len(report["runs"]["B"]) > 1:
        blocks += seeds_blocks(report)
    blocks += arms_blocks(report)
    blocks += [Heading("Per class"), per_class_table(first)]
    if "curves" in figures:
        blocks += [
            Heading("Training curves"),
            FigureBlock(
                figures["curves"], "Loss and accuracy per epoch: train solid, validation dashed."
            ),
        ]
    if "confusion" in figures:
        blocks += [
            Heading("Confusion matrices"),
            FigureBlock(
                figures["confusion"],
                "Rows: true class; colour: share of the row. Right: B minus A "
                "(blue = more images in that cell for B).",
            ),
        ]
    blocks += cam_blocks(report)
    blocks += synthetic_blocks(report)
    blocks += [Heading("Runs"), runs_table(report), Heading("Method"), method_notes(report)]
    return blocks


def report_title(report: dict[str, Any]) -> str:
    return f"{report['sides']['A'][0]} vs {report['sides']['B'][0]}"


def report_meta(report: dict[str, Any]) -> str:
    return (
        f"Generated {report['created']} by `{report.get('made_by', 'cli compare')}`; all numbers "
        "are in report.json next to this file."
    )
