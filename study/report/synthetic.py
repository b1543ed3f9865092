"""The report's synthetic-data section: for each synthetic set a run trained on, where it came
from, its FID / KID per class beside the real-vs-real floor and an untrained generator, its
Classification Accuracy Score (Ravuri & Vinyals 2019) and a grid of sample images."""

from __future__ import annotations

from typing import Any

from study.report.model import MISSING, Block, Bullets, FigureBlock, Heading, Table, is_number, num

FID_CAPTION = (
    "Synthetic vs real training images of each class (InceptionV3 pool features, "
    "lower is closer). Real-vs-real: the same scores between two sets of real images "
    "(the manifest's floor), about what a perfect generator would reach at that "
    "sample size; untrained G: a generator of the same architecture at "
    "initialisation, at the synthetic set's sample size (the other end of the "
    "scale). FID is biased upward at a few hundred images: compare it only at "
    "equal counts, and read KID (unbiased) beside it."
)


def split_note(run: str, synthetic: Any) -> str | None:
    """A warning when ``run``'s synthetic set (its config.json ``synthetic`` entry) may have seen
    the run's validation images: its generator trained on every ``train/`` image
    (``--use-all-train``), or the set records no split to check; None when it was held out."""
    split = synthetic.get("split") if isinstance(synthetic, dict) else None
    if not isinstance(split, dict):
        return None
    if not split.get("recorded", True):
        return (
            f"`{run}`: its synthetic set records no split, so whether its generator saw this "
            "run's validation images cannot be checked; validation accuracy (the best epoch, the "
            "budget, the best arm) may flatter it."
        )
    if split.get("held_out", True):
        return None
    seen = split.get("validation_seen")
    return (
        f"`{run}`: its synthetic set comes from a generator trained on every `train/` image "
        f"(`cli gan-train --use-all-train`), {seen if seen is not None else 'some'} of this run's "
        "validation images among them: validation accuracy (the best epoch, the budget, the best "
        "arm) flatters the synthetic images and cannot choose fairly."
    )


def split_notes(runs: list[dict[str, Any]]) -> list[str]:
    """:func:`split_note` of every run (``name`` and ``synthetic`` keys) that has one."""
    notes = (split_note(str(r.get("name")), r.get("synthetic")) for r in runs)
    return [note for note in notes if note]


def _fid_only(entry: Any) -> str:
    return num(entry.get("fid"), 2) if isinstance(entry, dict) else MISSING


def _fid_cells(entry: Any) -> list[str]:
    """FID, KID x 10^3 (mean ± sd) and sample counts of one FidKidResult-like entry."""
    if is_number(entry):
        return [f"{entry:.2f}", MISSING, MISSING]
    if not isinstance(entry, dict):
        return [MISSING, MISSING, MISSING]
    fid = entry.get("fid")
    kid, kid_sd = entry.get("kid_mean"), entry.get("kid_std")
    kid_text = MISSING
    if is_number(kid):
        kid_text = f"{1e3 * kid:.2f}" + (f" ± {1e3 * kid_sd:.2f}" if is_number(kid_sd) else "")
    counts = " vs ".join(str(entry[k]) for k in ("n_a", "n_b") if k in entry) or MISSING
    return [f"{fid:.2f}" if is_number(fid) else MISSING, kid_text, counts]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if is_number(value):
        return [(prefix, f"{value:.4g}")]
    return [(prefix, str(value))] if value is not None and not isinstance(value, list) else []


def synthetic_blocks(report: dict[str, Any]) -> list[Block]:
    sets = report.get("synthetic") or []
    if not sets:
        return []
    blocks: list[Block] = [Heading("Synthetic training data")]
    for index, entry in enumerate(sets):
        blocks += _set_blocks(report, index, entry)
    return blocks


def _set_blocks(report: dict[str, Any], index: int, entry: dict[str, Any]) -> list[Block]:
    """One synthetic set: provenance, FID/KID table, CAS table and the sample grid."""
    blocks: list[Block] = [Heading(f"Used by {entry['run']}", 3), _provenance(entry)]
    for table in (
        _fid_table(entry, report["class_names"]),
        _diversity_table(entry, report["class_names"]),
    ):
        if table is not None:
            blocks.append(table)
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


def _provenance(entry: dict[str, Any]) -> Bullets:
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
    return Bullets(info + [f"note: {n}" for n in entry.get("notes", [])])


def _fid_table(entry: dict[str, Any], class_names: list[str]) -> Table | None:
    """FID / KID per class and overall, beside the floor and the untrained generator (None when
    the set has no scores)."""
    per_class = entry.get("fid_per_class") or {}
    floor = entry.get("real_vs_real") or {}
    untrained = entry.get("untrained") or {}
    if not (per_class or floor or entry.get("fid_overall") is not None):
        return None
    rows = [
        [
            name,
            *_fid_cells(per_class.get(name)),
            *_fid_cells(floor.get(name)),
            _fid_only(untrained.get(name)),
        ]
        for name in class_names
        if name in per_class or name in floor
    ]
    if entry.get("fid_overall") is not None:
        overall_floor = entry.get("real_vs_real_overall")
        rows.append(
            [
                "all classes",
                *_fid_cells(entry["fid_overall"]),
                *_fid_cells(overall_floor),
                _fid_only(entry.get("untrained_overall")),
            ]
        )
    headers = ["class", "FID", "KID ×10³", "images", "real-vs-real FID", "real-vs-real KID ×10³",
               "images", "untrained-G FID"]  # fmt: skip
    return Table(headers, rows, FID_CAPTION, [False, *[True] * 7])


DIVERSITY = ("precision", "recall", "density", "coverage")
DIVERSITY_CAPTION = (
    "On the same InceptionV3 features, real training images as the reference: precision "
    "(Kynkäänniemi et al. 2019: share of synthetic images inside the real k-NN balls, i.e. "
    "fidelity) and recall (share of real images inside the synthetic balls, i.e. variety); "
    "density and coverage (Naeem et al. 2020: real balls only, robust to outliers). A set "
    "scores 1 against itself; low recall or coverage means missing modes (mode collapse). "
    "The real-vs-real columns are what real test images score at the same sample size."
)


def _diversity_cells(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return [MISSING] * len(DIVERSITY)
    return [num(entry.get(k), 3) for k in DIVERSITY]


def _diversity_table(entry: dict[str, Any], class_names: list[str]) -> Table | None:
    """Precision / recall / density / coverage per class and overall, beside the floor's (None
    when the manifest predates them)."""
    per_class = entry.get("fid_per_class") or {}
    floor = entry.get("real_vs_real") or {}
    overall = entry.get("fid_overall")
    scored = [*per_class.values(), overall]
    if not any(isinstance(s, dict) and is_number(s.get("recall")) for s in scored):
        return None
    rows = [
        [name, *_diversity_cells(per_class.get(name)), *_diversity_cells(floor.get(name))]
        for name in class_names
        if name in per_class
    ]
    if overall is not None:
        rows.append(
            [
                "all classes",
                *_diversity_cells(overall),
                *_diversity_cells(entry.get("real_vs_real_overall")),
            ]  # fmt: skip
        )
    headers = ["class", *DIVERSITY, *(f"real-vs-real {k}" for k in DIVERSITY)]
    return Table(headers, rows, DIVERSITY_CAPTION, [False, *[True] * 8])
