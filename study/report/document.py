"""The comparison report as Markdown and as one self-contained HTML file.

The content is built once, from the report.json dictionary, as a list of small blocks (heading,
paragraph, bullets, table, figure); two renderers turn the blocks into ``report.md`` (figures as PNG
files next to it) and ``report.html`` (figures embedded as base64 PNGs, inline CSS, no scripts), so
the two files can never disagree and every number shown is one written to report.json.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- blocks -------------------------------------------------------------------------------------


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    kind: str = ""  # "" | "verdict-better" | "verdict-worse" | "verdict-none" | "note"


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: list[bool] = field(default_factory=list)  # right-align these columns


@dataclass
class FigureBlock:
    file: str  # PNG name relative to the report folder
    caption: str


Block = Heading | Para | Bullets | Table | FigureBlock


# --- number formatting --------------------------------------------------------------------------


def pct(x: float | None) -> str:
    return "–" if not _num(x) else f"{100 * x:.2f}%"


def pts(x: float | None) -> str:
    """A difference of two proportions in percentage points."""
    return "–" if not _num(x) else f"{100 * x:+.2f} pts"


def num(x: float | None, digits: int = 4) -> str:
    return "–" if not _num(x) else f"{x:.{digits}f}"


def pval(p: float | None) -> str:
    if not _num(p):
        return "–"
    return "< 1e-6" if p < 1e-6 else f"{p:.3g}"


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _mean_sd(entry: dict[str, Any], scale: float = 100.0, unit: str = "%") -> str:
    return f"{scale * entry['mean']:.2f} ± {scale * entry['std']:.2f}{unit}"


# --- content ------------------------------------------------------------------------------------


def _side_text(report: dict[str, Any], side: str) -> str:
    run = report["runs"][side][0]
    images = run.get("train_images") or {}
    real, synthetic = images.get("real"), images.get("synthetic") or 0
    data = f"{real} real" if real is not None else "real"
    data += f" + {synthetic} synthetic training images" if synthetic else " training images only"
    seeds = report["sides"][side]
    more = f" (+{len(seeds) - 1} more seed(s): {', '.join(seeds[1:])})" if len(seeds) > 1 else ""
    return f"**{side}** = `{run['name']}`: {run['model']}, {data}{more}"


def _verdict_kind(pair: dict[str, Any]) -> str:
    if not pair["significant"]:
        return "verdict-none"
    return "verdict-better" if pair["bootstrap"]["delta"] > 0 else "verdict-worse"


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
            f"{confidence:.0%} bootstrap interval",
            f"{pts(boot['low'])} to {pts(boot['high'])} ({boot['resamples']:,} paired resamples)",
        ],
        ["both right / both wrong", f"{pair['both_correct']} / {pair['both_wrong']}"],
        ["only A right / only B right", f"{mc['only_a_correct']} / {mc['only_b_correct']}"],
        ["McNemar exact p (two-sided)", pval(mc["p_value"])],
    ]
    return Table(
        ["", f"{pair['a']} → {pair['b']}"],
        rows,
        f"Paired over the same {pair['n']} test images.",
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


def seeds_blocks(report: dict[str, Any]) -> list[Block]:
    seeds, pairs, deltas = report["seeds"], report["pairs"], report["deltas"]
    side_rows = [
        [
            side,
            str(seeds[side]["n"]),
            ", ".join(seeds[side]["runs"]),
            _mean_sd(seeds[side]["accuracy"]),
            _mean_sd(seeds[side]["macro_f1"], 1.0, ""),
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
    blocks: list[Block] = [
        Heading("Seeds"),
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
            f"Each pair tested on its own; delta over pairs {pts(deltas['delta_mean'])} ± "
            f"{100 * deltas['delta_std']:.2f} (mean ± sd). The headline verdict is the first "
            "pair's.",
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


def _fid_only(entry: Any) -> str:
    return num(entry.get("fid"), 2) if isinstance(entry, dict) else "–"


def _fid_cells(entry: Any) -> list[str]:
    """FID, KID x 10^3 (mean ± sd) and sample counts of one FidKidResult-like entry."""
    if _num(entry):
        return [f"{entry:.2f}", "–", "–"]
    if not isinstance(entry, dict):
        return ["–", "–", "–"]
    fid = entry.get("fid")
    kid, kid_sd = entry.get("kid_mean"), entry.get("kid_std")
    kid_text = "–"
    if _num(kid):
        kid_text = f"{1e3 * kid:.2f}" + (f" ± {1e3 * kid_sd:.2f}" if _num(kid_sd) else "")
    counts = " vs ".join(str(entry[k]) for k in ("n_a", "n_b") if k in entry) or "–"
    return [f"{fid:.2f}" if _num(fid) else "–", kid_text, counts]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if _num(value):
        return [(prefix, f"{value:.4g}")]
    return [(prefix, str(value))] if value is not None and not isinstance(value, list) else []


def synthetic_blocks(report: dict[str, Any]) -> list[Block]:
    sets = report.get("synthetic") or []
    if not sets:
        return []
    blocks: list[Block] = [Heading("Synthetic training data")]
    for index, entry in enumerate(sets):
        blocks.append(Heading(f"Used by {entry['run']}", 3))
        counts = entry.get("counts") or {}
        info = [
            f"folder: `{entry.get('folder') or entry.get('path')}`",
            f"GAN run: `{entry.get('gan_run') or '?'}`",
            "synthetic images per real image: "
            + ("all of them" if entry.get("ratio") is None else f"{entry['ratio']:g}"),
            "images used per class: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "?"),
        ]
        if entry.get("manifest_sha256"):
            info.append(f"manifest sha256 at training time: `{entry['manifest_sha256'][:16]}…`")
        blocks.append(Bullets(info + [f"note: {n}" for n in entry.get("notes", [])]))
        per_class = entry.get("fid_per_class") or {}
        floor = entry.get("real_vs_real") or {}
        untrained = entry.get("untrained") or {}
        if per_class or floor or entry.get("fid_overall") is not None:
            rows = []
            for name in report["class_names"]:
                if name in per_class or name in floor:
                    rows.append(
                        [
                            name,
                            *_fid_cells(per_class.get(name)),
                            *_fid_cells(floor.get(name)),
                            _fid_only(untrained.get(name)),
                        ]
                    )
            if entry.get("fid_overall") is not None:
                overall_floor = floor.get("overall") if isinstance(floor, dict) else None
                rows.append(
                    [
                        "all classes",
                        *_fid_cells(entry["fid_overall"]),
                        *_fid_cells(overall_floor),
                        _fid_only(entry.get("untrained_overall")),
                    ]
                )
            blocks.append(
                Table(
                    [
                        "class",
                        "FID",
                        "KID ×10³",
                        "images",
                        "real-vs-real FID",
                        "real-vs-real KID ×10³",
                        "images",
                        "untrained-G FID",
                    ],
                    rows,
                    "Synthetic vs real training images of each class (InceptionV3 pool features, "
                    "lower is closer). Real-vs-real: the same scores between two sets of real images "
                    "(the manifest's floor), about what a perfect generator would reach at that "
                    "sample size; untrained G: a generator of the same architecture at "
                    "initialisation, at the synthetic set's sample size (the other end of the "
                    "scale). FID is biased upward at a few hundred images: compare it only at "
                    "equal counts, and read KID (unbiased) beside it.",
                    [False, True, True, True, True, True, True, True],
                )
            )
        if entry.get("cas"):
            rows = [[k, v] for k, v in _flatten(entry["cas"])]
            blocks.append(
                Table(
                    ["Classification Accuracy Score", "value"],
                    rows,
                    "A classifier trained on synthetic images only, tested on the real "
                    "test set (Ravuri & Vinyals 2019).",
                    [False, True],
                )
            )
        key = f"synthetic_{index}"
        if key in report["figures"]:
            blocks.append(
                FigureBlock(
                    report["figures"][key], "Random synthetic images per class (seeded choice)."
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


def method_notes(report: dict[str, Any]) -> Bullets:
    settings = report["settings"]
    items = [
        "Pairing: predictions are matched by test file path; both runs must have predicted exactly "
        "the same files with the same classes, so every image is its own control.",
        f"Bootstrap: {report['resamples']:,} resamples of test images with replacement, pairs kept "
        f"together, percentile {report['confidence']:.0%} interval (seed {report['seed']}). It "
        "covers test-set sampling only, not training randomness: use several seeds for that.",
        "McNemar's exact test: only images exactly one model gets right carry information; under "
        "no difference each is equally likely to favour either model (two-sided binomial).",
        f"Significant means McNemar p < {report['alpha']} and an interval excluding zero.",
        f"Checkpoint: {settings['checkpoint']}; Grad-CAM method {settings['cam_method']}.",
    ]
    if len(report["pairs"]) > 1:
        items.append(
            "Several seeds: runs are paired in the order given (A_i with B_i); each pair gets its own "
            "bootstrap and McNemar test, the headline verdict is the first pair's, and mean ± sd "
            "over seeds shows the spread that training randomness alone produces."
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
        Para(report["verdict"], _verdict_kind(first)),
        Bullets([_side_text(report, "A"), _side_text(report, "B")]),
        Heading("Test metrics"),
        metrics_table(report),
        Heading("Is the difference real?"),
        stats_table(first, report["confidence"]),
    ]
    if len(report["runs"]["A"]) > 1 or len(report["runs"]["B"]) > 1:
        blocks += seeds_blocks(report)
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


# --- renderers ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, blocks: Sequence[Block], meta: str = "") -> str:
    lines = [f"# {title}", ""] + ([f"*{meta}*", ""] if meta else [])
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [f"> **{block.text}**" if block.kind.startswith("verdict") else block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            align = [
                ("---:" if block.numeric[i] else "---") if i < len(block.numeric) else "---"
                for i in range(len(block.headers))
            ]
            lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            lines.append("| " + " | ".join(align) + " |")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines += [""] + ([f"*{block.caption}*", ""] if block.caption else [])
        elif isinstance(block, FigureBlock):
            lines += [f"![{block.caption}]({block.file})", "", f"*{block.caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  max-width: 1120px; margin: 2rem auto; padding: 0 1.2rem; color: #1f2328; line-height: 1.5; }
h1 { font-size: 1.7rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #eaeef2; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
code { background: #f3f4f6; padding: .05rem .3rem; border-radius: 4px; font-size: .92em; }
table { border-collapse: collapse; margin: .6rem 0 .2rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .65rem; }
th { background: #f6f8fa; text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.caption { color: #57606a; font-size: .85rem; margin: .1rem 0 1rem; max-width: 60rem; }
.verdict { padding: .8rem 1rem; border-radius: 6px; font-weight: 600; border-left: 6px solid; }
.verdict-better { background: #e9f7ee; border-color: #1a7f37; }
.verdict-worse { background: #fdecea; border-color: #c62828; }
.verdict-none { background: #f3f4f6; border-color: #8c959f; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: .85rem; margin-top: .3rem; }
.meta { color: #57606a; font-size: .85rem; }
"""


