"""Regenerate the result tables the docs show, from the study JSON they came from.

    .venv/bin/python scripts/results.py           # rewrite the tables in docs/*.md and README.md
    .venv/bin/python scripts/results.py --check   # exit 1 when a table differs from its JSON

A generated table sits between two markers naming its JSON file (relative to the repository):

    <!-- results: docs/results/footwear-50-budgets.json -->
    (generated: do not edit by hand)
    <!-- /results -->

The JSON files are copied from a study's runs folder into ``docs/results/`` (docs/results.md says
which command made each). The table follows the file's kind, told from its keys: a study's or a
budget grid's summary (``arms``: every arm against real only), a learning curve (``points``), a
GAN seeds summary (``metrics`` and ``per_seed``), a `cli compare` report of two lists of runs
(``format`` shoegan-compare, e.g. from-scratch against pretrained runs of one arm). Every number
in a table is the JSON's, rounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.gan_seeds import summary_rows  # noqa: E402
from study.report.arms import delta_text, p_text  # noqa: E402

MARKER = re.compile(
    r"(<!-- results: (?P<source>[^ ]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL
)


def _table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    align = ["---:" if right else "---" for right in numeric]
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "–"


def _mean_sd(row: dict[str, Any]) -> str:
    std = row.get("std")
    return _pct(row["mean"]) + (f" ± {_pct(std)}" if isinstance(std, (int, float)) else "")


def _mean_val(row: dict[str, Any]) -> str:
    values = [v for v in row.get("val_best") or [] if isinstance(v, (int, float))]
    return _pct(sum(values) / len(values)) if values else "–"


def arms_markdown(summary: dict[str, Any]) -> list[str]:
    """Every arm against real only: test accuracy over seeds, the headline delta over seeds and
    test images with its Holm-adjusted p and verdict, validation accuracy; then the verdict."""
    table = summary["arms"]
    seeds = table.get("seeds") or len(next(iter(table["arms"].values()))["accuracy"])
    budgets = any("epochs" in row for row in table["arms"].values())
    headers = ["arm", *(["epochs"] if budgets else []), "test acc % (mean ± sd)",
               "Δ vs real (95% CI, seeds + test images)", "p (Holm)", "verdict",
               "val acc % (mean)"]  # fmt: skip
    rows = []
    for arm, row in table["arms"].items():
        interval = row.get("interval")
        compared = "test_only" in row
        rows.append(
            [
                arm,
                *([str(row.get("epochs", "–"))] if budgets else []),
                _mean_sd(row),
                delta_text(interval) if compared else "",
                (p_text(interval) if interval else "–") if compared else "",
                (row.get("verdict") or f"none ({seeds} seed{'s' * (seeds != 1)})")
                if compared
                else "",
                _mean_val(row),
            ]
        )
    numeric = [False, *([True] if budgets else []), True, True, True, False, True]
    lines = _table(headers, rows, numeric)
    lines += ["", f"{seeds} seeds, {table['n_test']:,} test images. {table['verdict']}"]
    return lines


def curve_markdown(curve: dict[str, Any]) -> list[str]:
    """Mean test accuracy of every arm at every size, with its band and its delta against real."""
    headers = ["real / class", "arm", "test acc % (mean)", f"band ({curve['band']})",
               "Δ vs real (95% CI)", "p (Holm)"]  # fmt: skip
    rows = []
    for size in curve["sizes"]:
        for arm, point in curve["points"][str(size)].items():
            delta = point.get("delta")
            rows.append(
                [
                    str(size),
                    arm,
                    _pct(point["mean"]),
                    f"{_pct(point['low'])} to {_pct(point['high'])}",
                    delta_text(delta) if delta else "",
                    p_text(delta) if delta else "",
                ]
            )
    return _table(headers, rows, [True, False, True, True, True, True])


def seeds_markdown(summary: dict[str, Any]) -> list[str]:
    """A GAN over seeds: every metric per class, mean ± sd over GAN seeds."""
    headers, rows = summary_rows(summary)
    lines = _table(headers, rows, [False, *[True] * (len(headers) - 1)])
    seeds = ", ".join(map(str, summary["seeds"]))
    return [*lines, "", f"Mean ± sd over GAN seeds {seeds} (sd: n - 1)."]


def _side_folders(report: dict[str, Any]) -> dict[str, str]:
    """Each side's run folders, relative to what the two sides share, when they differ (runs of
    the same names in two studies, e.g. from scratch and pretrained); else none."""
    parents = {
        side: sorted({str(PurePosixPath(r["run_dir"]).parent) for r in report["runs"][side]})
        for side in ("A", "B")
        if all(r.get("run_dir") for r in report["runs"][side])
    }
    if len(parents) < 2 or parents["A"] == parents["B"]:
        return {}
    common = PurePosixPath(os.path.commonpath([p for ps in parents.values() for p in ps]))
    return {
        side: ", ".join(str(PurePosixPath(p).relative_to(common)) for p in ps)
        for side, ps in parents.items()
    }


def compare_markdown(report: dict[str, Any]) -> list[str]:
    """`cli compare` of two lists of runs (A, B): each side's test accuracy over its seeds, then
    B − A over seeds and test images with its p and verdict word, and the verdict sentence."""
    folders = _side_folders(report)
    headers = ["side", "runs", *(["folder"] if folders else []), "test acc % (mean ± sd)",
               "val acc % (mean)"]  # fmt: skip
    rows = []
    for side in ("A", "B"):
        seeds = report["seeds"][side]
        val = [r.get("val_acc") for r in report["runs"][side]]
        rows.append(
            [
                side,
                ", ".join(seeds["runs"]),
                *([folders[side]] if folders else []),
                _mean_sd(seeds["accuracy"]),
                _mean_val({"val_best": val}),
            ]
        )
    lines = _table(headers, rows, [False, False, *([False] if folders else []), True, True])
    over = report.get("over_seeds")
    if over:
        interval = over["interval"]
        word = over.get("verdict") or f"none ({len(report['pairs'])} seeds)"
        lines += [
            "",
            f"B − A over {len(report['pairs'])} seeds and {report['n_test']:,} test images: "
            f"{delta_text(interval)} points, p {p_text(interval, 'p_value')}; verdict: {word}.",
        ]
    return [*lines, "", report["verdict"]]


def render(source: Path) -> str:
    """The Markdown table of one JSON file (its kind told from its keys)."""
    data = json.loads(source.read_text(encoding="utf-8"))
    if "arms" in data and isinstance(data["arms"], dict) and "arms" in data["arms"]:
        lines = arms_markdown(data)
    elif "points" in data and "sizes" in data:
        lines = curve_markdown(data)
    elif "metrics" in data and "per_seed" in data:
        lines = seeds_markdown(data)
    elif str(data.get("format", "")).startswith("shoegan-compare/"):
        lines = compare_markdown(data)
    else:
        raise SystemExit(
            f"{source}: not a study, budget grid, learning curve, GAN seeds or compare JSON"
        )
    return "\n".join(lines) + "\n"


def regenerate(text: str, root: Path = ROOT) -> str:
    """``text`` with every marked table rendered again from its JSON."""

    def table(match: re.Match[str]) -> str:
        source = root / match["source"]
        if not source.is_file():
            raise SystemExit(f"{source}: missing; the table that names it cannot be made")
        return match.group(1) + render(source) + match.group(4)

    return MARKER.sub(table, text)


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report tables out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = regenerate(text)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "out of date" if args.check else "rewritten"
    for path in stale:
        print(f"{path.relative_to(ROOT)}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
