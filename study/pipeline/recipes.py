"""How the study's GAN arms train on the synthetic set (the recipes of
:mod:`classify.training.synthetic_exposure`), named by ``--gan-recipe`` and by an arm's ``+gan:`` modifiers.

Two recipes (``--gan-recipe``, the recipe of the augmented run and of every ``+gan`` arm):

- ``separate`` (the default): real exposure held fixed (He et al. 2023, "Is synthetic data from
  generative models ready for image recognition?", ICLR). Every step takes the baseline's real
  batch (same permutation, steps, epochs and augmentation) plus a synthetic batch of the
  baseline's batch size (capped at the synthetic set's size), ``--synthetic-batch B``: each real
  image is presented exactly as often as in the baseline, one synthetic image beside each real one.
- ``mixed`` (the study's recipe before, kept to reproduce older studies): the synthetic images join
  the real ones in one set and each epoch draws as many images as the baseline's epoch had
  (``--epoch-size n_real``): the baseline's optimizer steps, but each real image is seen only
  ``n_real / (n_real + n_synthetic)`` as often (with 500 synthetic per class, ~29%). Its runs and
  report carry ``-mixed`` in their names.

Modifiers after ``gan`` (``real+gan:teacher:separate-bn+trivialaugment``), in any order, once each:

- ``teacher``: ``--synthetic-labels teacher --teacher <the seed's real baseline>`` (knowledge
  distillation, Hinton, Vinyals & Dean 2015): that run trained on real images with the same seed
  and validation split, so it never saw this run's validation images; default temperature.
- ``separate-bn``: ``--synthetic-bn separate``, an auxiliary BatchNorm for the synthetic batch
  (AdvProp, Xie et al. 2020); needs the separate recipe.
- ``finetune``: ``--finetune-real-epochs K`` with K = max(1, round(epochs / 4)) (halves round up)
  after the baseline's epochs, at the default ``--finetune-lr`` (Hennicke et al. 2024, "Mind the
  Gap Between Synthetic and Real").
- ``w<N>``: ``--synthetic-weight N`` (N >= 0, e.g. ``w0.5``).
- ``mixed`` / ``separate``: this arm's recipe instead of ``--gan-recipe``'s.

A run's name says its recipe: ``-aug`` (then ``-mixed`` for that recipe, ``-r<R>`` for a synthetic
ratio), then ``-teacher``, ``-sepbn``, ``-ft``, ``-w<N>`` in that order, whatever order the arm
named them in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from classify.training.config import TrainConfig
from core.errors import UserError

SEPARATE, MIXED = "separate", "mixed"
GAN_RECIPES = (SEPARATE, MIXED)
DEFAULT_GAN_RECIPE = SEPARATE
FLAGS = ("teacher", "separate-bn", "finetune")
MODIFIERS = (*FLAGS, MIXED, SEPARATE, "w<N>")
MODIFIER_USAGE = f"modifiers of +gan: :{', :'.join(MODIFIERS)} (a loss weight >= 0, e.g. :w0.5)"
FINETUNE_SHARE = 0.25  # finetune epochs per main epoch of the baseline
TAGS = {"teacher": "teacher", "separate-bn": "sepbn", "finetune": "ft"}


@dataclass(frozen=True)
class GanRecipe:
    """One GAN arm's recipe: the mode (separate / mixed) and its modifiers."""

    mode: str = DEFAULT_GAN_RECIPE
    teacher: bool = False
    separate_bn: bool = False
    finetune: bool = False
    weight: float = 1.0

    def tags(self) -> list[str]:
        """The modifiers' run-name parts, in a fixed order (the mode's is :func:`gan_suffix`'s)."""
        flags = {
            "teacher": self.teacher,
            "separate-bn": self.separate_bn,
            "finetune": self.finetune,
        }
        out = [TAGS[name] for name, on in flags.items() if on]
        return out + ([f"w{self.weight:g}"] if self.weight != 1 else [])


@dataclass(frozen=True)
class SyntheticImages:
    """The study's synthetic set as a GAN arm of one seed takes it."""

    path: str
    ratio: float | None  # synthetic images per real one; None: all of them
    n_real: int  # the baseline's real training images
    n_synthetic: int  # the synthetic images the run takes


def gan_suffix(recipe: GanRecipe, ratio: float | None) -> str:
    """A GAN recipe's run-name suffix: ``-aug[-mixed][-r<R>][-teacher][-sepbn][-ft][-w<N>]``."""
    mode = "-mixed" if recipe.mode == MIXED else ""
    rate = "" if ratio is None else f"-r{ratio:g}"
    return f"-aug{mode}{rate}" + "".join(f"-{t}" for t in recipe.tags())


def check_gan_recipe(value: str) -> str:
    if value not in GAN_RECIPES:
        raise UserError(f"--gan-recipe {value!r}: choose one of {', '.join(GAN_RECIPES)}")
    return value