def _inline(text: str) -> str:
    """HTML-escape, then turn the two Markdown marks used in the content (`code`, **bold**)."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(title: str, blocks: Sequence[Block], folder: Path, meta: str = "") -> str:
    """A single HTML file: figures from ``folder`` embedded as base64 PNGs."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    if meta:
        body.append(f'<p class="meta">{_inline(meta)}</p>')
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            cls = f"verdict {block.kind}" if block.kind.startswith("verdict") else block.kind
            body.append(
                f'<p class="{cls}">{_inline(block.text)}</p>'
                if cls
                else f"<p>{_inline(block.text)}</p>"
            )
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):

            def cell(tag: str, text: str, i: int, numeric: Sequence[bool] = block.numeric) -> str:
                cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
                return f"<{tag}{cls}>{_inline(text)}</{tag}>"

            head = "".join(cell("th", h, i) for i, h in enumerate(block.headers))
            rows = "".join(
                "<tr>" + "".join(cell("td", c, i) for i, c in enumerate(row)) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            if block.caption:
                body.append(f'<p class="caption">{_inline(block.caption)}</p>')
        elif isinstance(block, FigureBlock):
            path = Path(folder) / block.file
            if path.is_file():
                body.append(
                    f'<figure><img src="{_png_data_uri(path)}" alt="{html.escape(block.caption)}">'
                    f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
                )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def report_title(report: dict[str, Any]) -> str:
    return f"{report['sides']['A'][0]} vs {report['sides']['B'][0]}"


def report_meta(report: dict[str, Any]) -> str:
    return (
        f"Generated {report['created']} by `cli compare`; all numbers are in report.json "
        "next to this file."
    )
