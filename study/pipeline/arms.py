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

The table (:func:`arm_table`) compares each arm with ``real``, the runs paired by training seed
(:func:`study.compare.runs.pair_by_seed`): the headline is the delta over seeds *and* test images
with its 95% t-interval and p-value (:func:`study.stats.seed_interval`, whose docstring says why
this interval), Holm-adjusted across arms (Holm 1979), and a verdict that follows it: ``better`` or
``worse`` when it excludes 0 (and the Holm-adjusted p is below 0.05), ``not established`` when not;
with fewer than three seeds no verdict about the method at all (``None``), only whether the
trained models differ on this test set. Beside it, test-set noise only (the trained models held
fixed; Dietterich 1998 for the paired tests): per seed the paired bootstrap and McNemar's exact
test, and pooled over seeds a paired bootstrap of test images (:func:`study.stats.pooled_bootstrap`).
The overall verdict names the arm with the highest mean validation accuracy (the test set only
reports): the architecture was picked on validation accuracy before any arm ran. Each row also
carries the arm's recipe and images shown, read from its runs' config.json
(:mod:`study.pipeline.arm_report`); the report renders the table (:mod:`study.report.arms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from classify.classical.spec import parse_augment
from classify.names import MIXES, POLICIES
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
from study.stats import MIN_SEEDS

REAL, GAN = "real", "gan"
# ``real:finetune``: the real-only control of ``+gan:finetune`` (the same extra real-only epochs at
# the same small learning rate after the baseline's, no synthetic image), so that a finetune arm's
# gain can be told apart from what the extra phase alone does.
REAL_FINETUNE = "finetune"
DEFAULT_ARMS = (REAL, "real+gan")
MORE_SEEDS = "rerun the same cli pipeline command with --seeds 3 (finished runs are kept)"
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
    """Each arm against ``real``; ``runs``: arm -> its :class:`RunResult` (one per seed), paired
    with real's by training seed (a missing, extra or repeated seed: a UserError naming the runs)."""
    from study.compare.numbers import holm_adjust
    from study.compare.runs import align, check_pairable, correct, pair_by_seed
    from study.pipeline.arm_figures import summed_confusion
    from study.pipeline.arm_report import arm_training, budget_rule
    from study.stats import mean_std, method_word, paired_seeds

    reference = runs[REAL][0]
    rows: dict[str, Any] = {}
    for arm, arm_runs in runs.items():
        for run in arm_runs:
            check_pairable(reference, run)
        pairs = pair_by_seed(runs[REAL], arm_runs, (REAL, arm))
        a = np.stack([correct(align(reference.predictions, x.predictions)) for x, _ in pairs])
        b = np.stack([correct(align(reference.predictions, y.predictions)) for _, y in pairs])
        mean, std = mean_std([float(v) for v in b.mean(axis=1)])
        ordered = [y for _, y in pairs]  # the arm's runs in seed order
        rows[arm] = {
            "runs": [r.name for r in ordered],
            "seeds": [r.seed for r in ordered],
            "accuracy": [float(v) for v in b.mean(axis=1)],
            "mean": mean,
            "std": std,
        }
        if arm != REAL:
            rows[arm].update(paired_seeds(a, b, resamples=resamples, seed=seed))
            for entry, (x, _) in zip(rows[arm]["per_seed"], pairs, strict=True):
                entry["seed"] = x.seed
        rows[arm].update(arm_training(ordered), confusion=summed_confusion(ordered))
    others = [arm for arm in runs if arm != REAL]
    for key in ("interval", "test_only"):
        family = [arm for arm in others if rows[arm].get(key)]
        adjusted = holm_adjust([rows[arm][key]["p_value"] for arm in family])
        for arm, p in zip(family, adjusted, strict=True):
            rows[arm][key]["p_holm"] = p
    seeds = len(rows[REAL]["accuracy"])
    for arm in others:
        interval = rows[arm]["interval"]
        enough = seeds >= MIN_SEEDS and interval is not None
        rows[arm]["verdict"] = method_word(interval, interval["p_holm"]) if enough else None
    return {
        "arms": rows,
        "reference": REAL,
        "seeds": seeds,
        "class_names": reference.class_names,
        "n_test": int(reference.predictions.true.size),
        "verdict": arm_verdict(rows),
        "cam_choice": cam_choice(rows),
        "budget": budget_rule(rows),
    }


def headline(row: dict[str, Any]) -> dict[str, Any] | None:
    """An arm's headline delta: over seeds and test images (two seeds or more), else the
    test-only interval; ``source`` says which. None for ``real``."""
    if row.get("interval"):
        return {**row["interval"], "source": "seeds and test images"}
    if row.get("test_only"):
        return {**row["test_only"], "source": "test images only"}
    return None


def mean_val(row: dict[str, Any]) -> float | None:
    """An arm's mean over seeds of its runs' best validation accuracy (None: not known)."""
    values = row.get("val_best") or []
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def best_arm(rows: dict[str, Any], among: Sequence[str] | None = None) -> tuple[str, str]:
    """The best of ``among`` (all arms by default) and how it was chosen: by mean validation
    accuracy over seeds (ties to the earlier arm, so to ``real``); by mean test accuracy only when
    an arm has no validation split (said so)."""
    arms = list(among if among is not None else rows)
    vals = {arm: mean_val(row) for arm, row in rows.items()}
    if all(v is not None for v in vals.values()):
        best = max(arms, key=lambda arm: vals[arm])  # max keeps the first of equals
        return best, f"validation accuracy ({100 * vals[best]:.2f}%, mean over seeds)"
    best = max(arms, key=lambda arm: rows[arm]["mean"])
    return best, "mean test accuracy (no validation split to choose on)"


def arm_verdict(rows: dict[str, Any]) -> str:
    """The best arm (:func:`best_arm`; the test set never chooses) and what its comparison with
    ``real`` says: with three seeds or more the verdict about the method, following the interval
    over seeds and test images and its Holm-adjusted p; with fewer, whether the trained models
    differ on this test set, and the command that runs more seeds."""
    from study.stats import seed_count, seeds_verdict

    best, how = best_arm(rows)
    seeds = len(rows[REAL]["accuracy"])
    if best == REAL:
        text = (
            f"Best arm by {how}: real only; no arm is chosen over it (test "
            f"{100 * rows[REAL]['mean']:.2f}%)."
        )
        if seeds < MIN_SEEDS:
            text += (
                f" {seed_count(seeds)} cannot tell whether any method does better: {MORE_SEEDS}."
            )
        return text
    row = rows[best]
    return (
        f"Best arm by {how}: {best}; on test {100 * row['mean']:.2f}% vs "
        f"{100 * rows[REAL]['mean']:.2f}% for real only. "
    ) + seeds_verdict(best, "real only", seeds=seeds, interval=row.get("interval"),
                      test_only=row["test_only"], more_seeds=MORE_SEEDS, p_key="p_holm")  # fmt: skip


def cam_choice(rows: dict[str, Any]) -> dict[str, str] | None:
    """The arm whose Grad-CAM is set against real's (:mod:`study.pipeline.arm_figures`), chosen
    as the verdict chooses, and why; when real itself is the best arm, the runner-up (real
    against itself explains nothing); None when real is the only arm."""
    others = [arm for arm in rows if arm != REAL]
    if not others:
        return None
    best, how = best_arm(rows)
    by = "validation accuracy" if how.startswith("validation") else "mean test accuracy"
    by += "" if how.startswith("validation") else " (no validation split)"
    if best == REAL:
        runner_up, _ = best_arm(rows, others)
        return {"arm": runner_up, "why": f"the best arm other than real by {by} (real itself is "
                "the best)"}  # fmt: skip
    return {"arm": best, "why": f"the best arm by {by}"}
