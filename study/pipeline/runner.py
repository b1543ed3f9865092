"""``cli pipeline``: the whole study in one command.

data -> train the model variants (same seed and budget) -> pick the best by validation accuracy ->
gan-train -> synthesize -> retrain the best architecture on real + synthetic with the same
architecture, seed, hyper-parameters and epochs, every real image shown as often as in the
baseline (``--gan-recipe separate``; ``mixed``: the same optimizer steps instead,
:mod:`study.pipeline.recipes`) -> compare -> CAS.

The steps are :mod:`study.pipeline.steps`; a small loop runs them in order. Every step looks at its
outputs first and is skipped when they exist and are complete; a step that was interrupted is
resumed (training runs continue from last.pt), so running the same command again after Ctrl-C
picks up where it stopped. What each step did is logged to ``runs/<prefix>pipeline.json``.

Under torchrun with several processes every rank runs this loop and takes the same path through
it: rank 0 decides whether each step is done and shares the answer; the training steps run on
every rank (the work shared out as in ``cli train``), every other step, and every file this
module writes, on rank 0 alone while the others wait (:func:`core.ranks.main_only`); every
rank returns rank 0's summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.distributed import DistConfig, is_main, world_size
from core.errors import UserError
from core.io import write_json
from core.manifest import FidScores
from core.ranks import main_only
from study.pipeline.arms import parse_arm, parse_arms
from study.pipeline.config import MISSING_DATA, PipelineConfig
from study.pipeline.plan import StudyPlan, check_init_from, dataset_path
from study.pipeline.recipes import check_gan_recipe
from study.pipeline.steps import Step, pipeline_steps

STATE_FILE = "pipeline.json"


@dataclass
class StepLog:
    """What each step did (ran / skipped) and how long it took; written to runs/<prefix>pipeline.json."""

    path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)

    def run(
        self,
        name: str,
        done: Callable[[], bool],
        action: Callable[[], Any],
        every_rank: bool = False,
    ) -> Any:
        """``action()`` unless ``done()``; with several processes rank 0 decides ``done()`` for
        every rank, and ``action`` runs on every rank with ``every_rank``, else on rank 0 alone
        (every rank gets its result)."""
        if main_only(done):
            self.steps.append({"step": name, "status": "skipped (complete)", "seconds": 0.0})
            self._save()
            return None
        start = time.perf_counter()
        result = action() if every_rank else main_only(action)
        self.steps.append(
            {"step": name, "status": "ran", "seconds": round(time.perf_counter() - start, 1)}
        )
        self._save()
        return result

    def _save(self) -> None:
        if is_main():  # rank 0's log (every rank keeps one, in step)
            write_json(self.path, {"steps": self.steps})


def run_steps(steps: Sequence[Step], log: StepLog) -> dict[str, Any]:
    """Run each step in order unless it is done; returns each step's result (None: skipped)."""
    return {step.name: log.run(step.name, step.done, step.run, step.every_rank) for step in steps}


def run_pipeline(cfg: PipelineConfig, dist: DistConfig | None = None) -> dict[str, Any]:
    """Run (or finish) the study; return the summary also written to ``<prefix>study.json``
    (``<prefix>study-r<ratio>.json`` with a synthetic ratio, ``<prefix>study-mixed.json`` with the
    mixed GAN recipe). Under torchrun every rank calls it (see the module docstring); ``dist``:
    the multi-process options (its collective timeout)."""
    from core.device import join_group

    if cfg.seeds < 1:
        raise UserError(f"--seeds {cfg.seeds}: need at least 1")
    check_gan_recipe(cfg.gan_recipe)
    parse_arms(cfg.arms, cfg.gan_recipe)
    dist = (dist or DistConfig()).validate()
    join_group(cfg.device, dist.dist_timeout)
    plan = StudyPlan(cfg, dataset_path(cfg), Path(cfg.runs_dir), dist)
    log = StepLog(plan.runs / f"{plan.prefix}{STATE_FILE}")

    world = world_size()

    def prepare() -> None:
        check_one_process_arms(cfg, world, dist.sync_bn)
        check_init_from(cfg)
        plan.runs.mkdir(parents=True, exist_ok=True)
        if cfg.data is not None and not plan.data.is_dir():
            raise UserError(f"--data {plan.data}: {MISSING_DATA}")

    main_only(prepare)
    results = run_steps(pipeline_steps(plan), log)

    def summarize() -> dict[str, Any]:
        study = study_summary(plan, results["compare"], log.steps)
        study["arms"] = results["arms"]
        write_json(plan.runs / f"{plan.prefix}study{plan.study_suffix}.json", study)
        return study

    return main_only(summarize)


def check_one_process_arms(cfg: PipelineConfig, world: int, sync_bn: bool = True) -> None:
    """Refuse ``separate-bn`` arms on several processes with SyncBatchNorm, which would replace
    the auxiliary BatchNorm (:func:`classify.training.synthetic_exposure.check_ranks`); ``--local-bn`` keeps
    them."""
    if world <= 1 or not sync_bn:
        return
    separate = [
        arm for arm in cfg.arms if getattr(parse_arm(arm, cfg.gan_recipe)[0], "separate_bn", False)
    ]
    if separate:
        raise UserError(
            f"--arms {','.join(separate)}: separate-bn cannot train with SyncBatchNorm (the "
            f"study's {world} processes would replace the auxiliary BatchNorm); add --local-bn, "
            "run the study in one process or drop those arms"
        )


def study_summary(
    plan: StudyPlan, comparison: dict[str, Any], steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """The study's summary: its runs, FID and CAS from the synthetic set's manifest, the report."""
    cfg, manifest = plan.cfg, plan.manifest()
    fid = manifest.fid or FidScores()
    return {
        "data": str(plan.data),
        "preset": cfg.preset,
        "seeds": cfg.seeds,
        "best_model": plan.best_model,
        "baseline_runs": [a for a, _ in plan.pairs],
        "augmented_runs": [b for _, b in plan.pairs],
        "gan_run": plan.gan_config.name,
        "gan_recipe": cfg.gan_recipe,
        "synthetic": str(plan.synthetic),
        "report": str(plan.report_dir / "report.html"),
        "classifiers": plan.summaries,
        "cas": manifest.cas if cfg.cas else None,
        "fid": {
            "per_class": {c: r.fid for c, r in (fid.per_class or {}).items()},
            "real_vs_real": {c: r.fid for c, r in (fid.real_vs_real or {}).items()},
            "untrained_generator": {c: r.fid for c, r in (fid.untrained_generator or {}).items()},
            "overall": fid.overall.fid if fid.overall else None,
        },
        # precision / recall / density / coverage per class and overall (None where not scored)
        "diversity": {
            name: {k: getattr(score, k) for k in ("precision", "recall", "density", "coverage")}
            for name, score in {**(fid.per_class or {}), "overall": fid.overall}.items()
            if score is not None
        },
        "comparison": comparison,
        "steps": steps,
    }
