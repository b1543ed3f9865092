"""The pipeline's named steps, in order: data -> classifiers per seed -> gan-train -> synthesize ->
augmented retraining per seed -> CAS -> compare.

A step is a name, ``done()`` (its outputs exist and are complete, so it is skipped) and ``run()``
(make them; training steps resume from last.pt). Steps read names and configs from a
:class:`~study.pipeline.plan.StudyPlan`, so a step's config is worked out when it is needed.

Under torchrun with several processes (:mod:`core.distributed`) the runner decides ``done()`` on
rank 0 for every rank. The training steps (``every_rank``: train-all, gan-train, the augmented,
arm and CAS runs and their evaluations) run on every rank, sharing the work as ``cli train`` does;
what they read from earlier steps' files (the run to continue, the configs derived from the
baselines) rank 0 reads and shares. Every other step (data, synthesize, compare, arms) runs on
rank 0 alone, as one process runs it, while the others wait (:func:`core.ranks.main_only`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classify.training.config import TrainConfig
from core.distributed import DistConfig, on_main
from study.pipeline.arms import DEFAULT_ARMS, MORE_SEEDS, arm_suffix
from study.pipeline.config import PipelineConfig
from study.pipeline.plan import (
    StudyPlan,
    check_same_settings,
    gan_complete,
    synthetic_complete,
)

if TYPE_CHECKING:
    from augment.gan.config import GanConfig, SynthConfig


@dataclass(frozen=True)
class Step:
    """``done()``: the outputs exist and are complete (the step is skipped); ``run()``: make them.
    ``every_rank``: with several processes every rank runs it (training); else rank 0 alone."""

    name: str
    done: Callable[[], bool]
    run: Callable[[], Any]
    every_rank: bool = False


def never_done() -> bool:
    """For steps that always run: cheap ones that keep complete outputs as they are, and the
    report, which must show the latest results."""
    return False


def pipeline_steps(plan: StudyPlan) -> list[Step]:
    seeds = range(plan.cfg.seeds)
    steps = [data_step(plan)] if plan.cfg.data is None else []
    steps.append(dataset_step(plan))
    steps += [classifier_step(plan, seed) for seed in seeds]
    steps += [gan_step(plan), synthesize_step(plan)]
    steps += [augmented_step(plan, seed) for seed in seeds]
    cfg = plan.cfg

    def suffix(arm: str) -> str:
        return arm_suffix(arm, cfg.synthetic_ratio, cfg.gan_recipe)

    made = {suffix(arm) for arm in DEFAULT_ARMS}  # the baseline and augmented runs' suffixes
    extra = [arm for arm in cfg.arms if suffix(arm) not in made]
    steps += [arm_step(plan, arm, seed) for arm in extra for seed in seeds]
    if plan.cfg.cas:
        steps.append(cas_step(plan))
    return [*steps, compare_step(plan), arms_step(plan)]


def trained(runs: Path, cfg: TrainConfig) -> bool:
    """``cfg``'s run is trained for all its epochs and evaluated; a run of its name made with
    other settings is a one-line error (:func:`~study.pipeline.plan.check_same_settings`)."""
    from core.evaldir import evaluation_current
    from core.rundir import training_complete

    run_dir = runs / cfg.name
    check_same_settings(run_dir, cfg)
    return training_complete(run_dir, cfg.total_epochs) and evaluation_current(run_dir)


def arm_step(plan: StudyPlan, arm: str, seed: int) -> Step:
    """One arm's recipe of the best architecture at one seed, trained and evaluated."""

    def done() -> bool:
        return trained(plan.runs, plan.arm_config(seed, arm))

    def run() -> None:
        _train_and_evaluate(on_main(lambda: plan.arm_config(seed, arm)), plan.dist)

    return Step(f"arm {arm} seed {seed}", done, run, every_rank=True)


def arms_step(plan: StudyPlan) -> Step:
    """Every arm against real only (pooled over seeds, Holm across arms): arms.json / arms.md in
    the report folder (always re-made: cheap, and it must show the latest runs)."""

    def run() -> dict[str, Any]:
        from core.device import setup_device
        from study.compare.runs import load_run
        from study.pipeline.arm_figures import draw_arm_cams
        from study.pipeline.arm_report import write_arm_table
        from study.pipeline.arms import arm_table

        runs = {
            arm: [load_run(plan.runs / plan.arm_run(s, arm)) for s in range(plan.cfg.seeds)]
            for arm in plan.cfg.arms
        }
        table = arm_table(runs)
        table["cam"] = draw_arm_cams(table, runs, plan.report_dir, per_class=plan.cfg.cam_per_class,
                                     device=setup_device(plan.cfg.device))  # fmt: skip
        write_arm_table(table, plan.report_dir)
        return table

    return Step("arms", never_done, run)


def data_step(plan: StudyPlan) -> Step:
    """The embedded footwear set (write_footwear keeps a complete set as it is)."""
    from core.footwear import FootwearConfig, write_footwear

    fw = FootwearConfig(out=str(plan.data), train_per_class=plan.cfg.train_per_class, seed=0)
    return Step("data", never_done, lambda: write_footwear(fw))


