"""The comparison report's number tables: test metrics, the paired tests, per-class tests, seeds
and the runs compared. Each function reads the report.json dictionary (or one of its pairs) and
returns blocks; every number shown is one written to report.json."""

from __future__ import annotations

from typing import Any

from study.report.model import (
    Block,
    FigureBlock,
    Heading,
    Table,
    is_number,
    mean_sd,
    num,
    pct,
    pts,
    pval,
)


def metrics_table(report: dict[str, Any]) -> Table:
    a, b = report["runs"]["A"][0], report["runs"]["B"][0]
    rows = [
        [
            "test accuracy",
            pct(a["accuracy"]),
            pct(b["accuracy"]),
            pts(b["accuracy"] - a["accuracy"]),
        ],
        [
            "macro-F1",
            num(a["macro_f1"]),
            num(b["macro_f1"]),
            f"{b['macro_f1'] - a['macro_f1']:+.4f}",
        ],
    ]
    for name in report["class_names"]:
        ra, rb = a["per_class"][name]["recall"], b["per_class"][name]["recall"]
        rows.append([f"recall: {name}", pct(ra), pct(rb), pts(rb - ra)])
    return Table(
        ["metric", f"A: {a['name']}", f"B: {b['name']}", "B − A"],
        rows,
        f"{report['n_test']} test images; {report['settings']['checkpoint']} checkpoints.",
        [False, True, True, True],
    )


def stats_table(pair: dict[str, Any], confidence: float) -> Table:
    boot, mc = pair["bootstrap"], pair["mcnemar"]
    rows = [
        ["accuracy delta (B − A)", pts(boot["delta"])],
        [
            f"{confidence:.0%} bootstrap interval (test-set noise only)",
            f"{pts(boot['low'])} to {pts(boot['high'])} ({boot['resamples']:,} paired resamples)",
        ],
        ["both right / both wrong", f"{pair['both_correct']} / {pair['both_wrong']}"],
        ["only A right / only B right", f"{mc['only_a_correct']} / {mc['only_b_correct']}"],
        ["McNemar exact p (two-sided, test-set noise only)", pval(mc["p_value"])],
    ]
    return Table(
        ["", f"{pair['a']} → {pair['b']}"],
        rows,
        f"Paired over the same {pair['n']} test images: these two trained models, not the method.",
        [False, True],
    )


def per_class_table(pair: dict[str, Any]) -> Table:
    rows = [
        [
            name,
            str(c["n"]),
            pct(c["recall_a"]),
            pct(c["recall_b"]),
            pts(c["delta"]),
            f"{c['only_a_correct']} / {c['only_b_correct']}",
            pval(c["p_value"]),
            pval(c["p_holm"]),
        ]
        for name, c in pair["per_class"].items()
    ]
    return Table(
        [
            "class",
            "n",
            "recall A",
            "recall B",
            "B − A",
            "only A / only B right",
            "McNemar p",
            "Holm-adjusted p",
        ],
        rows,
        f"McNemar's exact test within each class; Holm's adjustment for the {len(rows)} tests.",
        [False, True, True, True, True, True, True, True],
    )


def over_seeds_table(report: dict[str, Any]) -> Table:
    """The headline over seeds (seeds and test images) beside the pooled test-only bootstrap."""
    over = report["over_seeds"]
    interval, test = over["interval"], over["test_only"]
    verdict = over["verdict"] or f"none ({interval['seeds']} seeds; 3 needed)"
    rows = [
        ["accuracy delta (B − A), mean over seeds", pts(interval["delta"])],
        [
            "95% t-interval, seeds + test images",
            f"{pts(interval['low'])} to {pts(interval['high'])} ({interval['seeds']} seeds, "
            f"{interval['seeds'] - 1} degrees of freedom)",
        ],
        ["p (two-sided t)", pval(interval["p_value"])],
        ["verdict about the method", verdict],
        ["95% bootstrap, test-set noise only", f"{pts(test['low'])} to {pts(test['high'])}"],
    ]
    return Table(
        ["", "B − A over seeds"],
        rows,
        "Runs paired by training seed. The t-interval's variance is the per-seed deltas' over "
        "seeds plus the per-image deltas' over test images; the bootstrap holds the trained "
        "models fixed.",
        [False, True],
    )


def seeds_blocks(report: dict[str, Any]) -> list[Block]:
    seeds, pairs, deltas = report["seeds"], report["pairs"], report["deltas"]
    side_rows = [
        [
            side,
            str(seeds[side]["n"]),
            ", ".join(seeds[side]["runs"]),
            mean_sd(seeds[side]["accuracy"]),
            mean_sd(seeds[side]["macro_f1"], 1.0, ""),
        ]
        for side in ("A", "B")
    ]
    pair_rows = [
        [
            f"{p['a']} → {p['b']}",
            pct(p["accuracy_a"]),
            pct(p["accuracy_b"]),
            pts(p["bootstrap"]["delta"]),
            f"{pts(p['bootstrap']['low'])} to {pts(p['bootstrap']['high'])}",
            pval(p["mcnemar"]["p_value"]),
            "yes" if p["significant"] else "no",
        ]
        for p in pairs
    ]
    blocks: list[Block] = [Heading("Seeds")]
    if report.get("over_seeds"):
        blocks.append(over_seeds_table(report))
    blocks += [
        Table(
            ["side", "runs", "names", "accuracy (mean ± sd)", "macro-F1 (mean ± sd)"],
            side_rows,
            "Sample standard deviation over seeds (ddof = 1).",
            [False, True, False, True, True],
        ),
        Table(
            [
                "pair",
                "acc A",
                "acc B",
                "B − A",
                f"{report['confidence']:.0%} CI",
                "McNemar p",
                "significant",
            ],
            pair_rows,
            f"Each pair (the runs of one training seed) tested on its own, test-set noise only; "
            f"delta over pairs {pts(deltas['delta_mean'])}"
            + (
                f" ± {100 * deltas['delta_std']:.2f} (mean ± sd)."
                if is_number(deltas["delta_std"])
                else "."
            )
            + " Significant: these two trained models differ on this test set.",
            [False, True, True, True, True, True, False],
        ),
    ]
    if "seeds" in report["figures"]:
        blocks.append(
            FigureBlock(
                report["figures"]["seeds"],
                "Accuracy and macro-F1 of every run, with mean ± sd per side.",
            )
        )
    return blocks


def runs_table(report: dict[str, Any]) -> Table:
    rows = []
    for side in ("A", "B"):
        for run in report["runs"][side]:
            images = run.get("train_images") or {}
            epoch = run.get("best_epoch") if run.get("checkpoint") == "best" else run.get("epoch")
            rows.append(
                [
                    side,
                    f"`{run['name']}`",
                    run["model"],
                    f"{run.get('checkpoint')} (epoch {epoch})",
                    pct(run.get("val_acc")),
                    str(images.get("real", "?")),
                    str(images.get("synthetic", 0)),
                    pct(run["accuracy"]),
                    num(run["macro_f1"]),
                ]
            )
    return Table(
        [
            "side",
            "run",
            "model",
            "checkpoint",
            "val acc",
            "real train",
            "synthetic train",
            "test acc",
            "macro-F1",
        ],
        rows,
        "",
        [False, False, False, False, True, True, True, True, True],
    )