def parse_modifiers(arm: str, modifiers: list[str], default_mode: str) -> GanRecipe:
    """The recipe of ``gan:m1:m2...``; a one-line error naming the arm for a bad modifier."""

    def refuse(why: str) -> UserError:
        return UserError(f"--arms: {arm!r}: {why}; {MODIFIER_USAGE}")

    seen: set[str] = set()
    settings: dict[str, Any] = {}
    for modifier in modifiers:
        key = "w" if modifier.startswith("w") else modifier
        key = "mode" if key in GAN_RECIPES else key
        if key in seen:
            raise refuse(f"{modifier!r} repeats a modifier already given")
        seen.add(key)
        if modifier in FLAGS:
            settings[modifier.replace("-", "_")] = True
        elif modifier in GAN_RECIPES:
            settings["mode"] = modifier
        elif key == "w":
            settings["weight"] = _weight(modifier, refuse)
        else:
            raise refuse(f"unknown modifier {modifier!r}")
    recipe = GanRecipe(**{"mode": default_mode, **settings})
    if recipe.separate_bn and recipe.mode == MIXED:
        where = ":mixed" if settings.get("mode") == MIXED else "--gan-recipe mixed"
        raise refuse(
            f"separate-bn needs the separate recipe (the auxiliary BatchNorm trains on each step's "
            f"synthetic batch), not {where}"
        )
    return recipe


def _weight(modifier: str, refuse: Any) -> float:
    try:
        weight = float(modifier[1:])
    except ValueError:
        raise refuse(f"{modifier!r} is no weight") from None
    if not math.isfinite(weight) or weight < 0:
        raise refuse(f"{modifier!r}: the weight must be a number >= 0")
    return weight + 0.0  # -0 is 0 (one run name)


def finetune_epochs(epochs: int) -> int:
    """K real-only epochs after ``epochs``: max(1, round(FINETUNE_SHARE * epochs)), halves up."""
    return max(1, math.floor(FINETUNE_SHARE * epochs + 0.5))


def gan_config(
    baseline: TrainConfig,
    images: SyntheticImages,
    recipe: GanRecipe,
    name: str,
    teacher: str | None = None,
) -> TrainConfig:
    """The baseline's config with the synthetic images added by ``recipe`` (same architecture,
    seed, hyper-parameters and epochs); ``teacher``: the real run for ``recipe.teacher``."""
    cfg = replace(baseline, name=name, synthetic=images.path, synthetic_ratio=images.ratio)
    if recipe.mode == MIXED:
        cfg = replace(cfg, epoch_size=images.n_real)
    else:
        cfg = replace(cfg, synthetic_batch=max(1, min(baseline.batch_size, images.n_synthetic)))
    if recipe.teacher:
        if teacher is None:
            raise UserError(f"{name}: the teacher recipe needs a real-trained run")
        cfg = replace(cfg, synthetic_labels="teacher", teacher=teacher)
    if recipe.separate_bn:
        cfg = replace(cfg, synthetic_bn="separate")
    if recipe.finetune:
        cfg = replace(cfg, finetune_real_epochs=finetune_epochs(baseline.epochs))
    return replace(cfg, synthetic_weight=recipe.weight)


def recipe_text(config: dict[str, Any], teachers: str | None = None) -> str:
    """A run's recipe in words, from its config.json (older runs: the settings' defaults);
    ``teachers``: how to name the teacher (default: the run's own)."""
    cfg = TrainConfig.from_dict(config.get("train") or {})
    parts = []
    if not cfg.synthetic:
        parts.append("real images only")
    elif cfg.synthetic_batch:
        parts.append(f"separate: each real batch + {cfg.synthetic_batch} synthetic images")
    else:
        size = f", {cfg.epoch_size} images per epoch" if cfg.epoch_size else ""
        parts.append(f"mixed: real + synthetic in one set{size}")
    if cfg.synthetic and cfg.synthetic_weight != 1:
        parts.append(f"synthetic weight {cfg.synthetic_weight:g}")
    if cfg.synthetic_labels == "teacher":
        parts.append(f"soft labels of {teachers or cfg.teacher} (T {cfg.temperature:g})")
    if cfg.synthetic_bn == "separate":
        parts.append("separate BatchNorm")
    if cfg.finetune_real_epochs:
        k, lr = cfg.finetune_real_epochs, cfg.finetune_learning_rate
        parts.append(f"then {k} real-only epoch{'s' * (k != 1)} at lr {lr:g}")
    return "; ".join([*parts, f"augment {cfg.augment}"])


def changed_settings(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """The settings (beyond where the run lives, its device and ``epochs``, which a resume may
    raise) in which a finished run differs from the config a step wants of it."""
    from dataclasses import fields

    from classify.training.run import RUNTIME_FIELDS

    keys = [f.name for f in fields(TrainConfig) if f.name not in (*RUNTIME_FIELDS, "epochs")]
    return [
        f"{k} {getattr(saved, k)!r} (wanted {getattr(wanted, k)!r})"
        for k in keys
        if saved.resolved(k) != wanted.resolved(k)
    ]
