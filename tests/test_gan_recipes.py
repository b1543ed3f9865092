"""The study's GAN recipes (issue 10 §4 and the study side of §1): the default ``separate`` recipe
keeps real exposure fixed, ``--gan-recipe mixed`` is the older config, an arm's ``+gan:``
modifiers map to the TrainConfig fields of ``cli train``, bad arms are one-line errors, run names
stay unique, a run of another recipe is refused rather than reused, and the arms' report rows say
each arm's recipe and images shown. Pure functions and a few JSON files: no training."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from classify.training.config import TrainConfig
from classify.training.synthetic_exposure import Sizes, presentations
from core.errors import UserError
from study.pipeline.arms import arm_config, arm_suffix, parse_arm, parse_arms
from study.pipeline.recipes import GanRecipe, SyntheticImages, finetune_epochs, gan_config

BASE = TrainConfig(name="d-s0-resnet50", epochs=12, batch_size=32, seed=3, optimizer="adamw")
IMAGES = SyntheticImages("synthetic/d-gan", None, n_real=2040, n_synthetic=5000)


def _shown(cfg: TrainConfig, images: SyntheticImages = IMAGES) -> dict[str, int]:
    n_synthetic = images.n_synthetic if cfg.synthetic else 0
    return presentations(cfg, Sizes.of(cfg, images.n_real, n_synthetic))


def test_default_recipe_keeps_real_exposure_and_steps_of_the_baseline() -> None:
    aug = gan_config(BASE, IMAGES, GanRecipe(), "d-s0-resnet50-aug")
    assert (aug.synthetic_batch, aug.epoch_size, aug.synthetic) == (32, None, IMAGES.path)
    assert replace(aug, name=BASE.name, synthetic=None, synthetic_batch=0) == BASE
    base, shown = _shown(BASE), _shown(aug)
    assert shown["real_presentations"] == base["real_presentations"] == 12 * 2040
    assert shown["optimizer_steps"] == base["optimizer_steps"]
    assert shown["synthetic_presentations"] == 12 * 64 * 32  # 64 steps x 32 per step
    # A synthetic set smaller than a batch caps the synthetic batch (no repeats within a step).
    few = replace(IMAGES, n_synthetic=18)
    assert gan_config(BASE, few, GanRecipe(), "x").synthetic_batch == 18


def test_mixed_recipe_is_the_older_config() -> None:
    old = replace(BASE, name="x", synthetic=IMAGES.path, epoch_size=IMAGES.n_real)  # before
    assert gan_config(BASE, IMAGES, GanRecipe("mixed"), "x") == old
    shown = _shown(old)
    assert shown["optimizer_steps"] == _shown(BASE)["optimizer_steps"]
    assert shown["real_presentations"] < 0.35 * _shown(BASE)["real_presentations"]  # diluted


@pytest.mark.parametrize(
    ("arm", "fields", "suffix"),
    [
        ("real+gan", {"synthetic_batch": 32}, "-aug"),
        (
            "real+gan:teacher",
            {"synthetic_labels": "teacher", "teacher": "d-s0-resnet50", "temperature": 2.0},
            "-aug-teacher",
        ),  # fmt: skip
        ("real+gan:separate-bn", {"synthetic_bn": "separate", "synthetic_batch": 32}, "-aug-sepbn"),
        ("real+gan:finetune", {"finetune_real_epochs": 3, "finetune_lr": None}, "-aug-ft"),
        ("real+gan:w0.5", {"synthetic_weight": 0.5}, "-aug-w0.5"),
        ("real+gan:mixed", {"synthetic_batch": 0, "epoch_size": 2040}, "-aug-mixed"),
        (
            "real+gan:separate-bn:teacher+trivialaugment",
            {
                "synthetic_bn": "separate",
                "synthetic_labels": "teacher",
                "augment": "pad-crop,trivialaugment",
            },
            "-aug-teacher-sepbn-trivialaugment",
        ),  # fmt: skip
        (
            "real+gan:mixed:w2:finetune+mixup",
            {
                "epoch_size": 2040,
                "synthetic_weight": 2.0,
                "finetune_real_epochs": 3,
                "augment": "pad-crop,mixup",
            },
            "-aug-mixed-ft-w2-mixup",
        ),  # fmt: skip
    ],
)
def test_each_modifier_sets_its_train_options(arm: str, fields: dict, suffix: str) -> None:
    cfg = arm_config(BASE, IMAGES, arm, "run", teacher=BASE.name)
    for key, value in fields.items():
        assert getattr(cfg, key) == value, key
    assert (cfg.epochs, cfg.seed, cfg.batch_size, cfg.synthetic) == (12, 3, 32, IMAGES.path)
    assert arm_suffix(arm) == suffix
    cfg.validate()  # a config `cli train` accepts


def test_real_finetune_is_the_baseline_plus_the_same_real_only_phase() -> None:
    """``real:finetune`` adds exactly the finetune arm's real-only epochs (same K, same lr) to the
    baseline and nothing synthetic, so it is the control of ``real+gan:finetune``."""
    control = arm_config(BASE, None, "real:finetune", "c")
    gan = arm_config(BASE, IMAGES, "real+gan:finetune", "g")
    assert control.finetune_real_epochs == gan.finetune_real_epochs == 3
    assert control.finetune_learning_rate == gan.finetune_learning_rate
    assert (control.synthetic, control.synthetic_batch) == (None, 0)
    assert replace(control, name=BASE.name, finetune_real_epochs=0) == BASE
    assert arm_suffix("real:finetune") == "-ft"
    assert arm_suffix("real:finetune+trivialaugment") == "-ft-trivialaugment"
    assert parse_arm("real:finetune") == (None, ())
    shown = _shown(control)
    assert shown["real_presentations"] == 15 * 2040  # 12 + 3 epochs of the real images
    assert shown["synthetic_presentations"] == 0
    control.validate()


def test_finetune_is_a_quarter_of_the_epochs_at_least_one() -> None:
    assert [finetune_epochs(n) for n in (1, 2, 3, 4, 6, 10, 12, 40)] == [1, 1, 1, 1, 2, 3, 3, 10]


def test_the_study_recipe_names_the_runs_and_arms_may_override_it() -> None:
    assert arm_suffix("real+gan", 0.5) == "-aug-r0.5"
    assert arm_suffix("real+gan", None, "mixed") == "-aug-mixed"
    assert arm_suffix("real+gan:separate", 0.5, "mixed") == "-aug-r0.5"
    assert parse_arm("real+gan:separate-bn:separate", "mixed")[0] == GanRecipe(separate_bn=True)
    assert parse_arm("real+trivialaugment") == (None, ("trivialaugment",))
    mixed = arm_config(BASE, IMAGES, "real+gan+cutmix", "x", gan_recipe="mixed")
    assert (mixed.synthetic_batch, mixed.epoch_size, mixed.augment) == (0, 2040, "pad-crop,cutmix")


def test_run_names_are_unique_and_file_name_safe() -> None:
    modifiers = ["teacher", "separate-bn", "finetune", "w0.5", "w2", "mixed"]
    arms = {"real", "real+trivialaugment", "real+gan", "real+gan+mixup", "real:finetune",
            "real:finetune+trivialaugment"}  # fmt: skip
    for n in (1, 2, 3):
        for combo in itertools.combinations(modifiers, n):
            if ("separate-bn" in combo and "mixed" in combo) or ("w0.5" in combo and "w2" in combo):
                continue
            arms.add("real+gan:" + ":".join(combo))
            arms.add("real+gan:" + ":".join(combo) + "+trivialaugment")
    suffixes = [arm_suffix(arm) for arm in sorted(arms)]
    assert len(set(suffixes)) == len(arms)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]*", s) for s in suffixes)
    # Another order of the same modifiers is the same run.
    assert arm_suffix("real+gan:separate-bn:teacher") == arm_suffix("real+gan:teacher:separate-bn")


@pytest.mark.parametrize(
    ("arms", "recipe", "message"),
    [
        ("real,real+gan:nope", "separate", "unknown modifier 'nope'"),
        ("real,real+gan:teacher:teacher", "separate", "'teacher' repeats a modifier"),
        ("real,real+gan:w0.5:w2", "separate", "'w2' repeats a modifier"),
        ("real,real+gan:mixed:separate", "separate", "'separate' repeats a modifier"),
        ("real,real+gan:separate-bn:mixed", "separate", "separate-bn needs the separate recipe"),
        ("real,real+gan:separate-bn", "mixed", "not --gan-recipe mixed"),
        ("real,real+trivialaugment:teacher", "separate", "modifiers go on +gan only"),
        ("real:teacher,real+gan", "separate", "real takes :finetune only"),
        ("realx,real", "separate", "is not an arm"),
        ("real,real:finetune+gan", "separate", "with the GAN's images write real+gan:finetune"),
        ("real,real:finetune,real:finetune", "separate", "'real:finetune' is named twice"),
        ("real,real+gan:w-1", "separate", "the weight must be a number >= 0"),
        ("real,real+gan:wx", "separate", "'wx' is no weight"),
        ("real,real+gan,real+gan:separate", "separate", "is 'real+gan' spelled again"),
        ("real,real+gan,real+gan:mixed", "mixed", "is 'real+gan' spelled again"),
    ],
)
def test_bad_arms_are_one_line_errors(arms: str, recipe: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        parse_arms(arms, recipe)
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("--arms")
    if "modifier" in message or "weight" in message:
        assert ":separate-bn" in text and ":w<N>" in text  # the valid modifiers are listed


def test_cli_refuses_a_bad_arm_and_a_bad_recipe_in_one_line() -> None:
    from typer.testing import CliRunner

    from cli import app

    bad = CliRunner().invoke(app, ["pipeline", "--arms", "real,real+gan:tutor"])
    assert bad.exit_code != 0 and "unknown modifier 'tutor'" in bad.output
    recipe = CliRunner().invoke(app, ["pipeline", "--gan-recipe", "blend"])
    assert recipe.exit_code != 0 and "blend" in recipe.output


def _fake_study(tmp_path: Path, recipe: str = "separate") -> object:
    """A StudyPlan over one baseline run's config.json and a synthetic set's manifest."""
    from study.pipeline.config import PipelineConfig
    from study.pipeline.plan import StudyPlan

    runs = tmp_path / "runs"
    baseline = runs / "d-s0-resnet50"
    baseline.mkdir(parents=True, exist_ok=True)
    dataset = {"n_train": 20, "train_class_counts": {"a": 10, "b": 10}}
    (baseline / "config.json").write_text(json.dumps({"train": BASE.to_dict(), "dataset": dataset}))
    cfg = PipelineConfig(data=str(tmp_path / "d"), synthetic_dir=str(tmp_path / "syn"),
                         runs_dir=str(runs), gan_recipe=recipe)  # fmt: skip
    plan = StudyPlan(cfg, Path(cfg.data), runs)
    plan.__dict__["best_model"] = "resnet50"
    plan.synthetic.mkdir(parents=True, exist_ok=True)
    (plan.synthetic / "manifest.json").write_text(json.dumps({"counts": {"a": 6, "b": 6}}))
    return plan


def test_the_plan_builds_each_recipe_and_refuses_a_run_of_another(tmp_path: Path) -> None:
    from study.pipeline.steps import trained

    plan = _fake_study(tmp_path)
    aug = plan.augmented_config(0)
    assert (aug.name, aug.synthetic_batch, aug.epoch_size) == ("d-s0-resnet50-aug", 12, None)
    teacher = plan.arm_config(0, "real+gan:teacher:finetune")
    assert (teacher.name, teacher.teacher) == ("d-s0-resnet50-aug-teacher-ft", "d-s0-resnet50")
    mixed = _fake_study(tmp_path, "mixed")
    old = mixed.augmented_config(0)
    assert (old.name, old.synthetic_batch, old.epoch_size) == ("d-s0-resnet50-aug-mixed", 0, 20)
    assert mixed.report_dir.name.endswith("-baseline-vs-augmented-mixed")
    # An older study's "-aug" run (the mixed recipe) is neither counted as done nor reused.
    legacy = plan.runs / aug.name
    legacy.mkdir()
    (legacy / "config.json").write_text(
        json.dumps({"train": replace(old, name=aug.name).to_dict()})
    )
    with pytest.raises(UserError) as err:
        trained(plan.runs, aug)
    text = str(err.value)
    assert "synthetic_batch 0 (wanted 12)" in text and "epoch_size 20 (wanted None)" in text
    assert "\n" not in text and "--gan-recipe" in text
    assert trained(plan.runs, replace(old, name=aug.name, device="cuda")) is False  # not trained


def _run(name: str, cfg: TrainConfig, shown: dict[str, int], curve: list[float]) -> object:
    history = [{"epoch": e + 1, "val_acc": v} for e, v in enumerate(curve)]
    synthetic = {"recipe": {"batch": cfg.synthetic_batch}} if cfg.synthetic else None
    config = {"train": cfg.to_dict(), "synthetic": synthetic, **shown}
    return SimpleNamespace(name=name, config=config, history=history)


def test_arm_rows_say_the_recipe_and_the_images_shown() -> None:
    from study.pipeline.arm_report import arm_training, budget_rule
    from study.report.arms import arm_markdown, recipe_rows

    arms = {"real": BASE, "real+gan": arm_config(BASE, IMAGES, "real+gan", "g"),
            "real+gan:mixed": arm_config(BASE, IMAGES, "real+gan:mixed", "m")}  # fmt: skip
    rows = {}
    for arm, cfg in arms.items():
        runs = [_run(f"{arm}{s}", cfg, _shown(cfg), [0.5 + s / 10, 0.7]) for s in (0, 1)]
        rows[arm] = {"accuracy": [0.8, 0.8], "mean": 0.8, "std": 0.0, **arm_training(runs)}
    assert rows["real+gan"]["recipe"]["gan_recipe"] == "separate"
    assert rows["real+gan"]["presentations"]["real_presentations"] == [24480, 24480]
    assert rows["real+gan"]["val_curve"] == {"epoch": [1, 2], "val_acc": [0.55, 0.7]}
    table = {"arms": rows, "verdict": "v.", "budget": budget_rule(rows)}
    cells = {row[0]: row for row in recipe_rows(table)}
    assert cells["real"][1:] == ["real images only; augment pad-crop", "24,480", "0", "768"]
    assert cells["real+gan"][1].startswith("separate: each real batch + 32 synthetic images")
    assert cells["real+gan"][2:] == ["24,480", "24,576", "768"]
    assert cells["real+gan:mixed"][1].startswith("mixed: real + synthetic in one set, 2040 images")
    assert "every arm trains the baseline's epochs with real exposure held fixed" in table["budget"]
    assert "best epoch by validation accuracy" in table["budget"]
    assert "Except real+gan:mixed (the mixed recipe)" in table["budget"]
    markdown = arm_markdown({**table, "arms": {a: r for a, r in rows.items() if a == "real"}})
    assert "| real | real images only; augment pad-crop | 24,480 | 0 | 768 |" in markdown


def test_a_finetune_runs_best_validation_is_over_all_its_epochs() -> None:
    """The budget rule and the verdict read the validation accuracy of the run's ``best.pt``,
    chosen by one rule for every run: the best over all its epochs, a finetune run's main-phase
    epochs among the candidates (study.pipeline.arm_report.EPOCH_RULE)."""
    from study.pipeline.arm_report import best_val

    main = [{"epoch": e, "val_acc": v, "phase": "main"} for e, v in ((1, 0.6), (2, 0.9))]
    tuned = [{"epoch": e, "val_acc": v, "phase": "finetune"} for e, v in ((3, 0.7), (4, 0.8))]
    assert best_val(main + tuned) == 0.9
    assert best_val([{k: v for k, v in r.items() if k != "phase"} for r in main]) == 0.9
    assert best_val([{"epoch": 1, "val_acc": None}]) is None


def test_separate_bn_arms_are_refused_on_several_processes() -> None:
    from study.pipeline.config import PipelineConfig
    from study.pipeline.runner import check_one_process_arms

    cfg = PipelineConfig(arms=("real", "real+gan", "real+gan:teacher:separate-bn"))
    check_one_process_arms(cfg, 1)
    check_one_process_arms(replace(cfg, arms=("real", "real+gan:teacher")), 2)
    with pytest.raises(UserError, match=r"^--arms real\+gan:teacher:separate-bn: separate-bn"):
        check_one_process_arms(cfg, 2)
    check_one_process_arms(cfg, 2, sync_bn=False)  # --local-bn keeps the auxiliary BatchNorm