def dataset_step(plan: StudyPlan) -> Step:
    """The dataset's fingerprint, recorded on the first run and checked on every later one
    (:mod:`study.pipeline.fingerprint`): a study never resumes on changed images."""
    from study.pipeline.fingerprint import check_dataset

    return Step("dataset", never_done, lambda: check_dataset(plan.data, plan.runs, plan.prefix))


def classifier_step(plan: StudyPlan, seed: int) -> Step:
    """Every model variant trained and evaluated with the same seed and budget (train-all)."""

    def done() -> bool:
        from core.evaldir import evaluation_current
        from core.rundir import training_complete

        base, options = plan.baseline_config(seed), plan.train_all_options(seed)
        return plan.models_json(seed).is_file() and all(
            training_complete(plan.runs / f"{options.prefix}{m}", base.total_epochs)
            and evaluation_current(plan.runs / f"{options.prefix}{m}")
            for m in options.models
        )

    def run() -> Any:
        from classify.training.train_all import train_all

        return train_all(plan.baseline_config(seed), plan.train_all_options(seed), plan.dist)

    return Step(f"classifiers seed {seed}", done, run, every_rank=True)


def gan_step(plan: StudyPlan) -> Step:
    def done() -> bool:
        return gan_complete(plan.gan_dir, plan.gan_config.iterations)

    return Step("gan-train", done, lambda: _train_gan(plan.gan_config, plan.dist), every_rank=True)


def synthesize_step(plan: StudyPlan) -> Step:
    def done() -> bool:
        checkpoint = plan.gan_dir / f"{plan.synth_config.checkpoint}.pt"
        return synthetic_complete(plan.synthetic, plan.cfg.per_class, checkpoint)

    return Step("synthesize", done, lambda: _synthesize(plan.synth_config))


def augmented_step(plan: StudyPlan, seed: int) -> Step:
    """The best architecture retrained on real + synthetic images, then evaluated."""

    def done() -> bool:
        return trained(plan.runs, plan.augmented_config(seed))

    def run() -> None:
        _train_and_evaluate(on_main(lambda: plan.augmented_config(seed)), plan.dist)

    return Step(f"augmented seed {seed}", done, run, every_rank=True)


def cas_step(plan: StudyPlan) -> Step:
    """Classification Accuracy Score: the best architecture trained on the synthetic images only."""

    def done() -> bool:
        from core.rundir import training_complete

        cas = plan.cas_config()
        scored = plan.manifest().cas is not None
        return scored and training_complete(plan.runs / cas.name, cas.total_epochs)

    def run() -> Any:
        from study.cas import run_cas

        cas, baseline = on_main(lambda: (plan.cas_config(), plan.runs / plan.pairs[0][0]))
        return run_cas(cas, baseline_run=baseline, resume=True, dist=plan.dist)

    return Step("cas", done, run, every_rank=True)


def compare_step(plan: StudyPlan) -> Step:
    """The report (always re-rendered: cheap next to training, and it must show the CAS result)."""

    def run() -> dict[str, Any]:
        pairs = plan.pairs
        return _compare([a for a, _ in pairs], [b for _, b in pairs], plan.report_dir, plan.cfg)

    return Step("compare", never_done, run)


# --- actions ------------------------------------------------------------------------------------


def _train_gan(cfg: GanConfig, dist: DistConfig) -> Any:
    from augment.gan.trainer import train_gan

    run_dir = Path(cfg.runs_dir) / cfg.name
    return train_gan(cfg, resume=on_main((run_dir / "last.pt").is_file), dist=dist)


def _synthesize(cfg: SynthConfig) -> Any:
    from augment.synthesize import synthesize

    return synthesize(replace(cfg, overwrite=Path(cfg.out).exists()))


def _train_and_evaluate(cfg: TrainConfig, dist: DistConfig) -> None:
    from classify.evaluation.evaluate import evaluate_run
    from classify.training.trainer import train
    from core.rundir import training_complete

    run_dir = Path(cfg.runs_dir) / cfg.name
    if not on_main(lambda: training_complete(run_dir, cfg.total_epochs)):  # rank 0 decides for all
        train(cfg, resume=on_main((run_dir / "last.pt").is_file), dist=dist)
    evaluate_run(run_dir, "best", device=cfg.device)  # sharded across the ranks


def _compare(a: list[str], b: list[str], out: Path, cfg: PipelineConfig) -> dict[str, Any]:
    from study.compare.config import CompareConfig
    from study.compare.job import run_compare

    report, _ = run_compare(
        CompareConfig(
            a=tuple(a),
            b=tuple(b),
            out=str(out),
            runs_dir=cfg.runs_dir,
            device=cfg.device,
            cam_per_class=cfg.cam_per_class,
            more_seeds=MORE_SEEDS,
            made_by="cli pipeline",
        )
    )
    return report
