"""The study's arms: named training recipes of the best architecture, each set against ``real``.

An arm is ``real`` plus ``+``-joined parts: ``gan`` (the study's synthetic set, by the recipe of
``--gan-recipe``, :mod:`study.pipeline.recipes`; modifiers after colons change it, e.g.
``gan:teacher:separate-bn``) and classical augmentations of ``--augment`` (``trivialaugment``,
``randaugment``, ``autoaugment``, ``mixup``, ``cutmix``; Müller & Hutter 2021, Cubuk et al.
2019/2020, Zhang et al. 2018, Yun et al. 2019), e.g. ``real+trivialaugment`` or
``real+gan:teacher+mixup``. Every arm trains the seed's baseline config (same architecture, seed,
hyper-parameters and epochs; the crop and flip of the baseline kept), changing only what its name
says; under the default ``separate`` recipe every real image is presented as often as in the
baseline (a ``finetune`` arm adds its real-only epochs after). ``real`` is the baseline itself and
``real+gan`` is the augmented run, so a study with the default arms is the study as before.
``real:finetune`` is the baseline with ``+gan:finetune``'s real-only epochs added (Hennicke et al.
2024's second phase without the synthetic first one): the control that says whether a finetune
arm's gain comes from the synthetic images or from the extra phase.

The table (:func:`arm_table`) compares each arm with ``real`` (Dietterich 1998 for the paired
tests): per seed the paired bootstrap interval of the accuracy delta and McNemar's exact test;
pooled over seeds a paired bootstrap that resamples test images (the same draw for every seed) and
averages the seeds' deltas, its interval and a two-sided bootstrap p-value (twice the smaller tail
mass beyond 0); Holm's step-down adjustment of those p-values across arms (Holm 1979). The verdict
names the arm with the highest mean validation accuracy (the test set only reports) and says
whether its pooled test interval excludes 0. Choices are never made on test numbers: the
architecture was picked on validation accuracy before any arm ran. Each row also carries the
arm's recipe and images shown, read from its runs' config.json (:mod:`study.pipeline.arm_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from classify.augment_spec import MIXES, POLICIES, parse_augment
from classify.training.config import TrainConfig
from core.errors import UserError
from study.pipeline.recipes import (
    DEFAULT_GAN_RECIPE,
    MODIFIERS,
    TAGS,
    GanRecipe,
    SyntheticImages,
    finetune_epochs,
    gan_config,
    gan_suffix,
    parse_modifiers,
)

REAL, GAN = "real", "gan"
# ``real:finetune``: the real-only control of ``+gan:finetune`` (the same extra real-only epochs at
# the same small learning rate after the baseline's, no synthetic image), so that a finetune arm's
# gain can be told apart from what the extra phase alone does.
REAL_FINETUNE = "finetune"
DEFAULT_ARMS = (REAL, "real+gan")
CLASSICAL = (*POLICIES, *MIXES)
USAGE = (
    f"an arm is real (or real:{REAL_FINETUNE}, its real-only fine-tuning control), then +gan "
    f"(optionally :{':'.join(MODIFIERS)} after it) and/or +{'|+'.join(CLASSICAL)}, e.g. "
    "real+gan+trivialaugment or real+gan:teacher:separate-bn"
)


def real_finetune(arm: str) -> bool:
    """Whether ``arm`` is ``real:finetune`` (+ classical parts): the baseline with the finetune
    recipe's real-only epochs added and no synthetic image; a one-line error for another
    modifier on ``real`` or for ``real:finetune`` with ``+gan`` (use ``+gan:finetune``)."""
    head, *parts = [p.strip() for p in arm.split("+")]
    modifiers = [m.strip() for m in head.split(":")[1:]]
    if not modifiers:
        return False
    if modifiers != [REAL_FINETUNE]:
        raise UserError(f"--arms: {arm!r}: real takes :{REAL_FINETUNE} only; {USAGE}")
    if any(p.split(":")[0].strip() == GAN for p in parts):
        raise UserError(
            f"--arms: {arm!r}: real:{REAL_FINETUNE} is the real-only control; with the GAN's "
            f"images write real+gan:{REAL_FINETUNE}"
        )
    return True


def parse_arm(
    arm: str, gan_recipe: str = DEFAULT_GAN_RECIPE
) -> tuple[GanRecipe | None, tuple[str, ...]]:
    """``(the GAN recipe, or None for an arm without the GAN's images; classical parts)``; a
    one-line error for a malformed arm. ``gan_recipe``: the study's ``--gan-recipe``."""
    head, *parts = [p.strip() for p in arm.split("+")]
    names = [p.split(":")[0].strip() for p in parts]
    unknown = [p for p in names if p != GAN and p not in CLASSICAL]
    if head.split(":")[0].strip() != REAL or unknown or len(set(names)) != len(names):
        raise UserError(f"--arms: {arm!r} is not an arm; {USAGE}")
    recipe = None
    for part, name in zip(parts, names, strict=True):
        modifiers = [m.strip() for m in part.split(":")[1:]]
        if name != GAN and modifiers:
            raise UserError(f"--arms: {arm!r}: modifiers go on +gan only, not on {name}; {USAGE}")
        if name == GAN:
            recipe = parse_modifiers(arm, modifiers, gan_recipe)
    classical = tuple(p for p in names if p != GAN)
    if classical:
        parse_augment(",".join(classical))  # e.g. two policies: refused with the reason
    real_finetune(arm)  # a bad modifier on real: refused
    return recipe, classical


def parse_arms(text: str | Sequence[str], gan_recipe: str = DEFAULT_GAN_RECIPE) -> tuple[str, ...]:
    """The arms of ``--arms`` (``real`` first, always there), each validated; two spellings of
    one recipe (``real+gan`` and ``real+gan:separate`` by default) are refused like a repeat."""
    names = [a.strip() for a in (text.split(",") if isinstance(text, str) else text) if a.strip()]
    runs: dict[str, str] = {}
    for arm in names:
        suffix = arm_suffix(arm, None, gan_recipe)
        if suffix in runs:
            same = "is named twice" if runs[suffix] == arm else f"is {runs[suffix]!r} spelled again"
            raise UserError(f"--arms {','.join(names)}: {arm!r} {same} (the same recipe)")
        runs[suffix] = arm
    if REAL not in names:
        raise UserError(f"--arms {','.join(names)}: must include real (the arm the others face)")
    return (REAL, *[a for a in names if a != REAL])


def arm_suffix(arm: str, ratio: float | None = None, gan_recipe: str = DEFAULT_GAN_RECIPE) -> str:
    """The run-name suffix of an arm after the baseline's name (``real+gan``: the augmented run's
    ``-aug``; ``real+gan:teacher:separate-bn+mixup``: ``-aug-teacher-sepbn-mixup``;
    ``real+trivialaugment``: ``-trivialaugment``; :func:`study.pipeline.recipes.gan_suffix`)."""
    recipe, classical = parse_arm(arm, gan_recipe)
    gan = gan_suffix(recipe, ratio) if recipe is not None else ""
    head = f"-{TAGS[REAL_FINETUNE]}" if real_finetune(arm) else ""
    return head + gan + "".join(f"-{p}" for p in classical)


def arm_config(
    baseline: TrainConfig,
    images: SyntheticImages | None,
    arm: str,
    name: str,
    *,
    gan_recipe: str = DEFAULT_GAN_RECIPE,
    teacher: str | None = None,
) -> TrainConfig:
    """The arm's training config: the baseline's, with the synthetic ``images`` by the arm's GAN
    recipe (GAN arms; ``teacher``: the seed's real run) and the arm's classical augmentations added
    to the baseline's crop."""
    recipe, classical = parse_arm(arm, gan_recipe)
    if recipe is not None and images is None:
        raise UserError(f"--arms {arm}: needs the synthetic set (the GAN steps)")
    if recipe is not None and images is not None:
        base = gan_config(baseline, images, recipe, name, teacher)
    else:
        base = replace(baseline, name=name)
    if real_finetune(arm):
        base = replace(base, finetune_real_epochs=finetune_epochs(baseline.epochs))
    if not classical:
        return base
    crop = parse_augment(baseline.augment).crop
    return replace(base, augment=",".join((crop, *classical)))


def arm_table(
    runs: dict[str, list[Any]], *, resamples: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Each arm against ``real``; ``runs``: arm -> the seeds' :class:`RunResult` (same order)."""
    from study.compare.numbers import holm_adjust
    from study.compare.runs import align, check_pairable, correct
    from study.pipeline.arm_figures import summed_confusion
    from study.pipeline.arm_report import arm_training, budget_rule
    from study.stats import bootstrap_delta, mcnemar_exact, mean_std, t_interval

    real = runs[REAL]
    reference = real[0]
    rows: dict[str, Any] = {}
    for arm, arm_runs in runs.items():
        for run in arm_runs:
            check_pairable(reference, run)
        accuracy = [
            float(correct(align(reference.predictions, r.predictions)).mean()) for r in arm_runs
        ]
        mean, std = mean_std(accuracy)
        rows[arm] = {
            "runs": [r.name for r in arm_runs],
            "accuracy": accuracy,
            "mean": mean,
            "std": std,
        }
        if arm == REAL:
            continue
        pairs = list(zip(real, arm_runs, strict=False))
        a = np.stack([correct(align(reference.predictions, x.predictions)) for x, _ in pairs])
        b = np.stack([correct(align(reference.predictions, y.predictions)) for _, y in pairs])
        rows[arm]["per_seed"] = [
            {
                "delta": bootstrap_delta(a[i], b[i], resamples=resamples, seed=seed).to_dict(),
                "mcnemar": mcnemar_exact(a[i], b[i]).to_dict(),
            }
            for i in range(len(pairs))
        ]
        rows[arm]["pooled"] = pooled_bootstrap(a, b, resamples=resamples, seed=seed)
        deltas = [s["delta"]["delta"] for s in rows[arm]["per_seed"]]
        if len(deltas) > 1:  # seed-to-seed variation, which the pooled bootstrap leaves out
            low, high = t_interval(deltas)
            rows[arm]["over_seeds"] = {"low": low, "high": high, "seeds": len(deltas)}
    others = [arm for arm in runs if arm != REAL]
    for arm, p in zip(
        others, holm_adjust([rows[a]["pooled"]["p_value"] for a in others]), strict=True
    ):
        rows[arm]["pooled"]["p_holm"] = p
    for arm, arm_runs in runs.items():
        rows[arm].update(arm_training(arm_runs), confusion=summed_confusion(arm_runs))
    return {
        "arms": rows,
        "class_names": reference.class_names,
        "n_test": int(reference.predictions.true.size),
        "verdict": arm_verdict(rows),
        "budget": budget_rule(rows),
    }


def pooled_bootstrap(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, seed: int = 0, chunk: int = 500
) -> dict[str, float]:
    """Paired bootstrap over seeds: ``a``, ``b`` are seeds x images correctness; each resample
    draws test images once (with replacement) for every seed and averages the seeds' deltas."""
    diff = b.astype(np.int8) - a.astype(np.int8)
    n = diff.shape[1]
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        deltas[start : start + len(idx)] = diff[:, idx].mean(axis=(0, 2))
    low, high = np.quantile(deltas, [0.025, 0.975])
    tail = min(float((deltas <= 0).mean()), float((deltas >= 0).mean()))
    return {
        "delta": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "p_value": min(1.0, 2 * tail),
        "seeds": int(diff.shape[0]),
        "resamples": resamples,
    }


def p_text(pooled: dict[str, Any], key: str = "p_holm") -> str:
    """A bootstrap p-value as text: below its resolution it reads ``< 1/resamples``."""
    p = pooled[key]
    return f"< {1 / pooled['resamples']:.0e}" if p == 0 else f"{p:.3g}"


def delta_text(pooled: dict[str, Any]) -> str:
    """A delta and its interval in points: ``+1.23 (+0.45 to +2.01)``."""
    d, low, high = (100 * pooled[k] for k in ("delta", "low", "high"))
    return f"{d:+.2f} ({low:+.2f} to {high:+.2f})"


def mean_val(row: dict[str, Any]) -> float | None:
    """An arm's mean over seeds of its runs' best validation accuracy (None: not known)."""
    values = row.get("val_best") or []
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def arm_verdict(rows: dict[str, Any]) -> str:
    """The best arm, chosen on validation accuracy (mean over seeds of the best epoch's; ties to
    the earlier arm, so to ``real``), and its test delta; by mean test accuracy only when an arm
    has no validation split (said so)."""
    vals = {arm: mean_val(row) for arm, row in rows.items()}
    if all(v is not None for v in vals.values()):
        best = max(rows, key=lambda arm: vals[arm])  # max keeps the first of equals
        how = f"validation accuracy ({100 * vals[best]:.2f}%, mean over seeds)"
    else:
        best = max(rows, key=lambda arm: rows[arm]["mean"])
        how = "mean test accuracy (no validation split to choose on)"
    if best == REAL:
        return (
            f"Best arm by {how}: real only; no arm is chosen over it (test "
            f"{100 * rows[REAL]['mean']:.2f}%)."
        )
    pooled = rows[best]["pooled"]
    delta, low, high = (100 * pooled[k] for k in ("delta", "low", "high"))
    where = "above 0" if low > 0 else ("below 0" if high < 0 else "includes 0")
    return (
        f"Best arm by {how}: {best}; on test {100 * rows[best]['mean']:.2f}% vs "
        f"{100 * rows[REAL]['mean']:.2f}% for real only, {delta:+.2f} points, pooled 95% CI "
        f"{low:+.2f} to {high:+.2f} ({where}), Holm-adjusted p {p_text(pooled)}."
    )


ARM_HEADERS = ["arm", "test acc % (mean ± sd)", "Δ vs real, pooled (95% CI)", "p (Holm)",
               "Δ over seeds (95% t)", "McNemar p per seed"]  # fmt: skip


def arm_rows(table: dict[str, Any]) -> list[list[str]]:
    """One row of cells per arm (``real`` first, its comparison cells empty)."""
    rows = []
    for arm, row in table["arms"].items():
        cells = [arm, f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}"]
        if arm == REAL:
            cells += ["", "", "", ""]
        else:
            p, t = row["pooled"], row.get("over_seeds")
            cells += [
                delta_text(p),
                p_text(p),
                f"{100 * t['low']:+.2f} to {100 * t['high']:+.2f}" if t else "–",
                ", ".join(f"{s['mcnemar']['p_value']:.3g}" for s in row["per_seed"]),
            ]
        rows.append(cells)
    return rows
